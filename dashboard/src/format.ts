// Numbers, times and durations as an operator reads them at 3 a.m.

export function num(n: number): string {
  return n.toLocaleString('en-US');
}

export function compact(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0).replace(/\.0$/, '')}k`;
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 1 : 0).replace(/\.0$/, '')}M`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1) return '<1 ms';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`.replace(/ 0 s$/, '');
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`.replace(/ 0 min$/, '');
  return `${Math.floor(ms / 86_400_000)} d ${Math.round((ms % 86_400_000) / 3_600_000)} h`.replace(/ 0 h$/, '');
}

export function ago(at: number | null | undefined, now = Date.now()): string {
  if (at === null || at === undefined) return '–';
  const d = now - at;
  if (Math.abs(d) < 1500) return 'just now';
  return d > 0 ? `${duration(d)} ago` : `in ${duration(-d)}`;
}

export function when(at: number | null | undefined): string {
  if (at === null || at === undefined) return '–';
  const d = new Date(at);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function percent(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '–';
  if (x === 0) return '0 %';
  if (x < 0.001) return '<0.1 %';
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)} %`;
}

export function json(value: unknown): string {
  if (value === undefined) return '';
  return JSON.stringify(value, null, 2);
}
