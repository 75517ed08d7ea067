/** `closeOnSignals` for `Conveyor` and `RemoteConveyor`: one implementation for both. */

export interface CloseOnSignalsOptions {
  timeoutMs?: number;
  exit?: boolean;
  onSignal?: (signal: string) => void;
}

/**
 * Wires SIGTERM and SIGINT to a graceful `close()`, then exits with code 0 (or 1 if closing
 * failed), unless `exit` is false. A second signal exits at once. Returns a function that
 * removes the handlers.
 */
export function closeOnSignals(close: (options: { timeoutMs?: number }) => Promise<void>, options: CloseOnSignalsOptions = {}): () => void {
  let received = false;
  const handler = (signal: NodeJS.Signals) => {
    if (received) process.exit(1);
    received = true;
    options.onSignal?.(signal);
    close({ ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) }).then(
      () => {
        if (options.exit !== false) process.exit(0);
      },
      () => {
        if (options.exit !== false) process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    process.off('SIGTERM', handler);
    process.off('SIGINT', handler);
  };
}
