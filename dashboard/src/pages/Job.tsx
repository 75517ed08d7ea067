import { useEffect, useState } from 'preact/hooks';
import { api, type Job, type LogEntry } from '../api.ts';
import { Dialog, ErrorBox, JsonView, Loading, StateBadge, useAction } from '../components.tsx';
import { ago, duration, when } from '../format.ts';
import { useAsync, useLiveRefresh, useNow } from '../hooks.ts';
import { href, navigate } from '../router.ts';
import { Crumbs, isNotFound } from './Queue.tsx';

export function JobPage({ queue, id, canAdmin }: { queue: string; id: string; canAdmin: boolean }) {
  const detail = useAsync(() => api.job(queue, id), [queue, id]);
  useLiveRefresh((e) => e.queue === queue && (e.jobs.some((j) => j.id === id) || (e.type === 'removed' && e.count !== undefined)), () => detail.reload(), 500, [queue, id]);
  const now = useNow(1000);

  if (detail.error && (!detail.data || isNotFound(detail.error))) {
    return (
      <div class="page">
        <Crumbs queue={queue} id={id} />
        {isNotFound(detail.error) ? (
          <div class="error-box">
            <strong>Job {id} is not in {queue}</strong>
            <p>It may have been removed by retention, a clean or a drain. <a href={href.queue(queue)}>Back to the queue</a>.</p>
          </div>
        ) : (
          <ErrorBox error={detail.error} retry={detail.reload} />
        )}
      </div>
    );
  }
  if (!detail.data) return <div class="page"><Crumbs queue={queue} id={id} /><Loading label="Loading the job…" /></div>;
  const { job, logs } = detail.data;
  return (
    <div class="page">
      <Crumbs queue={queue} id={id} />
      <div class="page-head">
        <h1>
          <span>
            Job <span class="mono">{job.id}</span>
          </span>{' '}
          <span class="job-name">{job.name}</span> <StateBadge state={job.state} />
        </h1>
        {canAdmin && <JobActions job={job} reload={detail.reload} />}
      </div>

      <section class="facts card" aria-label="Job facts">
        <Fact label="Created" value={when(job.createdAt)} sub={ago(job.createdAt, now)} />
        {job.runAt > job.createdAt + 1 && <Fact label="Runs at" value={when(job.runAt)} sub={ago(job.runAt, now)} />}
        <Fact label="Started" value={when(job.startedAt)} sub={job.startedAt ? ago(job.startedAt, now) : undefined} />
        <Fact label="Finished" value={when(job.finishedAt)} sub={job.finishedAt && job.startedAt ? `took ${duration(job.finishedAt - job.startedAt)}` : undefined} />
        <Fact label="Attempts" value={`${job.attemptsMade} of ${job.maxAttempts}`} sub={job.stalls > 0 ? `${job.stalls} stalled` : undefined} />
        <Fact label="Priority" value={String(job.priority)} />
        <Fact label="Lease" value={job.lease ? job.lease.owner : 'none'} sub={job.lease ? `expires ${ago(job.lease.expiresAt, now)}` : undefined} />
      </section>

      {job.progress !== null && (
        <section class="card">
          <h2>Progress</h2>
          {typeof job.progress === 'number' ? (
            <div class="progress" role="progressbar" aria-valuenow={job.progress} aria-valuemin={0} aria-valuemax={100}>
              <div class="progress-bar" style={{ width: `${Math.max(0, Math.min(100, job.progress))}%` }} />
              <span>{job.progress} %</span>
            </div>
          ) : (
            <JsonView value={job.progress} label="Progress" />
          )}
        </section>
      )}

      <div class="two-col">
        <section class="card">
          <h2>Data</h2>
          <JsonView value={job.data} label="Data" />
        </section>
        <section class="card">
          <h2>Options</h2>
          <JsonView value={job.opts} label="Options" />
        </section>
      </div>

      {job.state === 'completed' && (
        <section class="card">
          <h2>Result</h2>
          <JsonView value={job.result} label="Result" />
        </section>
      )}

      <section class="card">
        <h2>Attempts</h2>
        <Timeline job={job} now={now} />
      </section>

      <section class="card">
        <h2>Logs {logs.total > 0 && <span class="muted small">{logs.total} lines</span>}</h2>
        <Logs queue={queue} id={id} first={logs.entries} total={logs.total} />
      </section>
    </div>
  );
}

function Fact({ label, value, sub }: { label: string; value: string; sub?: string | undefined }) {
  return (
    <div class="fact">
      <div class="fact-label">{label}</div>
      <div class="fact-value">{value}</div>
      {sub && <div class="fact-sub">{sub}</div>}
    </div>
  );
}

const RETRIED = (key: string) => (
  <li key={key} class="tl-item retried">
    <div class="tl-head">↻ Retried: attempts counted from 1 again</div>
  </li>
);

function Timeline({ job, now }: { job: Job; now: number }) {
  // Errors are kept across retries; an attempt number that does not grow marks a retry.
  const items = job.errors.flatMap((e, i) => [
    ...(i > 0 && e.attempt <= job.errors[i - 1]!.attempt ? [RETRIED(`r${i}`)] : []),
    <li key={`e${i}`} class="tl-item failed">
      <div class="tl-head">
        <strong>Attempt {e.attempt}</strong> {e.reason === 'stalled' ? 'stalled' : e.reason === 'timeout' ? 'timed out' : 'failed'} · <span title={when(e.at)}>{ago(e.at, now)}</span>
      </div>
      <div class="tl-error">
        {e.name && <span class="err-name">{e.name}: </span>}
        {e.message}
      </div>
      {e.stack && (
        <details class="stack" open={i === job.errors.length - 1}>
          <summary>Stack trace</summary>
          <pre>{e.stack}</pre>
        </details>
      )}
    </li>,
  ]);
  const lastError = job.errors[job.errors.length - 1];
  const current = job.state === 'completed' ? job.attemptsMade : job.attemptsMade + 1;
  if (lastError && job.state !== 'failed' && job.state !== 'cancelled' && current <= lastError.attempt) items.push(RETRIED('r-now'));
  if (job.state === 'active') {
    items.push(
      <li key="now" class="tl-item active">
        <div class="tl-head">
          <strong>Attempt {job.attemptsMade + 1}</strong> running for {duration(now - (job.startedAt ?? now))}
          {job.lease && <> on <span class="mono">{job.lease.owner}</span></>}
        </div>
      </li>,
    );
  } else if (job.state === 'completed') {
    items.push(
      <li key="done" class="tl-item completed">
        <div class="tl-head">
          <strong>Attempt {job.attemptsMade}</strong> completed · <span title={when(job.finishedAt)}>{ago(job.finishedAt, now)}</span>
          {job.startedAt !== null && job.finishedAt !== null && <> · took {duration(job.finishedAt - job.startedAt)}</>}
        </div>
      </li>,
    );
  } else if (job.state === 'waiting' || job.state === 'delayed') {
    items.push(
      <li key="next" class="tl-item pending">
        <div class="tl-head">
          {job.errors.length === 0 ? 'Not started yet' : `Attempt ${job.attemptsMade + 1} ${job.state === 'delayed' ? `scheduled ${ago(job.runAt, now)}` : 'waiting for a worker'}`}
        </div>
      </li>,
    );
  } else if (job.state === 'cancelled') {
    items.push(
      <li key="cancelled" class="tl-item cancelled">
        <div class="tl-head">Cancelled{job.finishedAt ? ` · ${ago(job.finishedAt, now)}` : ''}</div>
      </li>,
    );
  }
  if (items.length === 0) return <p class="muted">No attempts yet.</p>;
  return <ol class="timeline">{items}</ol>;
}

function Logs({ queue, id, first, total }: { queue: string; id: string; first: LogEntry[]; total: number }) {
  const [more, setMore] = useState<LogEntry[]>([]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => setMore([]), [queue, id]);
  const entries = [...first, ...more];
  if (total === 0) return <p class="muted">No log lines. Handlers add them with <code>log()</code>.</p>;
  const shown = first.length + more.length;
  return (
    <>
      <ol class="logs">
        {entries.map((e, i) => (
          <li key={i}>
            <time title={when(e.at)}>{when(e.at).slice(11)}</time> <span>{e.message}</span>
          </li>
        ))}
      </ol>
      {error && <p class="error-text">{error.message}</p>}
      {shown < total && (
        <button
          type="button"
          class="btn small"
          disabled={loading}
          onClick={async () => {
            setLoading(true);
            try {
              const page = await api.logs(queue, id, shown);
              setMore((m) => [...m, ...page.entries]);
              setError(null);
            } catch (err) {
              setError(err as Error);
            } finally {
              setLoading(false);
            }
          }}
        >
          {loading ? 'Loading…' : `Show more (${total - shown} left)`}
        </button>
      )}
    </>
  );
}

function JobActions({ job, reload }: { job: Job; reload: () => void }) {
  const [busy, run] = useAction();
  const [confirmRemove, setConfirmRemove] = useState(false);
  const finished = job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled';
  const act = (action: 'retry' | 'cancel' | 'promote', label: string) =>
    run(label, async () => {
      const r = await api.jobAction(job.queue, job.id, action);
      reload();
      return `Job ${job.id}: ${label.toLowerCase()} done, now ${r.state ?? 'gone'}`;
    });
  return (
    <div class="actions">
      {finished && (
        <button type="button" class="btn primary" disabled={busy} onClick={() => act('retry', 'Retry')}>
          ↻ Retry
        </button>
      )}
      {job.state === 'delayed' && (
        <button type="button" class="btn" disabled={busy} onClick={() => act('promote', 'Promote')}>
          ⇡ Run now
        </button>
      )}
      {!finished && (
        <button type="button" class="btn" disabled={busy} onClick={() => act('cancel', 'Cancel')}>
          ✕ Cancel
        </button>
      )}
      {job.state !== 'active' && (
        <button type="button" class="btn danger" disabled={busy} onClick={() => setConfirmRemove(true)}>
          Remove…
        </button>
      )}
      {confirmRemove && (
        <Dialog title={`Remove job ${job.id}?`} onClose={() => setConfirmRemove(false)}>
          <p>The job, its data, result and logs are deleted for good.</p>
          <div class="dialog-buttons">
            <button type="button" class="btn" onClick={() => setConfirmRemove(false)}>
              Cancel
            </button>
            <button
              type="button"
              class="btn danger"
              disabled={busy}
              onClick={() =>
                run('Remove', async () => {
                  await api.removeJob(job.queue, job.id);
                  setConfirmRemove(false);
                  navigate(href.queue(job.queue), true);
                  return `Job ${job.id} removed`;
                })
              }
            >
              Remove
            </button>
          </div>
        </Dialog>
      )}
    </div>
  );
}
