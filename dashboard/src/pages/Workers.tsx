import { api, type WorkerInfo } from '../api.ts';
import { Empty, ErrorBox, Loading } from '../components.tsx';
import { ago, duration } from '../format.ts';
import { useAsync, useNow, useVisibleInterval } from '../hooks.ts';
import { href } from '../router.ts';

export function WorkersPage() {
  // Workers report to the registry every 15 s and send no events: this page re-reads the list every 5 s while visible.
  const workers = useAsync(() => api.workers(), []);
  useVisibleInterval(() => workers.reload(), 5000);
  const now = useNow(1000);
  if (workers.error && !workers.data) return <div class="page"><ErrorBox error={workers.error} retry={workers.reload} /></div>;
  if (!workers.data) return <div class="page"><Loading label="Loading workers…" /></div>;
  const list = [...workers.data.workers].sort((a, b) => Number(b.stale) - Number(a.stale) || a.id.localeCompare(b.id));
  const stale = list.filter((w) => w.stale).length;
  return (
    <div class="page">
      <div class="page-head">
        <h1>Workers</h1>
        <span class="muted small">
          {list.length - stale} live{stale > 0 ? `, ${stale} stale` : ''} · a worker is stale after missing three 15 s reports, and leaves this list after 60 s of silence
        </span>
      </div>
      {stale > 0 && (
        <div class="warning-box" role="alert">
          <strong>{stale === 1 ? 'One worker has' : `${stale} workers have`} stopped reporting.</strong> Its leased jobs go back to waiting when their leases expire; check the process or its host.
        </div>
      )}
      {list.length === 0 ? (
        <Empty title="No workers">No worker has reported in the last minute. Start one with <code>conveyor worker</code> or <code>cv.worker(…)</code>.</Empty>
      ) : (
        <div class="card table-card">
          <table class="table workers-table">
            <thead>
              <tr>
                <th>Worker</th>
                <th>Kind</th>
                <th>Queues</th>
                <th class="num">Active</th>
                <th>Last heartbeat</th>
                <th>Last claim</th>
                <th>Up for</th>
              </tr>
            </thead>
            <tbody>
              {list.map((w) => (
                <WorkerRow key={w.id} w={w} now={now} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function WorkerRow({ w, now }: { w: WorkerInfo; now: number }) {
  return (
    <tr class={w.stale ? 'stale' : ''} data-worker={w.id}>
      <td data-label="Worker">
        <div class="mono">{w.host}:{w.pid}</div>
        <div class="muted small mono">{w.id}</div>
        {w.stale && <span class="badge stale-badge">stale</span>}
      </td>
      <td data-label="Kind">{w.kind}</td>
      <td data-label="Queues">
        {w.queues.map((q, i) => (
          <>
            {i > 0 && ', '}
            <a href={href.queue(q)}>{q}</a>
          </>
        ))}
      </td>
      <td data-label="Active" class="num">
        {w.active}/{w.concurrency}
      </td>
      <td data-label="Last heartbeat" class={w.stale ? 'bad' : ''}>{ago(w.lastSeenAt, now)}</td>
      <td data-label="Last claim">{ago(w.lastClaimAt, now)}</td>
      <td data-label="Up for">{duration(now - w.startedAt)}</td>
    </tr>
  );
}
