/**
 * The web dashboard (issue 7) as static files under `/dashboard/`: the single-page app
 * built by `npm run build` into `dist/dashboard` (source in `dashboard/`). It talks to the
 * server only through the documented HTTP API, with the user's API key, so the files
 * themselves are public: they hold no data.
 *
 * The build is a handful of files of a few tens of KB, so they are read into memory (with
 * gzip and brotli copies made once) rather than streamed from disk per request. Hashed
 * assets (`/dashboard/assets/*`) are cached by browsers for a year; `index.html` is
 * revalidated every time (ETag), so a new build shows on the next load. Any other path
 * under `/dashboard/` answers `index.html` (deep links such as `/dashboard/queues/email`).
 * When the dashboard was not built (running from a source checkout before `npm run
 * build`) every page answers 503 with what to run. A rebuild while the server runs is
 * picked up: `index.html` is checked for changes at most once a second.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from '../server.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.svg', '.json', '.map', '.txt']);

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface StaticFile {
  readonly body: Buffer;
  readonly gzip: Buffer | null;
  readonly br: Buffer | null;
  readonly type: string;
  readonly etag: string;
  readonly immutable: boolean;
}

/** Where the built dashboard is: beside the compiled server (dist/dashboard), or the checkout's dist/ when running from src/. */
export function dashboardDir(): string | null {
  const fromEnv = process.env.CONVEYOR_DASHBOARD_DIR;
  if (fromEnv) return fromEnv;
  const here = path.dirname(fileURLToPath(import.meta.url)); // <root>/{dist,src}/server/routes
  const candidates = [path.resolve(here, '../../dashboard'), path.resolve(here, '../../../dist/dashboard')];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'index.html'))) return dir;
  }
  return null;
}

function walk(dir: string, base = dir, out = new Map<string, string>()): Map<string, string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, base, out);
    else if (entry.isFile()) out.set('/' + path.relative(base, full).split(path.sep).join('/'), full);
  }
  return out;
}

function load(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const [urlPath, full] of walk(dir)) {
    const ext = path.extname(urlPath).toLowerCase();
    const body = fs.readFileSync(full);
    const compress = COMPRESSIBLE.has(ext) && body.length > 512;
    files.set(urlPath, {
      body,
      gzip: compress ? zlib.gzipSync(body, { level: 9 }) : null,
      br: compress ? zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } }) : null,
      type: TYPES[ext] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      immutable: urlPath.startsWith('/assets/'),
    });
  }
  return files;
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>conveyor dashboard: not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328;background:#fff}
@media (prefers-color-scheme:dark){body{color:#e6edf3;background:#0d1117}code{background:#161b22!important}}
code{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>The dashboard is not built</h1>
<p>This server found no built dashboard (<code>dist/dashboard/index.html</code>). In a source checkout, build it once with:</p>
<p><code>npm run build</code></p>
<p>then reload this page. The HTTP API under <code>/api/v1</code> works without it.</p></body></html>
`;

class DashboardFiles {
  #dir: string | null | undefined;
  #files: Map<string, StaticFile> | null = null;
  #indexMtime = 0;
  #checkedAt = 0;

  /** The files, reloaded when index.html changed (a rebuild); null when not built. */
  get(): Map<string, StaticFile> | null {
    const now = Date.now();
    if (this.#files !== null && now - this.#checkedAt < 1000) return this.#files;
    this.#checkedAt = now;
    if (this.#dir === undefined || this.#dir === null || this.#files === null) this.#dir = dashboardDir();
    if (this.#dir === null) {
      this.#files = null;
      return null;
    }
    let mtime: number;
    try {
      mtime = fs.statSync(path.join(this.#dir, 'index.html')).mtimeMs;
    } catch {
      this.#dir = undefined;
      this.#files = null;
      return null;
    }
    if (this.#files === null || mtime !== this.#indexMtime) {
      try {
        this.#files = load(this.#dir);
        this.#indexMtime = mtime;
      } catch {
        this.#files = null;
      }
    }
    return this.#files;
  }
}

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile): FastifyReply {
  reply.headers(SECURITY_HEADERS);
  reply.header('content-type', file.type);
  reply.header('etag', file.etag);
  reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('vary', 'accept-encoding');
  if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
  const accept = String(request.headers['accept-encoding'] ?? '');
  if (file.br !== null && /\bbr\b/.test(accept)) {
    reply.header('content-encoding', 'br');
    return reply.send(file.br);
  }
  if (file.gzip !== null && /\bgzip\b/.test(accept)) {
    reply.header('content-encoding', 'gzip');
    return reply.send(file.gzip);
  }
  return reply.send(file.body);
}

export function registerDashboardRoutes(app: FastifyInstance, _ctx: ServerContext): void {
  const files = new DashboardFiles();
  const config = { scope: 'public' as const };
  const schema = { hide: true };

  app.get('/dashboard', { config, schema }, async (_request, reply) => reply.redirect('/dashboard/', 302));

  app.get<{ Params: { '*': string } }>('/dashboard/*', { config, schema }, async (request, reply) => {
    const built = files.get();
    if (built === null) {
      reply.headers(SECURITY_HEADERS);
      return reply.code(503).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').header('retry-after', '60').send(NOT_BUILT);
    }
    const rest = '/' + (request.params['*'] ?? '');
    const file = built.get(rest);
    if (file !== undefined) return send(request, reply, file);
    // A missing hashed asset (an old build's file) or any file-like path is a real 404; anything else is a page of the app.
    if (rest.startsWith('/assets/') || /\.[a-z0-9]{1,8}$/i.test(rest)) {
      return reply.code(404).header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(`not found: /dashboard${rest}\n`);
    }
    return send(request, reply, built.get('/index.html')!);
  });
}
