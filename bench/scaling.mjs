#!/usr/bin/env node
// Training throughput of the data-parallel runtime with 1, 2, ... CPU workers at the same global
// batch: `node launcher/start.js --cpu-workers W` (ZeroMQ ring all-reduce, checkpoints off),
// G-Rerank (k 5) on 20 synthetic candidates per question, with the demo's reader
// (assets/demo-reader: T5, d 64, 2+2 layers) as the frozen reader and as the reranker's start.
// Throughput counts the steps after the warm-up, timed by the arrival of rank 0's step logs.
//
//   npm run bench:scaling
//   node bench/scaling.mjs --workers 1,2 --global-batch 8 --steps 24 --warmup 4 --json
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth, writeSynth } from '../dist/data/synth.js';
import { tokenizerFromJson } from '../dist/io/tokenizer.js';
import { parseArgs, round, table, usage } from './lib.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READER = join(ROOT, 'assets', 'demo-reader');
const SPEC = {
  workers: { type: 'list', default: ['1', '2'], help: 'worker counts to compare' },
  'global-batch': { type: 'number', default: 8, help: 'questions per optimizer step (split over the workers)' },
  steps: { type: 'number', default: 24, help: 'steps per run' },
  warmup: { type: 'number', default: 4, help: 'first steps not timed' },
  'tokenize-threads': { type: 'number', default: 1, help: "each worker's tokenizer threads (0: in the training thread)" },
  independent: { type: 'boolean', default: true, help: 'also run W separate one-worker jobs at once (the machine\'s own ceiling); --no-independent to skip' },
  repeat: { type: 'number', default: 1, help: 'runs per worker count (the median is reported)' },
  json: { type: 'boolean', default: false, help: 'one JSON object per run per line' },
  out: { type: 'string', help: 'also append the JSON lines to this file' },
};

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  process.stdout.write(`usage: node bench/scaling.mjs [options]\n${usage(SPEC)}\n`);
  process.exit(0);
}
const o = parseArgs(argv, SPEC);
const counts = o.workers.map(Number);
for (const w of counts) if (!Number.isInteger(w) || w < 1 || o['global-batch'] % w !== 0) throw new Error(`--workers ${w}: must divide --global-batch ${o['global-batch']}`);
if (o.warmup >= o.steps) throw new Error('--warmup must be below --steps');

const work = mkdtempSync(join(tmpdir(), 'grerank-scaling-'));
const synth = generateSynth({ seed: 0, train: 256, dev: 0, test: 0, candidates: 20 });
writeSynth(join(work, 'data'), synth);
const scoreToken = tokenizerFromJson(readFileSync(join(READER, 'tokenizer.json'), 'utf8')).tokenToId('<extra_id_10>');

/** One launcher with `workers` CPU workers and the given per-worker batch; resolves with its timing after the warm-up. */
function launch(workers, batch, tag) {
  const args = [
    join(ROOT, 'launcher', 'start.js'), '--cpu-workers', String(workers), '--metrics-port', '0', '--no-checkpoints',
    '--reader', READER, '--reranker', READER, '--rankt5-token-id', String(scoreToken), '--method', 'gumbel',
    '--data', join(work, 'data', 'train.jsonl'), '--out', join(work, `out-${tag}`), '--steps', String(o.steps),
    '--batch-size', String(batch), '--n-passages', '20', '--k', '5',
    '--text-maxlength', '48', '--pair-maxlength', '40', '--answer-maxlength', '8', '--lr', '1e-3', '--seed', '0',
    '--backend', 'wasm', '--log-format', 'json', '--log-every', '1', '--tokenize-threads', String(o['tokenize-threads']),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const at = new Map();
    let tail = '';
    let buf = '';
    child.stderr.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('{"rank":0,')) at.set(JSON.parse(line).step, performance.now());
        else tail = (tail + line + '\n').slice(-2000);
      }
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${workers} worker(s): launcher exited ${code}\n${tail}`));
      resolve({ secs: (at.get(o.steps) - at.get(o.warmup)) / 1000, examples: (o.steps - o.warmup) * batch * workers });
    });
  });
}

/**
 * `workers` data-parallel workers on one global batch; or, with `independent`, that many separate
 * one-worker jobs at once on their share of it (no communication at all: what the machine itself
 * allows).
 */
async function run(workers, independent) {
  const load = loadavg()[0];
  const batch = o['global-batch'] / workers;
  const parts = independent ? await Promise.all(Array.from({ length: workers }, (_, i) => launch(1, batch, `ind-${workers}-${i}`))) : [await launch(workers, batch, `dp-${workers}`)];
  const examples = parts.reduce((a, p) => a + p.examples, 0);
  const secs = Math.max(...parts.map((p) => p.secs));
  const rate = parts.reduce((a, p) => a + p.examples / p.secs, 0);
  return { mode: independent ? 'independent' : 'data-parallel', workers, globalBatch: o['global-batch'], perWorkerBatch: batch, steps: o.steps - o.warmup, seconds: round(secs, 3), examples_per_s: round(rate, 3), step_ms: round((1000 * secs) / (o.steps - o.warmup), 1), examples, load_before: round(load, 2) };
}

const rows = [];
try {
  for (const independent of o.independent ? [false, true] : [false]) {
    for (const w of counts) {
      if (independent && w === 1) continue;
      const runs = [];
      for (let i = 0; i < o.repeat; i++) runs.push(await run(w, independent));
      runs.sort((a, b) => a.examples_per_s - b.examples_per_s);
      const r = runs[Math.floor(runs.length / 2)];
      rows.push(r);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      if (o.out) appendFileSync(o.out, JSON.stringify(r) + '\n');
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const base = rows.find((r) => r.workers === 1) ?? rows[0];
const speedup = (r) => round(r.examples_per_s / base.examples_per_s, 2);
if (o.json) {
  for (const r of rows) if (r !== base) process.stdout.write(JSON.stringify({ mode: r.mode, speedup: speedup(r), workers: r.workers, over: base.workers }) + '\n');
} else {
  process.stdout.write(`G-Rerank training throughput, global batch ${o['global-batch']}, ${o.steps - o.warmup} timed steps; ${cpus().length} CPUs\n`);
  process.stdout.write(table(['mode', 'workers', 'batch/worker', 'step ms', 'examples/s', 'speed-up', 'load before'], rows.map((r) => [r.mode, r.workers, r.perWorkerBatch, r.step_ms, r.examples_per_s, `${speedup(r)}x`, r.load_before])) + '\n');
}
