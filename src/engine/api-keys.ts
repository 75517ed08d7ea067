/**
 * API keys for the server: creation, verification and scopes.
 *
 * A key reads `cvk_<id>_<secret>`. The id is public (it names the key in listings, logs and
 * metrics); the secret is 32 random bytes and is shown once, at creation. The store keeps
 * only SHA-256(secret): the secret has 256 bits of entropy, so a slow password hash would
 * add latency to every request and no protection. Verification compares hashes with
 * `timingSafeEqual`, and an unknown id costs the same comparison as a wrong secret.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConveyorError, ValidationError } from '../errors.ts';
import { API_SCOPES, type ApiKeyRecord, type ApiScope, type Store } from '../store/contract.ts';

const KEY_PATTERN = /^cvk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const DUMMY_HASH = Buffer.alloc(32);

export interface CreatedApiKey {
  /** The full key, `cvk_<id>_<secret>`: shown once, never stored. */
  readonly key: string;
  readonly record: ApiKeyRecord;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export function checkScopes(scopes: unknown): ApiScope[] {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw new ValidationError('INVALID_ARGUMENT', `scopes must be a non-empty list of ${API_SCOPES.join(', ')}`);
  }
  for (const s of scopes) {
    if (!API_SCOPES.includes(s as ApiScope)) throw new ValidationError('INVALID_ARGUMENT', `unknown scope ${JSON.stringify(s)}; scopes are ${API_SCOPES.join(', ')}`);
  }
  return [...new Set(scopes as ApiScope[])];
}

/** Creates a key in the store and returns it with its secret (the only time the secret exists). */
export async function createApiKey(store: Store, params: { name: string; scopes: readonly string[]; expiresAt?: number | null; now?: number }): Promise<CreatedApiKey> {
  if (typeof params.name !== 'string' || params.name.length === 0 || params.name.length > 200) {
    throw new ValidationError('INVALID_ARGUMENT', 'a key needs a name of 1 to 200 characters (who or what uses it)');
  }
  if (/[\u0000-\u001f\u007f]/.test(params.name)) throw new ValidationError('INVALID_ARGUMENT', 'a key name must be printable text (no control characters)');
  const scopes = checkScopes(params.scopes);
  const expiresAt = params.expiresAt ?? null;
  if (expiresAt !== null && (!Number.isSafeInteger(expiresAt) || expiresAt <= 0)) throw new ValidationError('INVALID_ARGUMENT', 'expiresAt must be epoch milliseconds');
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: ApiKeyRecord = { id, name: params.name, scopes, hash: sha256(secret).toString('hex'), createdAt: params.now ?? Date.now(), expiresAt, revokedAt: null };
  await store.createApiKey(record);
  return { key: `cvk_${id}_${secret}`, record };
}

/** A key as listings show it: everything but the hash. */
export function describeKey(record: ApiKeyRecord, now = Date.now()): Record<string, unknown> {
  return {
    id: record.id,
    name: record.name,
    scopes: record.scopes,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
    active: record.revokedAt === null && (record.expiresAt === null || record.expiresAt > now),
  };
}

export function hasScope(record: ApiKeyRecord, needed: ApiScope): boolean {
  return record.scopes.includes('admin') || record.scopes.includes(needed);
}

/**
 * Verifies bearer keys against the store, caching each key's record for `cacheMs` so a
 * request costs no store read: a revoked key stops working within that time (documented).
 */
export class KeyVerifier {
  readonly #store: Store;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { record: ApiKeyRecord | null; until: number }>();
  #activeCount: { value: boolean; until: number } | undefined;

  constructor(store: Store, cacheMs = 5000) {
    this.#store = store;
    this.#cacheMs = cacheMs;
  }

  /** Whether any key can authenticate right now (cached like the keys). */
  async anyActiveKey(): Promise<boolean> {
    const now = Date.now();
    if (this.#activeCount && this.#activeCount.until > now) return this.#activeCount.value;
    const keys = await this.#store.listApiKeys();
    const value = keys.some((k) => k.revokedAt === null && (k.expiresAt === null || k.expiresAt > now));
    this.#activeCount = { value, until: now + this.#cacheMs };
    return value;
  }

  /** Forget cached answers (after creating or revoking a key through this process). */
  invalidate(): void {
    this.#cache.clear();
    this.#activeCount = undefined;
  }

  /** The key's record when `presented` is a valid, active key; else throws UNAUTHORIZED. */
  async verify(presented: string): Promise<ApiKeyRecord> {
    const match = KEY_PATTERN.exec(presented);
    const id = match?.[1];
    const secret = match?.[2];
    const now = Date.now();
    let record: ApiKeyRecord | null = null;
    if (id !== undefined) {
      const cached = this.#cache.get(id);
      if (cached && cached.until > now) record = cached.record;
      else {
        record = await this.#store.getApiKey({ id });
        if (this.#cache.size > 10_000) this.#cache.clear();
        this.#cache.set(id, { record, until: now + this.#cacheMs });
      }
    }
    const expected = record ? Buffer.from(record.hash, 'hex') : DUMMY_HASH;
    const actual = sha256(secret ?? presented);
    const equal = expected.length === actual.length && timingSafeEqual(expected, actual);
    if (!record || !equal) throw new ConveyorError('UNAUTHORIZED', 'the API key is not valid; create one with `conveyor keys create --name <who> --scopes <scopes>`');
    if (record.revokedAt !== null) throw new ConveyorError('UNAUTHORIZED', `API key ${record.id} was revoked`, { details: { keyId: record.id } });
    if (record.expiresAt !== null && record.expiresAt <= now) throw new ConveyorError('UNAUTHORIZED', `API key ${record.id} expired`, { details: { keyId: record.id } });
    return record;
  }
}
