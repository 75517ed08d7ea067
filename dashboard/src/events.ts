// Live events from GET /api/v1/events (Server-Sent Events), read with fetch rather than
// EventSource: EventSource cannot send an Authorization header, and putting the key in the
// URL would write it into access logs. One stream per tab, shared by every page; it
// reconnects with backoff and resumes with Last-Event-ID, so the server replays what the tab
// missed.
import { authHeaders } from './api.ts';

export interface LiveEvent {
  seq: number;
  queue: string;
  type: string;
  at: number;
  jobs: Array<{ id: string; name?: string; state?: string; error?: string; progress?: string }>;
  count?: number;
}

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'off';

type Listener = (events: LiveEvent[]) => void;

class LiveStream {
  status: LiveStatus = 'off';
  #listeners = new Set<Listener>();
  #statusListeners = new Set<(s: LiveStatus) => void>();
  #lastId: string | null = null;
  #abort: AbortController | null = null;
  #retryMs = 1000;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pending: LiveEvent[] = [];
  #flushScheduled = false;

  subscribe(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.#statusListeners.add(fn);
    return () => this.#statusListeners.delete(fn);
  }

  start(): void {
    if (this.#abort !== null) return;
    void this.#run();
  }

  stop(): void {
    this.#abort?.abort();
    this.#abort = null;
    clearTimeout(this.#timer);
    this.#setStatus('off');
  }

  /** Reconnect now (a new key). */
  restart(): void {
    this.stop();
    this.#lastId = null;
    this.start();
  }

  #setStatus(s: LiveStatus): void {
    if (this.status === s) return;
    this.status = s;
    for (const fn of this.#statusListeners) fn(s);
  }

  #emit(e: LiveEvent): void {
    // Deliver in batches, once per animation-frame-ish tick: a burst of 1,000 events is one update.
    this.#pending.push(e);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setTimeout(() => {
      this.#flushScheduled = false;
      const batch = this.#pending.splice(0);
      for (const fn of this.#listeners) {
        try {
          fn(batch);
        } catch (err) {
          console.error(err);
        }
      }
    }, 50);
  }

  async #run(): Promise<void> {
    const abort = new AbortController();
    this.#abort = abort;
    this.#setStatus(this.#lastId === null ? 'connecting' : 'reconnecting');
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders() };
      if (this.#lastId !== null) headers['last-event-id'] = this.#lastId;
      const res = await fetch('/api/v1/events', { headers, signal: abort.signal, cache: 'no-store' });
      if (!res.ok || res.body === null) throw new Error(`events: HTTP ${res.status}`);
      this.#setStatus('live');
      this.#retryMs = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let sep: number;
        while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep).replace(/^\r?\n\r?\n/, '');
          this.#parse(block);
        }
      }
    } catch (err) {
      if (abort.signal.aborted) return;
      console.warn('live events:', err);
    }
    if (abort.signal.aborted || this.#abort !== abort) return;
    this.#abort = null;
    this.#setStatus('reconnecting');
    this.#timer = setTimeout(() => this.start(), this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, 15_000);
  }

  #parse(block: string): void {
    let id: string | null = null;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.#retryMs = Math.max(1000, Number(value));
    }
    if (id !== null) this.#lastId = id;
    if (data.length === 0 || event === 'error') return;
    try {
      this.#emit(JSON.parse(data.join('\n')) as LiveEvent);
    } catch {
      // not ours
    }
  }
}

export const live = new LiveStream();
