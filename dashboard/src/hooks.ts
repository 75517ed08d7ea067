import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { live, type LiveEvent } from './events.ts';

export interface Async<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  /** Fetch again, keeping the current data on screen meanwhile. */
  reload: () => void;
}

/** Loads `fetcher()` when `deps` change; `reload` refreshes in place (no flash of the loading state). */
export function useAsync<T>(fetcher: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const generation = useRef(0);
  const inFlight = useRef(false);
  const again = useRef(false);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;

  const run = useCallback((fresh: boolean) => {
    const gen = fresh ? ++generation.current : generation.current;
    if (!fresh && inFlight.current) {
      again.current = true;
      return;
    }
    inFlight.current = true;
    if (fresh) setState({ data: undefined, error: undefined, loading: true });
    fetcherRef.current().then(
      (data) => {
        if (gen === generation.current) setState({ data, error: undefined, loading: false });
      },
      (error: Error) => {
        if (gen === generation.current) setState((s) => ({ data: s.data, error, loading: false }));
      },
    ).finally(() => {
      inFlight.current = false;
      if (again.current && gen === generation.current) {
        again.current = false;
        run(false);
      }
    });
  }, []);

  useEffect(() => {
    again.current = false;
    inFlight.current = false;
    run(true);
  }, deps);

  const reload = useCallback(() => run(false), [run]);
  return { ...state, reload };
}

/**
 * Calls `fn` for live events that `wanted` accepts, at most once per `everyMs` (leading and
 * trailing), so a burst of thousands of events costs one or two refreshes, never a storm.
 */
export function useLiveRefresh(wanted: (e: LiveEvent) => boolean, fn: () => void, everyMs: number, deps: unknown[]): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const wantedRef = useRef(wanted);
  wantedRef.current = wanted;
  useEffect(() => {
    let last = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fire = () => {
      timer = undefined;
      last = Date.now();
      fnRef.current();
    };
    const off = live.subscribe((events) => {
      if (!events.some((e) => wantedRef.current(e))) return;
      if (timer !== undefined) return;
      const wait = Math.max(0, last + everyMs - Date.now());
      timer = setTimeout(fire, wait);
    });
    // After a reconnect, what was missed may include anything: refresh once.
    const offStatus = live.onStatus((s) => {
      if (s === 'live') fnRef.current();
    });
    return () => {
      off();
      offStatus();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, deps);
}

/** Calls `fn` every `ms` while the tab is visible (for data that has no events, like worker heartbeats). */
export function useVisibleInterval(fn: () => void, ms: number): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    const id = setInterval(() => {
      if (document.visibilityState === 'visible') fnRef.current();
    }, ms);
    const onVisible = () => {
      if (document.visibilityState === 'visible') fnRef.current();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      clearInterval(id);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [ms]);
}

/** The current time, re-rendered every `ms`, for "3 s ago" labels. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}

export function useLiveStatus() {
  const [status, setStatus] = useState(live.status);
  useEffect(() => {
    const off = live.onStatus(setStatus);
    // The status may have changed between the first render and this subscription.
    setStatus(live.status);
    return off;
  }, []);
  return status;
}
