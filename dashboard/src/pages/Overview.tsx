import { api, STATES, type QueueInfo, type Series, type Stats, type WorkerInfo } from '../api.ts';
import { Empty, ErrorBox, Loading, PausedBadge, RateChart, Sparkline, ThroughputChart } from '../components.tsx';
import { compact, duration, num, percent } from '../format.ts';
import { useAsync, useLiveRefresh, useVisibleInterval } from '../hooks.ts';
import { href } from '../router.ts';

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Per minute over the last `minutes` minutes, counting the current (partial) minute for the part that has passed. */
function perMinute(xs: readonly number[], stats: Stats, minutes = 5): number {
  const last = stats.minutes[stats.minutes.length - 1] ?? stats.now;
  const elapsed = Math.min(1, Math.max(0.05, (stats.now - last) / stats.minuteMs));
  const window = xs.slice(-minutes);
  const span = window.length - 1 + elapsed;
  return span <= 0 ? 0 : sum(window) / span;
}

function failureRate(s: Pick<Series, 'completed' | 'failed'>): number | null {
  const c = sum(s.completed);
  const f = sum(s.failed);
  return c + f === 0 ? null : f / (c + f);
}

function Tile({ label, value, sub, tone }: { label: string; value: string; sub?: string; tone?: 'bad' | 'warn' | 'good' }) {
  return (
    <div class={`tile ${tone ?? ''}`}>
      <div class="tile-label">{label}</div>
      <div class="tile-value">{value}</div>
      {sub && <div class="tile-sub">{sub}</div>}
    </div>
  );
}

export function Overview() {
  const queues = useAsync(() => api.queues(), []);
  const stats = useAsync(() => api.stats(60), []);
  const workers = useAsync(() => api.workers(), []);
  useLiveRefresh(() => true, () => {
    queues.reload();
    stats.reload();
  }, 1000, []);
  useVisibleInterval(() => workers.reload(), 10_000);
  // The per-minute chart moves on even when nothing happens.
  useVisibleInterval(() => stats.reload(), 30_000);

  if (queues.error && !queues.data) return <div class="page"><ErrorBox error={queues.error} retry={queues.reload} /></div>;
  if (!queues.data) return <div class="page"><Loading /></div>;

  const list = queues.data.queues;
  const s = stats.data;
  const w = workers.data?.workers;
  const totals = Object.fromEntries(STATES.map((st) => [st, sum(list.map((q) => q.counts[st]))])) as Record<(typeof STATES)[number], number>;
  const liveWorkers = w?.filter((x) => !x.stale) ?? [];
  const staleWorkers = w?.filter((x) => x.stale) ?? [];
  const rate = s ? failureRate(s.all) : null;

  return (
    <div class="page">
      <div class="page-head">
        <h1>Queues</h1>
        {s && !s.complete && <span class="muted small">Reading back the last hour of events…</span>}
      </div>

      <section class="tiles" aria-label="Summary">
        <Tile label="Waiting" value={num(totals.waiting)} sub={`${num(totals.delayed)} delayed`} />
        <Tile label="Active" value={num(totals.active)} />
        <Tile label="Completed / min" value={s ? compact(Math.round(perMinute(s.all.completed, s))) : '–'} sub="average, last 5 min" />
        <Tile label="Failure rate" value={percent(rate)} sub={s ? `${num(sum(s.all.failed))} failed in the last hour` : undefined} tone={rate !== null && rate > 0.05 ? 'bad' : rate !== null && rate > 0 ? 'warn' : undefined} />
        <Tile
          label="Wait p50 / p99"
          value={s?.all.recentWaitMs.count ? `${duration(s.all.recentWaitMs.p50)} / ${duration(s.all.recentWaitMs.p99)}` : '–'}
          sub={`due → started, last ${s?.recentMinutes ?? 5} min`}
        />
        <Tile
          label="Workers"
          value={w ? num(liveWorkers.length) : '–'}
          sub={staleWorkers.length > 0 ? `${staleWorkers.length} stale` : w ? `${num(sum(liveWorkers.map((x) => x.active)))} jobs running` : undefined}
          tone={staleWorkers.length > 0 ? 'warn' : undefined}
        />
      </section>

      {s && (
        <section class="charts">
          <div class="card">
            <h2>
              Throughput <span class="legend"><i class="sw completed" /> completed <i class="sw failed" /> failed</span>
            </h2>
            <ThroughputChart label="Jobs finished per minute, last hour" minutes={s.minutes} completed={s.all.completed} failed={s.all.failed} />
          </div>
          <div class="card">
            <h2>Failure rate</h2>
            <RateChart label="Share of finished jobs that failed, per minute, last hour" minutes={s.minutes} completed={s.all.completed} failed={s.all.failed} />
          </div>
        </section>
      )}
      {stats.error && !s && <ErrorBox error={stats.error} retry={stats.reload} />}

      {list.length === 0 ? (
        <Empty title="No queues yet">
          A queue appears once a job is added to it, for example <code>curl -X POST …/api/v1/queues/email/jobs -d '{'{'}"name":"welcome"{'}'}'</code>.
        </Empty>
      ) : (
        <QueueTable queues={list} stats={s} />
      )}

      {w && w.length > 0 && (
        <section class="card">
          <h2>
            Workers <a class="small" href={href.workers()}>all workers →</a>
          </h2>
          <ul class="worker-chips">
            {w.slice(0, 12).map((x) => (
              <WorkerChip key={x.id} w={x} />
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}

function WorkerChip({ w }: { w: WorkerInfo }) {
  return (
    <li class={`chip ${w.stale ? 'stale' : ''}`} title={`${w.id} · ${w.queues.join(', ')}`}>
      <span class="dot" aria-hidden="true" />
      {w.host}:{w.pid} · {w.active}/{w.concurrency}
      {w.stale && <strong> stale</strong>}
    </li>
  );
}

function QueueTable({ queues, stats }: { queues: QueueInfo[]; stats: Stats | undefined }) {
  const byQueue = new Map(stats?.queues.map((q) => [q.queue, q]));
  return (
    <div class="card table-card">
      <table class="table queues-table">
        <thead>
          <tr>
            <th>Queue</th>
            {STATES.map((s) => (
              <th key={s} class="num">
                {s}
              </th>
            ))}
            <th class="num">done/min</th>
            <th class="num">fail %</th>
            <th class="num">wait p50/p99</th>
            <th class="spark-col">last hour</th>
          </tr>
        </thead>
        <tbody>
          {queues.map((q) => {
            const st = byQueue.get(q.name);
            const rate = st ? failureRate(st) : null;
            return (
              <tr key={q.name} data-queue={q.name}>
                <th scope="row">
                  <a href={href.queue(q.name)}>{q.name}</a> {q.paused && <PausedBadge />}
                </th>
                {STATES.map((s) => (
                  <td key={s} class={`num ${q.counts[s] > 0 ? `count-${s}` : 'zero'}`} data-state={s}>
                    <a href={href.queue(q.name, s)}>{compact(q.counts[s])}</a>
                  </td>
                ))}
                <td class="num">{st && stats ? compact(Math.round(perMinute(st.completed, stats))) : '–'}</td>
                <td class={`num ${rate !== null && rate > 0.05 ? 'bad' : ''}`}>{percent(rate)}</td>
                <td class="num nowrap">{st?.recentWaitMs.count ? `${duration(st.recentWaitMs.p50)} / ${duration(st.recentWaitMs.p99)}` : '–'}</td>
                <td class="spark-col">{st ? <Sparkline values={st.completed} failed={st.failed} /> : null}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
