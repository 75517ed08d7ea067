/**
 * The web dashboard end to end, in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core; never a downloaded browser) against a real server on a loopback port,
 * with jobs seeded in a real SQLite file and an in-process worker running while the pages
 * watch. Screenshots of every page go to a temporary folder printed at the start.
 *
 * Builds the dashboard first when dist/dashboard is missing (a fresh clone where only
 * `npm install` ran builds it through `prepare`, so this is a fallback).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { Conveyor } from '../src/index.ts';
import { createApiKey } from '../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dashboard-shots-'));
/** Generous: two shared cores, other test files running at the same time. */
const T = 30_000;

function ensureBuilt(): void {
  if (fs.existsSync(path.join(ROOT, 'dist/dashboard/index.html'))) return;
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'dashboard/vite.config.ts', '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = T): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A handler that fails with a real stack trace through a named function. */
function chargeCard(amount: number): never {
  throw new Error(`card declined for ${amount} EUR`);
}

describe('dashboard in Chromium', () => {
  let dir: string;
  let cv: Conveyor;
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let failedJobId: string;
  const shot = async (name: string, p: Page = page, fullPage = true) => {
    await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  };
  const cellText = (queue: string, state: string) => page.locator(`tr[data-queue="${queue}"] td[data-state="${state}"]`).innerText();

  before(async () => {
    console.log(`dashboard screenshots: ${SHOTS}`);
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dashboard-'));
    cv = await Conveyor.open({ store: openSqliteStore({ path: path.join(dir, 'c.db'), durability: 'normal', busyTimeoutMs: 5000 }) });

    // Seed: a queue to page through, one with a failed job, a few busy-looking ones.
    await cv.queue('email').addBulk(Array.from({ length: 60 }, (_, i) => ({ name: i % 3 ? 'welcome' : 'digest', data: { to: `user${i}@example.com`, locale: 'en' } })));
    const payments = cv.queue<{ amount: number }>('payments');
    const failed = await payments.add('charge', { amount: 42 }, { attempts: 2, backoff: { type: 'fixed', delay: 1 } });
    failedJobId = failed.id;
    await payments.add('charge', { amount: 7 }, { delay: 3_600_000 });
    const w = cv.worker<{ amount: number }>('payments', async (job, { log }) => {
      await log(`charging ${job.data.amount} EUR`);
      chargeCard(job.data.amount);
    });
    await waitUntil(async () => (await payments.getJob(failedJobId))?.state === 'failed', 'the payment to fail twice');
    await w.close();
    await cv.queue('reports').addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'monthly', data: { month: i + 1 } })));
    await cv.queue('reports').pause();

    server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0, maintenance: { intervalMs: 1000 } });
    base = `${server.url}/dashboard`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // playwright gives every launch a fresh temporary profile (user-data-dir) of its own.
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
    context.setDefaultTimeout(T);
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await cv?.close({ timeoutMs: 2000 });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    console.log(`dashboard screenshots: ${SHOTS}`);
  });

  it('serves the app with deep links, long-cached hashed assets and a strict CSP', async () => {
    const index = await fetch(`${base}/queues/email/failed`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const html = await index.text();
    const asset = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, 'index.html loads a hashed script');
    const js = await fetch(server.url + asset, { headers: { 'accept-encoding': 'br' } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /max-age=31536000, immutable/);
    assert.equal((await fetch(`${base}/assets/index-gone.js`)).status, 404, 'a missing asset is a 404, not the app');
    const bare = await fetch(`${server.url}/dashboard`, { redirect: 'manual' });
    assert.equal(bare.status, 302);
    assert.equal(bare.headers.get('location'), '/dashboard/');
  });

  it('overview: counts change live while a worker runs, without reloading the page', async () => {
    const live = cv.queue<{ n: number }>('live');
    await live.addBulk(Array.from({ length: 40 }, (_, n) => ({ name: 'resize', data: { n } })));
    await page.goto(`${base}/`);
    await page.locator('[data-testid="live-status"].live-live').waitFor();
    await waitUntil(async () => (await cellText('live', 'waiting')) === '40', 'waiting 40 on the overview');
    assert.equal(await cellText('live', 'completed'), '0');
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 7));

    // Slow enough (≥ 6 s in all) that the page, refreshing at most once a second, shows counts on the way.
    const worker = cv.worker<{ n: number }>('live', async () => {
      await new Promise((r) => setTimeout(r, 150));
      return 'ok';
    }, { concurrency: 1 });
    try {
      const seen = new Set<string>();
      await waitUntil(async () => {
        const c = await cellText('live', 'completed');
        seen.add(c);
        return c === '40';
      }, 'completed to reach 40 on the page', 120_000);
      assert.ok([...seen].some((c) => Number(c) > 0 && Number(c) < 40), `the count moved through intermediate values (${[...seen].join(', ')})`);
      await waitUntil(async () => (await cellText('live', 'waiting')) === '0', 'waiting to reach 0');
    } finally {
      await worker.close();
    }
    assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 7, 'no reload happened');
    // The paused badge and the throughput chart.
    await page.locator('tr[data-queue="reports"] .badge.paused').waitFor();
    await page.locator('figure.chart svg rect.bar-completed').first().waitFor();
    await waitUntil(async () => (await page.locator('.tile', { hasText: 'Failure rate' }).locator('.tile-value').innerText()) !== '–', 'failure rate tile');
    await shot('overview');
  });

  it('queue page: cursor paging through jobs, deep links per state, search by data', async () => {
    await page.goto(`${base}/queues/email/waiting`);
    const rows = page.locator('table.jobs-table tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 25);
    const firstPage = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job')));
    await shot('queue', page, false);
    await page.getByRole('link', { name: 'Older →' }).click();
    await page.waitForURL(/cursor=/);
    await waitUntil(async () => (await rows.first().getAttribute('data-job')) !== firstPage[0], 'the second page');
    const secondPage = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-job')));
    assert.equal(secondPage.length, 25);
    assert.ok(secondPage.every((id) => !firstPage.includes(id)), 'pages do not overlap');
    assert.ok(Number(secondPage[0]) < Number(firstPage[24]), 'older jobs on the next page');
    await page.getByRole('link', { name: 'Older →' }).click();
    await waitUntil(async () => (await rows.count()) === 10, 'the last page of 10');
    assert.equal(await page.getByRole('link', { name: 'Older →' }).count(), 0, 'no next page after the last');
    await page.getByRole('link', { name: '← Newer' }).click();
    await waitUntil(async () => (await rows.first().getAttribute('data-job')) === secondPage[0], 'back to the second page');

    // A deep link to a state, reloaded, shows that state.
    await page.goto(`${base}/queues/payments/delayed`);
    await page.locator('table.jobs-table tbody tr').first().waitFor();
    assert.equal(await page.locator('.tabs a[aria-current="page"]').innerText().then((t) => t.split(/\s/)[0]), 'delayed');

    // Search by data.
    await page.goto(`${base}/queues/email`);
    await page.getByRole('searchbox').fill('user17@example');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=user17/);
    await waitUntil(async () => (await rows.count()) === 1 && (await rows.first().innerText()).includes('welcome'), 'one search hit');
    await shot('queue-search');
  });

  it('job page: a failed job shows its attempts with stack traces and logs', async () => {
    await page.goto(`${base}/queues/payments/jobs/${failedJobId}`);
    await page.locator('h1 .badge.state-failed').waitFor();
    const timeline = page.locator('ol.timeline');
    assert.equal(await timeline.locator('li.tl-item.failed').count(), 2, 'one entry per failed attempt');
    await timeline.getByText('card declined for 42 EUR').first().waitFor();
    const stack = timeline.locator('details.stack[open] pre');
    assert.match(await stack.innerText(), /at chargeCard \(/, 'the last attempt\'s stack trace is open');
    assert.match(await page.locator('ol.logs').innerText(), /charging 42 EUR/);
    assert.match(await page.locator('pre[aria-label="Data"]').innerText(), /"amount": 42/);
    await shot('job-failed');
  });

  it('retry from the job page moves the job on, and a worker completes it', async () => {
    await page.goto(`${base}/queues/payments/jobs/${failedJobId}`);
    await page.getByRole('button', { name: '↻ Retry' }).click();
    await page.locator('h1 .badge.state-waiting').waitFor();
    assert.equal((await cv.queue('payments').getJob(failedJobId))?.state, 'waiting');
    const worker = cv.worker<{ amount: number }>('payments', async (job) => ({ charged: job.data.amount }));
    try {
      await page.locator('h1 .badge.state-completed').waitFor();
    } finally {
      await worker.close();
    }
    assert.match(await page.locator('pre[aria-label="Result"]').innerText(), /"charged": 42/);
    assert.equal(await page.locator('ol.timeline li.tl-item.failed').count(), 2, 'the error history is kept');
    await shot('job-completed');
  });

  it('pause and resume a queue from its page', async () => {
    await page.goto(`${base}/queues/email`);
    await page.getByRole('button', { name: '❚❚ Pause' }).click();
    await page.locator('h1 .badge.paused').waitFor();
    assert.equal((await cv.store.listQueues()).find((q) => q.name === 'email')?.paused, true);
    await page.getByRole('button', { name: '▶ Resume' }).click();
    await page.locator('h1 .badge.paused').waitFor({ state: 'detached' });
    assert.equal((await cv.store.listQueues()).find((q) => q.name === 'email')?.paused, false);
  });

  it('drain asks for the queue name before removing waiting jobs', async () => {
    const q = cv.queue('scratch');
    await q.addBulk([{ name: 'a', data: 1 }, { name: 'b', data: 2 }]);
    await page.goto(`${base}/queues/scratch`);
    await page.getByRole('button', { name: 'Drain…' }).click();
    const dialog = page.locator('dialog[open]');
    const drain = dialog.getByRole('button', { name: 'Drain' });
    assert.equal(await drain.isDisabled(), true, 'disabled until the name is typed');
    await dialog.getByPlaceholder('scratch').fill('scratch');
    await drain.click();
    await waitUntil(async () => (await q.getCounts()).waiting === 0, 'the drain');
    await page.locator('.empty').waitFor();
    await page.getByText('No job is in scratch right now').waitFor();
  });

  it('workers page: live and stale workers, stale ones stand out', async () => {
    const now = Date.now();
    const base0 = { kind: 'remote' as const, pid: 4242, concurrency: 8, startedAt: now - 3_600_000, lastClaimAt: now - 2000 };
    await cv.store.reportWorker({ ...base0, id: 'w-fresh', host: 'worker-a', queues: ['email', 'payments'], active: 3, lastSeenAt: now });
    await cv.store.reportWorker({ ...base0, id: 'w-stale', host: 'worker-b', queues: ['email'], active: 1, lastSeenAt: now - 50_000 });
    await page.goto(`${base}/workers`);
    await page.locator('tr[data-worker="w-fresh"]').waitFor();
    assert.equal(await page.locator('tr[data-worker="w-stale"].stale').count(), 1);
    assert.equal(await page.locator('tr[data-worker="w-fresh"].stale').count(), 0);
    await page.locator('.warning-box').waitFor();
    await shot('workers');
  });

  it('auth: no key gets the prompt, a read-only key sees no actions, an admin key can act', async () => {
    const admin = await createApiKey(cv.store, { name: 'ops', scopes: ['admin'] });
    const reader = await createApiKey(cv.store, { name: 'viewer', scopes: ['read'] });
    server.context.keys.invalidate();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    ctx.setDefaultTimeout(T);
    const p = await ctx.newPage();
    try {
      await p.goto(`${base}/queues/payments`);
      const keyInput = p.getByLabel('API key');
      await keyInput.waitFor();
      await shot('login', p);
      await keyInput.fill('cvk_0000000000000000_wrong');
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.locator('.error-text').waitFor();

      await keyInput.fill(reader.key);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.locator('h1', { hasText: 'payments' }).waitFor();
      await p.locator('.badge.readonly').waitFor();
      await p.locator('table.jobs-table tbody tr').first().waitFor();
      assert.equal(await p.getByRole('button', { name: /Pause|Resume|Retry|Drain|Clean/ }).count(), 0, 'no queue actions for a read-only key');
      await p.goto(`${base}/queues/payments/jobs/${failedJobId}`);
      await p.locator('h1 .badge').waitFor();
      assert.equal(await p.getByRole('button', { name: /Retry|Cancel|Remove|Run now/ }).count(), 0, 'no job actions for a read-only key');
      await p.locator('[data-testid="live-status"].live-live').waitFor();
      // The key stays for the tab's session: a reload does not ask again.
      await p.reload();
      await p.locator('h1 .badge').waitFor();

      await p.getByRole('button', { name: 'Sign out' }).click();
      await keyInput.fill(admin.key);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.goto(`${base}/queues/payments`);
      await p.getByRole('button', { name: '❚❚ Pause' }).click();
      await p.locator('h1 .badge.paused').waitFor();
      assert.equal((await cv.store.listQueues()).find((q) => q.name === 'payments')?.paused, true);
      await p.getByRole('button', { name: '▶ Resume' }).click();
      await p.locator('h1 .badge.paused').waitFor({ state: 'detached' });

      // A revoked key sends the user back to the prompt.
      await cv.store.revokeApiKey({ id: admin.record.id, now: Date.now() });
      server.context.keys.invalidate();
      await p.reload();
      await keyInput.waitFor();
    } finally {
      await ctx.close();
      for (const k of [admin, reader]) await cv.store.revokeApiKey({ id: k.record.id, now: Date.now() });
      server.context.keys.invalidate();
    }
  });

  it('phone width and dark theme', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, colorScheme: 'dark', isMobile: true, hasTouch: true });
    phone.setDefaultTimeout(T);
    const p = await phone.newPage();
    try {
      await p.goto(`${base}/`);
      await p.locator('tr[data-queue="email"]').waitFor();
      const overflow = await p.evaluate(() => {
        const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
        return root.scrollWidth - root.clientWidth;
      });
      assert.ok(overflow <= 1, `the page does not scroll sideways at phone width (overflow ${overflow}px)`);
      await shot('overview-phone-dark', p);
      await p.goto(`${base}/queues/email/waiting`);
      await p.locator('table.jobs-table tbody tr').first().waitFor();
      await shot('queue-phone-dark', p, false);
      await p.goto(`${base}/queues/payments/jobs/${failedJobId}`);
      await p.locator('ol.timeline').waitFor();
      await shot('job-phone-dark', p);
    } finally {
      await phone.close();
    }
  });
});
