/**
 * `conveyor serve`: the HTTP server (src/server/server.ts) on one store, with the store's
 * maintenance loop. Prints where everything is, and shuts down gracefully on SIGTERM/SIGINT.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { VERSION } from '../../version.ts';
import { describeStoreUrl, maskUrl, parsePort, resolveConfig } from '../config.ts';
import { errorContext, formatError } from '../errors.ts';
import { formatDuration, note, printJson, printLine } from '../output.ts';
import { intParser, parseDuration, parseSize } from '../parse.ts';
import { examples, withJson, withUrl } from '../shared.ts';

interface ServeFlags {
  url?: string;
  host?: string;
  port?: number;
  insecure?: boolean;
  rateLimit?: number;
  bodyLimit?: number;
  trustProxy?: string;
  logLevel: string;
  shutdownTimeout: number;
  json?: boolean;
}

function portFlag(text: string): number {
  try {
    return parsePort(text, '--port');
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the HTTP server: API for producers, remote workers and admins, OpenAPI, Prometheus metrics, health checks, and the store maintenance loop')
    .option('--host <address>', 'address to listen on; anything but loopback needs an API key (or --insecure). Default: $CONVEYOR_HOST, else 127.0.0.1')
    .option('--port <n>', 'port, 0 for a free one. Default: $CONVEYOR_PORT, else 8080', portFlag)
    .option('--insecure', 'serve without API keys on a non-loopback address (only behind a trusted network)')
    .option('--rate-limit <n>', 'requests per minute per API key (or per client address without keys); 0 turns it off. Default 60000', intParser(0))
    .option('--body-limit <size>', 'largest request body, e.g. 16mb, 512kb. Default 16mb', parseSize)
    .option('--trust-proxy <proxies>', "behind a reverse proxy: 'true', or the proxy addresses/CIDRs (comma-separated) whose X-Forwarded-For is believed, for rate limits and logs")
    .addOption(new Option('--log-level <level>', 'server log level (JSON lines on stdout)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addOption(new Option('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT, exit 1 if shutting down takes longer than this').argParser(parseDuration).default(30_000, '30s'));
  withUrl(cmd);
  withJson(cmd);
  examples(cmd, [
    'conveyor serve                                        # 127.0.0.1:8080, embedded SQLite in .conveyor/',
    "conveyor serve --url 'postgres://app:secret@db/app' --port 9000",
    'conveyor keys create --name admin --scopes admin && conveyor serve --host 0.0.0.0',
    'CONVEYOR_PORT=0 conveyor serve --json                 # a free port; one JSON line with the URLs',
  ]);
  cmd.addHelpText('after', '\nSIGTERM or SIGINT (Ctrl-C) shut the server down gracefully; a second signal exits at once.\n');
  cmd.action(async (flags: ServeFlags) => {
    const config = resolveConfig({ url: flags.url, host: flags.host, port: flags.port });
    errorContext.url = config.url;
    const [{ startServer }, { Conveyor }] = await Promise.all([import('../../server/server.ts'), import('../../engine/conveyor.ts')]);
    // One write per event-loop turn for the requests' adds: see ConveyorOptions.groupCommit.
    const cv = await Conveyor.open({ url: config.url.value, groupCommit: 'tick' });
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(cv, {
        host: config.host.value,
        port: config.port.value,
        insecure: flags.insecure === true,
        ...(flags.rateLimit === undefined ? {} : { rateLimitPerMinute: flags.rateLimit }),
        ...(flags.bodyLimit === undefined ? {} : { bodyLimit: flags.bodyLimit }),
        ...(flags.trustProxy === undefined ? {} : { trustProxy: flags.trustProxy === 'true' ? true : flags.trustProxy.split(',').map((a) => a.trim()) }),
        logger: flags.logLevel === 'silent' ? false : { level: flags.logLevel },
      });
    } catch (err) {
      await cv.close().catch(() => undefined);
      throw err;
    }
    const auth = await server.context.authRequired();
    const urls = {
      url: server.url,
      api: `${server.url}/api/v1`,
      openapi: `${server.url}/api/v1/openapi.json`,
      metrics: `${server.url}/metrics`,
      health: `${server.url}/health/ready`,
      // Printed once the server has a dashboard (another module's work in progress).
      dashboard: server.app.hasRoute({ method: 'GET', url: '/dashboard' }) ? `${server.url}/dashboard/` : null,
    };
    if (flags.json) printJson({ ...urls, auth, store: maskUrl(config.url.value), version: VERSION, pid: process.pid });
    else {
      printLine(`conveyor ${VERSION} serving ${maskUrl(config.url.value)} (${await describeStoreUrl(config.url.value)})`);
      const row = (label: string, text: string) => printLine(`  ${label.padEnd(10)}${text}`);
      row('API', urls.api);
      row('OpenAPI', urls.openapi);
      row('metrics', urls.metrics);
      row('health', `${urls.health}  (liveness: ${server.url}/health/live)`);
      if (urls.dashboard !== null) row('dashboard', urls.dashboard);
      row('auth', auth ? 'API keys required (Authorization: Bearer <key>; manage them with conveyor keys)' : 'off: loopback address and no API key yet (conveyor keys create turns it on)');
      printLine('Press Ctrl-C to stop.');
    }

    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        note(`conveyor: ${signal} again: exiting at once`);
        process.exit(1);
      }
      stopping = true;
      const started = Date.now();
      note(
        `conveyor: ${signal}: shutting down. Refusing new requests and closing open connections (long-polls and event streams end; ` +
          `remote workers keep their leases and acknowledge through another server or after reconnecting), ` +
          `then waiting for the maintenance loop's current pass and for the store to close. Send ${signal} again to exit at once.`,
      );
      const deadline = setTimeout(() => {
        note(`conveyor: shutdown still not finished after ${formatDuration(flags.shutdownTimeout)} (--shutdown-timeout): exiting with code 1`);
        process.exit(1);
      }, flags.shutdownTimeout);
      deadline.unref();
      (async () => {
        await server.close();
        note('conveyor: HTTP server closed; closing the store');
        await cv.close();
      })().then(
        () => {
          clearTimeout(deadline);
          note(`conveyor: stopped cleanly in ${formatDuration(Date.now() - started)}`);
          process.exit(0);
        },
        (err: unknown) => {
          clearTimeout(deadline);
          note(`conveyor: ${formatError(err, errorContext).join('\n  ')}`);
          note('conveyor: shutdown failed: exiting with code 1');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
