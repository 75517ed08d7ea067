/**
 * A status line for long-running commands (`conveyor worker`, `conveyor demo`): on a
 * terminal one line rewritten in place (`\r`, clear to the end of the line), with ordinary
 * lines printed above it; elsewhere (a pipe, a log file) plain lines, so logs stay readable.
 */
export class LiveLine {
  readonly tty: boolean;
  readonly #stream: NodeJS.WriteStream;
  #shown = '';

  constructor(stream: NodeJS.WriteStream = process.stdout) {
    this.#stream = stream;
    this.tty = stream.isTTY === true;
  }

  /** Replaces the status line (on a terminal); elsewhere prints it as a line. */
  update(text: string): void {
    if (!this.tty) {
      this.#stream.write(`${text}\n`);
      return;
    }
    const width = this.#stream.columns ?? 0;
    const fitted = width > 1 && text.length >= width ? `${text.slice(0, width - 2)}…` : text;
    this.#stream.write(`\r${fitted}\x1b[K`);
    this.#shown = fitted;
  }

  /** Prints a line above the status line, which is drawn again below it. */
  print(line: string): void {
    if (!this.tty || this.#shown === '') {
      this.#stream.write(`${line}\n`);
      return;
    }
    this.#stream.write(`\r\x1b[K${line}\n${this.#shown}`);
  }

  /** Leaves the status line as it is and moves to a new line (before exiting, or before other output). */
  end(): void {
    if (this.tty && this.#shown !== '') this.#stream.write('\n');
    this.#shown = '';
  }
}

/** 12345 → `12,345`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** A rate per second with one decimal below 100. */
export function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '0';
  return perSecond < 100 ? perSecond.toFixed(1) : Math.round(perSecond).toLocaleString('en-US');
}
