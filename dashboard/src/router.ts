// A small History-API router: every page, queue, state and job has its own URL under /dashboard/.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/dashboard';

export type Route =
  | { page: 'overview' }
  | { page: 'workers' }
  | { page: 'queue'; queue: string; state: string | null; cursor: string | null; q: string | null }
  | { page: 'job'; queue: string; id: string }
  | { page: 'notfound'; path: string };

export function parse(location: { pathname: string; search: string }): Route {
  let path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  path = path.replace(/\/+$/, '');
  const query = new URLSearchParams(location.search);
  const parts = path.split('/').filter((p) => p !== '').map((p) => decodeURIComponent(p));
  if (parts.length === 0) return { page: 'overview' };
  if (parts[0] === 'workers' && parts.length === 1) return { page: 'workers' };
  if (parts[0] === 'queues' && parts.length >= 2) {
    const queue = parts[1]!;
    if (parts.length === 2 || parts.length === 3) {
      return { page: 'queue', queue, state: parts[2] ?? null, cursor: query.get('cursor'), q: query.get('q') };
    }
    if (parts.length === 4 && parts[2] === 'jobs') return { page: 'job', queue, id: parts[3]! };
  }
  return { page: 'notfound', path };
}

const enc = encodeURIComponent;

export const href = {
  overview: () => `${BASE}/`,
  workers: () => `${BASE}/workers`,
  queue: (queue: string, state?: string | null, extra?: { cursor?: string | null; q?: string | null }) => {
    const q = new URLSearchParams();
    if (extra?.q) q.set('q', extra.q);
    if (extra?.cursor) q.set('cursor', extra.cursor);
    const s = q.toString();
    return `${BASE}/queues/${enc(queue)}${state ? `/${enc(state)}` : ''}${s ? `?${s}` : ''}`;
  },
  job: (queue: string, id: string) => `${BASE}/queues/${enc(queue)}/jobs/${enc(id)}`,
};

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.scrollTo(0, 0);
  for (const fn of listeners) fn();
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location));
  useEffect(() => {
    const update = () => setRoute(parse(location));
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** Same-origin links navigate without a reload; modified clicks (new tab) behave as usual. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
