import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type JobState } from './api.ts';
import { compact, json, percent } from './format.ts';

export function StateBadge({ state }: { state: JobState | string }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

export function PausedBadge() {
  return (
    <span class="badge paused" title="Workers do not claim jobs from this queue">
      paused
    </span>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  const status = error instanceof ApiError ? error.status : 0;
  const title =
    status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : status === 0 ? 'Server unreachable' : status >= 500 ? 'The server had a problem' : 'Request failed';
  return (
    <div class="error-box" role="alert">
      <strong>{title}</strong>
      <p>{error.message}</p>
      {retry && (
        <button type="button" class="btn" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <strong>{title}</strong>
      {children && <p>{children}</p>}
    </div>
  );
}

// ---- toasts: the outcome of every action, success or error

type Toast = { id: number; kind: 'ok' | 'error'; text: string };
let toastListener: ((t: Toast[]) => void) | null = null;
let toasts: Toast[] = [];
let toastSeq = 0;

export function toast(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const t = { id: ++toastSeq, kind, text };
  toasts = [...toasts.slice(-3), t];
  toastListener?.(toasts);
  setTimeout(
    () => {
      toasts = toasts.filter((x) => x.id !== t.id);
      toastListener?.(toasts);
    },
    kind === 'error' ? 8000 : 4000,
  );
}

export function Toasts() {
  const [list, setList] = useState<Toast[]>(toasts);
  useEffect(() => {
    toastListener = setList;
    return () => {
      toastListener = null;
    };
  }, []);
  return (
    <div class="toasts" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} class={`toast ${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

/** Runs an action with a busy state and reports its outcome as a toast. */
export function useAction(): [boolean, (label: string, fn: () => Promise<string | void>) => Promise<void>] {
  const [busy, setBusy] = useState(false);
  const run = async (label: string, fn: () => Promise<string | void>) => {
    setBusy(true);
    try {
      const message = await fn();
      toast(message ?? `${label}: done`);
    } catch (err) {
      toast(`${label} failed: ${(err as Error).message}`, 'error');
    } finally {
      setBusy(false);
    }
  };
  return [busy, run];
}

// ---- dialog

export function Dialog({ title, children, onClose }: { title: string; children: ComponentChildren; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog ref={ref} class="dialog" onClose={onClose} onCancel={onClose} aria-labelledby="dialog-title">
      <h2 id="dialog-title">{title}</h2>
      {children}
    </dialog>
  );
}

// ---- JSON

export function JsonView({ value, label }: { value: unknown; label: string }) {
  const text = value === undefined ? '' : json(value);
  const [copied, setCopied] = useState(false);
  if (value === null || value === undefined) return <p class="muted">{label}: none</p>;
  return (
    <div class="json">
      <button
        type="button"
        class="btn small copy"
        onClick={() => {
          void navigator.clipboard?.writeText(text).then(() => {
            setCopied(true);
            setTimeout(() => setCopied(false), 1500);
          });
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
      <pre aria-label={label}>{highlight(text)}</pre>
    </div>
  );
}

/** Colours keys, strings, numbers and literals; everything stays text (no HTML injection). */
function highlight(text: string) {
  const out: ComponentChildren[] = [];
  const re = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  let m: RegExpExecArray | null;
  let i = 0;
  while ((m = re.exec(text)) !== null && i < 20_000) {
    i++;
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1] !== undefined) {
      out.push(<span class={m[2] ? 'j-key' : 'j-str'}>{m[1]}</span>);
      if (m[2]) out.push(m[2]);
    } else if (m[3] !== undefined) out.push(<span class="j-lit">{m[3]}</span>);
    else out.push(<span class="j-num">{m[4]}</span>);
    last = re.lastIndex;
  }
  out.push(text.slice(last));
  return out;
}

// ---- charts: plain SVG, no chart library

export function ThroughputChart({ minutes, completed, failed, label }: { minutes: number[]; completed: number[]; failed: number[]; label: string }) {
  const n = minutes.length;
  const max = Math.max(1, ...completed.map((c, i) => c + (failed[i] ?? 0)));
  const w = 600;
  const h = 120;
  const bw = w / n;
  const total = completed.reduce((a, b) => a + b, 0) + failed.reduce((a, b) => a + b, 0);
  return (
    <figure class="chart" aria-label={label}>
      <div class="chart-scale">
        <span>{compact(max)}/min</span>
        <span>0</span>
      </div>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={`${label}: ${total} jobs finished`}>
        <line x1="0" y1={h - 0.5} x2={w} y2={h - 0.5} class="axis" />
        <line x1="0" y1="0.5" x2={w} y2="0.5" class="grid" />
        <line x1="0" y1={h / 2} x2={w} y2={h / 2} class="grid" />
        {minutes.map((t, i) => {
          const c = completed[i] ?? 0;
          const f = failed[i] ?? 0;
          const ch = (c / max) * (h - 2);
          const fh = (f / max) * (h - 2);
          const time = new Date(t).toTimeString().slice(0, 5);
          return (
            <g key={t}>
              <title>{`${time}: ${c} completed, ${f} failed`}</title>
              {f > 0 && <rect x={i * bw + bw * 0.12} width={bw * 0.76} y={h - ch - fh} height={Math.max(fh, 1)} class="bar-failed" />}
              {c > 0 && <rect x={i * bw + bw * 0.12} width={bw * 0.76} y={h - ch} height={Math.max(ch, 1)} class="bar-completed" />}
              <rect x={i * bw} width={bw} y={0} height={h} fill="transparent" />
            </g>
          );
        })}
      </svg>
      <figcaption class="chart-axis">
        <span>{n} min ago</span>
        <span>now</span>
      </figcaption>
    </figure>
  );
}

export function RateChart({ minutes, completed, failed, label }: { minutes: number[]; completed: number[]; failed: number[]; label: string }) {
  const rates = minutes.map((_, i) => {
    const c = completed[i] ?? 0;
    const f = failed[i] ?? 0;
    return c + f === 0 ? null : f / (c + f);
  });
  // At least a 5 % scale, so a rare failure is a small bar, not a wall.
  const max = Math.max(0.05, ...rates.map((r) => r ?? 0));
  const w = 600;
  const h = 120;
  const bw = w / minutes.length;
  return (
    <figure class="chart" aria-label={label}>
      <div class="chart-scale">
        <span>{percent(max)}</span>
        <span>0 %</span>
      </div>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={label}>
        <line x1="0" y1={h - 0.5} x2={w} y2={h - 0.5} class="axis" />
        <line x1="0" y1="0.5" x2={w} y2="0.5" class="grid" />
        <line x1="0" y1={h / 2} x2={w} y2={h / 2} class="grid" />
        {rates.map((r, i) => {
          if (r === null) return null;
          const t = new Date(minutes[i]!).toTimeString().slice(0, 5);
          const bh = Math.max(1, (r / max) * (h - 2));
          return (
            <g key={i}>
              <title>{`${t}: ${percent(r)} of ${(completed[i] ?? 0) + (failed[i] ?? 0)} finished jobs failed`}</title>
              <rect x={i * bw + bw * 0.12} width={bw * 0.76} y={h - bh} height={bh} class={r > 0 ? 'bar-failed' : 'bar-zero'} />
            </g>
          );
        })}
      </svg>
      <figcaption class="chart-axis">
        <span>{minutes.length} min ago</span>
        <span>now</span>
      </figcaption>
    </figure>
  );
}

export function Sparkline({ values, failed }: { values: number[]; failed: number[] }) {
  const max = Math.max(1, ...values.map((v, i) => v + (failed[i] ?? 0)));
  const w = 90;
  const h = 22;
  const bw = w / values.length;
  return (
    <svg class="sparkline" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" aria-hidden="true">
      {values.map((v, i) => {
        const f = failed[i] ?? 0;
        const vh = (v / max) * h;
        const fh = (f / max) * h;
        return (
          <g key={i}>
            {f > 0 && <rect x={i * bw} width={bw} y={h - vh - fh} height={fh} class="bar-failed" />}
            {v > 0 && <rect x={i * bw} width={bw} y={h - vh} height={vh} class="bar-completed" />}
          </g>
        );
      })}
    </svg>
  );
}
