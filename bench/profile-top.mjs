#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self
// time, and optionally the total (self + callees) time of functions matching a filter.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/bench.ts --scenarios drain
//   node bench/profile-top.mjs /tmp/prof/CPU.*.cpuprofile [--top 25] [--total src/]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, total: { type: 'string' } },
});
if (positionals.length === 0) {
  process.stderr.write('usage: node bench/profile-top.mjs FILE.cpuprofile [--top N] [--total SUBSTRING]\n');
  process.exit(64);
}

for (const file of positionals) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id -> µs
  const deltas = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
  }
  const label = (n) => {
    const cf = n.callFrame;
    const url = cf.url ? cf.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '') : '';
    const short = url.startsWith('/') ? `${path.basename(path.dirname(url))}/${path.basename(url)}` : url;
    return `${cf.functionName || '(anonymous)'} ${url ? `${short}:${cf.lineNumber + 1}` : ''}`.trim();
  };
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const agg = new Map();
  for (const [id, us] of self) {
    const key = label(byId.get(id));
    agg.set(key, (agg.get(key) ?? 0) + us);
  }
  const pct = (us) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%`;
  console.log(`\n${file}: ${(totalUs / 1e6).toFixed(2)} s sampled\n\nself time:`);
  for (const [k, us] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    console.log(`${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  }
  if (values.total) {
    // Inclusive time per function label (each sample counted once per label on its stack).
    const inclusive = new Map();
    for (const [id, us] of self) {
      const seen = new Set();
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
        const key = label(byId.get(cur));
        if (seen.has(key)) continue;
        seen.add(key);
        if (key.includes(values.total)) inclusive.set(key, (inclusive.get(key) ?? 0) + us);
      }
    }
    console.log(`\ntotal (self + callees) of functions matching '${values.total}':`);
    for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
      console.log(`${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
    }
  }
}
