/**
 * Conformance suite for the server's API keys and the worker registry (the Store contract's
 * "keys and workers" methods).
 *
 * Like storeContractSuite, it uses only the `Store` interface: no SQL, no driver, no
 * branching on `store.kind`. Every result is awaited, because a store may answer
 * synchronously or with a promise. Each test gets a fresh store from `makeStore`.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';

import type { ApiKeyRecord, WorkerInfo } from '../../src/store/contract.ts';
import { ConveyorError, StoreError } from '../../src/errors.ts';
import { type MakeStore, plain, storeTest, T0 } from './helpers.ts';

function key(over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id: '0123456789abcdef',
    name: 'ci',
    scopes: ['produce'],
    hash: 'a'.repeat(64),
    createdAt: T0,
    expiresAt: null,
    revokedAt: null,
    ...over,
  };
}

function worker(over: Partial<WorkerInfo> = {}): WorkerInfo {
  return {
    id: 'w-a',
    kind: 'direct',
    host: 'host-1',
    pid: 4242,
    queues: ['emails', 'images'],
    concurrency: 8,
    active: 0,
    startedAt: T0,
    lastSeenAt: T0,
    lastClaimAt: null,
    ...over,
  };
}

export function storeRegistrySuite(label: string, makeStore: MakeStore): void {
  /** One test with its own fresh store, always cleaned up. */
  const test = storeTest(makeStore);

  describe(`store registry: ${label}`, () => {
    // ------------------------------------------------------------------- API keys
    describe('api keys', () => {
      test('create then get round-trips every field; unknown ids read as null', async (store) => {
        assert.equal(await store.getApiKey({ id: 'nope' }), null);
        const plainKey = key({ id: 'k1', name: 'ci — déploiement 🚀', scopes: ['read', 'produce', 'consume'], expiresAt: null });
        const full = key({ id: 'k2', scopes: ['admin'], hash: 'f'.repeat(64), createdAt: T0 + 1, expiresAt: T0 + 86_400_000, revokedAt: T0 + 5 });
        await store.createApiKey(plainKey);
        await store.createApiKey(full);
        const got1 = await store.getApiKey({ id: 'k1' });
        assert.deepEqual(plain(got1), plain(plainKey));
        assert.equal(got1?.expiresAt, null, 'null expiresAt stays null');
        assert.equal(got1?.revokedAt, null);
        assert.deepEqual(got1?.scopes, ['read', 'produce', 'consume'], 'scopes keep their order');
        assert.deepEqual(plain(await store.getApiKey({ id: 'k2' })), plain(full));
        assert.equal(await store.getApiKey({ id: 'k3' }), null);
      });

      test('list: empty at first, then every key oldest first, revoked ones included', async (store) => {
        assert.deepEqual(plain(await store.listApiKeys()), []);
        // Inserted in an order different from their creation times.
        const middle = key({ id: 'kb', createdAt: T0 + 10 });
        const newest = key({ id: 'ka', createdAt: T0 + 20 });
        const oldest = key({ id: 'kc', createdAt: T0 });
        await store.createApiKey(middle);
        await store.createApiKey(newest);
        await store.createApiKey(oldest);
        assert.equal(await store.revokeApiKey({ id: 'kb', now: T0 + 30 }), true);
        const listed = await store.listApiKeys();
        assert.deepEqual(
          listed.map((k) => k.id),
          ['kc', 'kb', 'ka'],
        );
        assert.deepEqual(plain(listed), plain([oldest, { ...middle, revokedAt: T0 + 30 }, newest]));
      });

      test('revoke: true once, then false; unknown id false; the first revocation time stays', async (store) => {
        await store.createApiKey(key({ id: 'k1' }));
        await store.createApiKey(key({ id: 'k2' }));
        assert.equal(await store.revokeApiKey({ id: 'k1', now: T0 + 100 }), true);
        assert.equal(await store.revokeApiKey({ id: 'k1', now: T0 + 200 }), false);
        assert.equal(await store.revokeApiKey({ id: 'unknown', now: T0 + 300 }), false);
        assert.equal((await store.getApiKey({ id: 'k1' }))?.revokedAt, T0 + 100);
        assert.equal((await store.getApiKey({ id: 'k2' }))?.revokedAt, null, 'other keys untouched');
        assert.equal(await store.getApiKey({ id: 'unknown' }), null, 'revoking an unknown id creates nothing');
      });

      test('creating an existing id throws StoreError CONFLICT and changes nothing', async (store) => {
        const original = key({ id: 'dup', name: 'first', scopes: ['read'] });
        await store.createApiKey(original);
        const clash = key({ id: 'dup', name: 'second', scopes: ['admin'], hash: 'b'.repeat(64), createdAt: T0 + 1, expiresAt: T0 + 2 });
        await assert.rejects(
          async () => {
            await store.createApiKey(clash);
          },
          (e: unknown) => {
            assert.ok(e instanceof StoreError, `expected a StoreError, got ${String(e)}`);
            assert.ok(e instanceof ConveyorError);
            assert.equal(e.code, 'CONFLICT');
            assert.equal(e.retryable, false);
            return true;
          },
        );
        assert.deepEqual(plain(await store.getApiKey({ id: 'dup' })), plain(original));
        assert.deepEqual(plain(await store.listApiKeys()), plain([original]));
        // The store is still usable afterwards.
        await store.createApiKey(key({ id: 'other' }));
        assert.equal((await store.listApiKeys()).length, 2);
      });
    });

    // ------------------------------------------------------------ worker registry
    describe('worker registry', () => {
      test('reportWorker inserts, then replaces the row of the same id', async (store) => {
        assert.deepEqual(plain(await store.listWorkers({ since: 0 })), []);
        const first = worker({ id: 'w1', meta: { version: '1.0.0' } });
        await store.reportWorker(first);
        assert.deepEqual(plain(await store.listWorkers({ since: 0 })), plain([first]));
        const second = worker({
          id: 'w1',
          kind: 'remote',
          host: 'host-2',
          pid: 7,
          queues: ['z', 'a'],
          concurrency: 2,
          active: 2,
          startedAt: T0 + 1,
          lastSeenAt: T0 + 15_000,
          lastClaimAt: T0 + 14_000,
          meta: { version: '1.0.1', apiKey: '0123456789abcdef' },
        });
        await store.reportWorker(second);
        const listed = await store.listWorkers({ since: 0 });
        assert.equal(listed.length, 1, 'one row per worker id');
        assert.deepEqual(plain(listed), plain([second]));
        assert.deepEqual(listed[0]?.queues, ['z', 'a'], 'queues keep their order');
      });

      test('meta is optional: absent stays absent, and a report without it clears it', async (store) => {
        await store.reportWorker(worker({ id: 'w1' }));
        const [bare] = await store.listWorkers({ since: 0 });
        assert.ok(bare !== undefined);
        assert.equal(bare.meta, undefined);
        assert.equal(bare.lastClaimAt, null);
        assert.deepEqual(plain(bare), plain(worker({ id: 'w1' })));

        const labelled = worker({ id: 'w1', lastSeenAt: T0 + 1, meta: { version: '2.3.4', note: 'ünïcode ✓' } });
        await store.reportWorker(labelled);
        assert.deepEqual(plain(await store.listWorkers({ since: 0 })), plain([labelled]));

        const empty = worker({ id: 'w1', lastSeenAt: T0 + 2, meta: {} });
        await store.reportWorker(empty);
        assert.deepEqual((await store.listWorkers({ since: 0 }))[0]?.meta, {});

        await store.reportWorker(worker({ id: 'w1', lastSeenAt: T0 + 3 }));
        assert.equal((await store.listWorkers({ since: 0 }))[0]?.meta, undefined, 'a report without meta replaces it');
      });

      test('listWorkers: only workers seen at or after `since`, ordered by id', async (store) => {
        await store.reportWorker(worker({ id: 'w-c', lastSeenAt: T0 + 10 }));
        await store.reportWorker(worker({ id: 'w-a', lastSeenAt: T0 + 20 }));
        await store.reportWorker(worker({ id: 'w-b', lastSeenAt: T0 }));
        const ids = async (since: number): Promise<string[]> => (await store.listWorkers({ since })).map((w) => w.id);
        assert.deepEqual(await ids(0), ['w-a', 'w-b', 'w-c']);
        assert.deepEqual(await ids(T0), ['w-a', 'w-b', 'w-c']);
        assert.deepEqual(await ids(T0 + 10), ['w-a', 'w-c'], 'since is inclusive');
        assert.deepEqual(await ids(T0 + 11), ['w-a']);
        assert.deepEqual(await ids(T0 + 21), []);
      });

      test('removeWorker removes that worker only; an unknown id is a no-op', async (store) => {
        await store.reportWorker(worker({ id: 'w1' }));
        await store.reportWorker(worker({ id: 'w2' }));
        await store.removeWorker({ id: 'w1' });
        assert.deepEqual((await store.listWorkers({ since: 0 })).map((w) => w.id), ['w2']);
        await store.removeWorker({ id: 'w1' });
        await store.removeWorker({ id: 'never-seen' });
        assert.deepEqual((await store.listWorkers({ since: 0 })).map((w) => w.id), ['w2']);
        // A removed worker that reports again is back.
        await store.reportWorker(worker({ id: 'w1', lastSeenAt: T0 + 5 }));
        assert.deepEqual((await store.listWorkers({ since: 0 })).map((w) => w.id), ['w1', 'w2']);
      });

      test('pruneWorkers removes workers last seen before the cut-off and returns how many', async (store) => {
        assert.equal(await store.pruneWorkers({ before: T0 + 1_000_000 }), 0);
        await store.reportWorker(worker({ id: 'w1', lastSeenAt: T0 }));
        await store.reportWorker(worker({ id: 'w2', lastSeenAt: T0 + 50 }));
        await store.reportWorker(worker({ id: 'w3', lastSeenAt: T0 + 100 }));
        await store.reportWorker(worker({ id: 'w4', lastSeenAt: T0 + 200 }));
        assert.equal(await store.pruneWorkers({ before: T0 + 100 }), 2, 'strictly before: w3 at the cut-off stays');
        assert.deepEqual((await store.listWorkers({ since: 0 })).map((w) => w.id), ['w3', 'w4']);
        assert.equal(await store.pruneWorkers({ before: T0 + 100 }), 0);
        // A later report keeps a worker alive past the next cut-off.
        await store.reportWorker(worker({ id: 'w3', lastSeenAt: T0 + 300 }));
        assert.equal(await store.pruneWorkers({ before: T0 + 250 }), 1);
        assert.deepEqual((await store.listWorkers({ since: 0 })).map((w) => w.id), ['w3']);
      });
    });
  });
}
