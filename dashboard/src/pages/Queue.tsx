import { useState } from 'preact/hooks';
import { api, ApiError, STATES, type Job, type JobState, type QueueInfo } from '../api.ts';
import { Dialog, Empty, ErrorBox, Loading, PausedBadge, StateBadge, useAction } from '../components.tsx';
import { ago, compact, duration, num } from '../format.ts';
import { useAsync, useLiveRefresh, useNow } from '../hooks.ts';
import { href, navigate, type Route } from '../router.ts';

const PAGE = 25;
/** Where "newer" goes from a page reached with "older": cursor → the cursor of the page before it. */
const previous = new Map<string, string | null>();

type QueueRoute = Extract<Route, { page: 'queue' }>;

interface ListResult {
  jobs: Job[];
  nextCursor: string | null;
  scanned?: number;
}

async function loadJobs(route: QueueRoute, states: JobState[] | null): Promise<ListResult> {
  if (route.q) {
    // The text may be an id (exact) or part of a name or of the data (scanned, bounded per call).
    const [byId, found] = await Promise.all([
      route.cursor ? Promise.resolve({ jobs: [] as Job[] }) : api.jobs(route.queue, { states, id: route.q, limit: 1 }).catch(() => ({ jobs: [] as Job[] })),
      api.search(route.queue, { q: route.q, states, cursor: route.cursor, limit: PAGE }),
    ]);
    const seen = new Set(byId.jobs.map((j) => j.id));
    return { jobs: [...byId.jobs, ...found.jobs.filter((j) => !seen.has(j.id))], nextCursor: found.nextCursor, scanned: found.scanned };
  }
  return api.jobs(route.queue, { states, cursor: route.cursor, limit: PAGE });
}

export function QueuePage({ route, canAdmin }: { route: QueueRoute; canAdmin: boolean }) {
  const state = route.state as JobState | null;
  const validState = state === null || STATES.includes(state);
  const states = state ? [state] : null;
  // A queue with no jobs and no pause flag does not exist for the API (404): after a drain or a
  // clean it is shown empty, with a note, rather than as an error.
  const info = useAsync(
    () => api.queue(route.queue).then((q) => ({ ...q, exists: true }), (err: Error) => (isNotFound(err) ? { ...emptyQueue(route.queue), exists: false } : Promise.reject(err))),
    [route.queue],
  );
  const jobs = useAsync(
    () =>
      validState
        ? loadJobs(route, states).catch((err: Error): ListResult | Promise<never> => (isNotFound(err) ? { jobs: [], nextCursor: null } : Promise.reject(err)))
        : Promise.reject(new Error(`unknown state '${state}'; states are ${STATES.join(', ')}`)),
    [route.queue, route.state, route.cursor, route.q],
  );
  const [stale, setStale] = useState(false);
  const firstPage = route.cursor === null && route.q === null;
  useLiveRefresh((e) => e.queue === route.queue, () => info.reload(), 1000, [route.queue]);
  useLiveRefresh(
    (e) => e.queue === route.queue,
    () => {
      if (firstPage) jobs.reload();
      else setStale(true);
    },
    2000,
    [route.queue, firstPage, route.state, route.cursor, route.q],
  );

  if (info.error && !info.data) {
    return (
      <div class="page">
        <Crumbs queue={route.queue} />
        <ErrorBox error={info.error} retry={info.reload} />
      </div>
    );
  }
  const q = info.data;
  return (
    <div class="page">
      <Crumbs queue={route.queue} />
      <div class="page-head">
        <h1>
          {route.queue} {q?.paused && <PausedBadge />}
        </h1>
        {canAdmin && q && <QueueActions queue={q} reload={() => { info.reload(); jobs.reload(); }} />}
      </div>

      <nav class="tabs" aria-label="Job states">
        <a href={href.queue(route.queue, null, { q: route.q })} aria-current={state === null ? 'page' : undefined}>
          all {q && <span class="count">{compact(STATES.reduce((n, s) => n + q.counts[s], 0))}</span>}
        </a>
        {STATES.map((s) => (
          <a key={s} href={href.queue(route.queue, s, { q: route.q })} aria-current={state === s ? 'page' : undefined} class={`tab-${s}`}>
            {s} {q && <span class="count" data-state-count={s}>{compact(q.counts[s])}</span>}
          </a>
        ))}
      </nav>

      {q && !q.exists && (
        <p class="notice">No job is in <strong>{route.queue}</strong> right now. A queue is listed once a job is added to it or it is paused.</p>
      )}
      {(info.error ?? jobs.error) && (info.data || jobs.data) && <p class="notice">Could not refresh: {(info.error ?? jobs.error)!.message}</p>}

      <SearchBox route={route} />

      {stale && (
        <button type="button" class="btn small notice-btn" onClick={() => { setStale(false); jobs.reload(); }}>
          Jobs changed since this page loaded: refresh
        </button>
      )}

      {jobs.error && !jobs.data ? (
        <ErrorBox error={jobs.error} retry={jobs.reload} />
      ) : !jobs.data ? (
        <Loading label="Loading jobs…" />
      ) : jobs.data.jobs.length === 0 ? (
        <Empty title={route.q ? 'No match' : state ? `No ${state} jobs` : 'No jobs'}>
          {route.q
            ? jobs.data.nextCursor
              ? `None among the ${num(jobs.data.scanned ?? 0)} jobs scanned so far.`
              : `No job${state ? ` in state ${state}` : ''} has this id, or this text in its name or data.`
            : state === 'failed'
              ? 'Nothing has failed. Good.'
              : 'Jobs appear here as they are added.'}
        </Empty>
      ) : (
        <JobTable jobs={jobs.data.jobs} />
      )}

      {jobs.data && <Pager route={route} next={jobs.data.nextCursor} scanned={jobs.data.scanned} />}
    </div>
  );
}

function Crumbs({ queue, id }: { queue: string; id?: string }) {
  return (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href={href.overview()}>Queues</a> <span aria-hidden="true">/</span> {id === undefined ? <span>{queue}</span> : <a href={href.queue(queue)}>{queue}</a>}
      {id !== undefined && (
        <>
          {' '}
          <span aria-hidden="true">/</span> <span>{id}</span>
        </>
      )}
    </nav>
  );
}
export { Crumbs };

function SearchBox({ route }: { route: QueueRoute }) {
  const [text, setText] = useState(route.q ?? '');
  return (
    <form
      class="search"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        navigate(href.queue(route.queue, route.state, { q: text.trim() || null }));
      }}
    >
      <input type="search" placeholder="Search by id, name or data…" aria-label="Search jobs by id, name or data" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
      <button type="submit" class="btn">
        Search
      </button>
      {route.q && (
        <a class="btn ghost" href={href.queue(route.queue, route.state)} onClick={() => setText('')}>
          Clear
        </a>
      )}
    </form>
  );
}

function Pager({ route, next, scanned }: { route: QueueRoute; next: string | null; scanned: number | undefined }) {
  const key = route.cursor ?? '';
  const prev = route.cursor === null ? undefined : previous.get(key);
  if (route.cursor === null && next === null) return null;
  return (
    <nav class="pager" aria-label="Pages">
      {route.cursor !== null && (
        <a class="btn" href={href.queue(route.queue, route.state, { q: route.q })}>
          ⇤ Newest
        </a>
      )}
      {prev !== undefined && (
        <a class="btn" href={href.queue(route.queue, route.state, { q: route.q, cursor: prev })}>
          ← Newer
        </a>
      )}
      <span class="muted small">{scanned !== undefined ? `${num(scanned)} jobs scanned` : ''}</span>
      {next !== null && (
        <a class="btn" rel="next" href={href.queue(route.queue, route.state, { q: route.q, cursor: next })} onClick={() => previous.set(next, route.cursor)}>
          {route.q ? 'Scan on →' : 'Older →'}
        </a>
      )}
    </nav>
  );
}

function info(job: Job, now: number): string {
  switch (job.state) {
    case 'failed':
    case 'waiting': {
      const last = job.errors[job.errors.length - 1];
      return last ? `${last.reason ? `${last.reason}: ` : ''}${last.message}` : '';
    }
    case 'delayed':
      return `runs ${ago(job.runAt, now)}`;
    case 'active':
      return `${job.progress !== null ? `progress ${typeof job.progress === 'number' ? `${job.progress} %` : JSON.stringify(job.progress)} · ` : ''}running ${duration(now - (job.startedAt ?? now))}${job.lease ? ` on ${job.lease.owner}` : ''}`;
    case 'completed':
      return job.startedAt !== null && job.finishedAt !== null ? `took ${duration(job.finishedAt - job.startedAt)}` : '';
    default:
      return '';
  }
}

function JobTable({ jobs }: { jobs: Job[] }) {
  const now = useNow(5000);
  return (
    <div class="card table-card">
      <table class="table jobs-table">
        <thead>
          <tr>
            <th>ID</th>
            <th>Name</th>
            <th>State</th>
            <th class="num">Attempts</th>
            <th>Created</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.id} data-job={j.id}>
              <td data-label="ID" class="mono">
                <a href={href.job(j.queue, j.id)}>{j.id}</a>
              </td>
              <td data-label="Name">{j.name}</td>
              <td data-label="State">
                <StateBadge state={j.state} />
              </td>
              <td data-label="Attempts" class="num">
                {j.attemptsMade}/{j.maxAttempts}
              </td>
              <td data-label="Created" class="nowrap" title={new Date(j.createdAt).toISOString()}>
                {ago(j.createdAt, now)}
              </td>
              <td data-label="Details" class={`details ${j.state === 'failed' ? 'bad' : ''}`}>
                {info(j, now)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const AGES: Array<[string, number]> = [
  ['any age', 0],
  ['1 hour', 3_600_000],
  ['1 day', 86_400_000],
  ['7 days', 7 * 86_400_000],
  ['30 days', 30 * 86_400_000],
];

function QueueActions({ queue, reload }: { queue: QueueInfo; reload: () => void }) {
  const [busy, run] = useAction();
  const [dialog, setDialog] = useState<'clean' | 'drain' | 'retry' | null>(null);
  const [cleanState, setCleanState] = useState<'completed' | 'failed' | 'cancelled'>('completed');
  const [cleanAge, setCleanAge] = useState(86_400_000);
  const [keep, setKeep] = useState(0);
  const [drainDelayed, setDrainDelayed] = useState(false);
  const [confirmName, setConfirmName] = useState('');
  const done = (text: string) => {
    setDialog(null);
    reload();
    return text;
  };
  return (
    <div class="actions">
      {queue.paused ? (
        <button type="button" class="btn primary" disabled={busy} onClick={() => run('Resume', async () => { await api.resume(queue.name); return done(`${queue.name} resumed`); })}>
          ▶ Resume
        </button>
      ) : (
        <button type="button" class="btn" disabled={busy} onClick={() => run('Pause', async () => { await api.pause(queue.name); return done(`${queue.name} paused: workers finish running jobs and claim no more`); })}>
          ❚❚ Pause
        </button>
      )}
      <button type="button" class="btn" disabled={busy || queue.counts.failed === 0} onClick={() => setDialog('retry')}>
        Retry failed ({compact(queue.counts.failed)})
      </button>
      <button type="button" class="btn" disabled={busy} onClick={() => setDialog('clean')}>
        Clean…
      </button>
      <button type="button" class="btn danger" disabled={busy || queue.counts.waiting + queue.counts.delayed === 0} onClick={() => { setConfirmName(''); setDialog('drain'); }}>
        Drain…
      </button>

      {dialog === 'retry' && (
        <Dialog title={`Retry ${num(queue.counts.failed)} failed jobs?`} onClose={() => setDialog(null)}>
          <p>Every failed job in <strong>{queue.name}</strong> goes back to waiting with its attempts reset. Their error history is kept.</p>
          <div class="dialog-buttons">
            <button type="button" class="btn" onClick={() => setDialog(null)}>Cancel</button>
            <button type="button" class="btn primary" disabled={busy} onClick={() => run('Retry failed', async () => { const r = await api.retryFailed(queue.name); return done(`${num(r.count)} failed jobs retried`); })}>
              Retry all failed
            </button>
          </div>
        </Dialog>
      )}

      {dialog === 'clean' && (
        <Dialog title={`Clean ${queue.name}`} onClose={() => setDialog(null)}>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              void run('Clean', async () => {
                const r = await api.clean(queue.name, { state: cleanState, olderThanMs: cleanAge, ...(keep > 0 ? { keep } : {}) });
                return done(`${num(r.count)} ${cleanState} jobs removed`);
              });
            }}
          >
            <label>
              Remove jobs that are
              <select value={cleanState} onChange={(e) => setCleanState((e.target as HTMLSelectElement).value as typeof cleanState)}>
                <option value="completed">completed ({num(queue.counts.completed)})</option>
                <option value="failed">failed ({num(queue.counts.failed)})</option>
                <option value="cancelled">cancelled ({num(queue.counts.cancelled)})</option>
              </select>
            </label>
            <label>
              and finished more than
              <select value={String(cleanAge)} onChange={(e) => setCleanAge(Number((e.target as HTMLSelectElement).value))}>
                {AGES.map(([label, ms]) => (
                  <option key={ms} value={String(ms)}>
                    {ms === 0 ? label : `${label} ago`}
                  </option>
                ))}
              </select>
            </label>
            <label>
              but keep the newest
              <input type="number" min="0" step="1" value={keep} onInput={(e) => setKeep(Math.max(0, Number((e.target as HTMLInputElement).value) || 0))} />
            </label>
            <div class="dialog-buttons">
              <button type="button" class="btn" onClick={() => setDialog(null)}>Cancel</button>
              <button type="submit" class="btn danger" disabled={busy}>Remove</button>
            </div>
          </form>
        </Dialog>
      )}

      {dialog === 'drain' && (
        <Dialog title={`Drain ${queue.name}?`} onClose={() => setDialog(null)}>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              if (confirmName !== queue.name) return;
              void run('Drain', async () => {
                const r = await api.drain(queue.name, drainDelayed);
                return done(`${num(r.count)} jobs removed from ${queue.name}`);
              });
            }}
          >
            <p>
              This removes all <strong>{num(queue.counts.waiting)} waiting</strong> jobs{drainDelayed ? <> and <strong>{num(queue.counts.delayed)} delayed</strong> jobs</> : ''} for good. Active jobs keep running.
            </p>
            <label class="check">
              <input type="checkbox" checked={drainDelayed} onChange={(e) => setDrainDelayed((e.target as HTMLInputElement).checked)} /> Also remove delayed jobs
            </label>
            <label>
              Type the queue name to confirm
              <input value={confirmName} onInput={(e) => setConfirmName((e.target as HTMLInputElement).value)} placeholder={queue.name} autoComplete="off" spellcheck={false} />
            </label>
            <div class="dialog-buttons">
              <button type="button" class="btn" onClick={() => setDialog(null)}>Cancel</button>
              <button type="submit" class="btn danger" disabled={busy || confirmName !== queue.name}>Drain</button>
            </div>
          </form>
        </Dialog>
      )}
    </div>
  );
}

function emptyQueue(name: string): QueueInfo {
  return { name, paused: false, counts: { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 } };
}

export function isNotFound(err: Error | undefined): boolean {
  return err instanceof ApiError && err.status === 404;
}
