/**
 * The child side of the line protocol that test/helpers/processes.ts reads: for the
 * fixture scripts in test/fixtures. No node:test import here: a fixture runs outside the
 * test runner, and anything the runner printed would mix with its lines.
 */

/** Prints one protocol line on stdout. */
export const out = (line: string): void => void process.stdout.write(`${line}\n`);

/** On SIGTERM: closes gracefully (10 s), prints `closed` and exits 0; exits 1 if the close fails. */
export function closeOnSigterm(cv: { close(options: { timeoutMs: number }): Promise<unknown> }): void {
  process.on('SIGTERM', () => {
    void cv.close({ timeoutMs: 10_000 }).then(
      () => {
        out('closed');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  });
}
