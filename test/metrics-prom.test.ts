import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchTokens, evalMetricLabel, METRIC_PREFIX, STEP_SECONDS_BUCKETS, TrainingMetrics, type StepStatsLike } from '../src/obs/metrics.js';
import { startMetricsServer, type MetricsServer } from '../src/obs/metrics-server.js';
import { EXIT_PREEMPTED } from '../src/train/checkpoint.js';
import { freePort, removeDir, tempDir } from './helpers/cli.js';
import { REPO } from './helpers/shared.js';
import { oneGold, TINY_WORDS, tinyT5Model, writeTinyQa } from './helpers/tiny.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict parser of the Prometheus text format (0.0.4) as far as these tests need it. */
function parseExposition(text: string): { types: Map<string, string>; help: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'TYPE' ? types : help).set(m[2]!, m[3]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let lm: RegExpExecArray | null;
      let consumed = 0;
      while ((lm = re.exec(m[2])) !== null) {
        labels[lm[1]!] = lm[2]!;
        consumed = re.lastIndex;
        if (consumed === m[2].length) break;
      }
      if (consumed !== m[2].length) throw new Error(`unparsable labels: ${m[2]}`);
    }
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return { types, help, samples };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function one(samples: Sample[], name: string, labels: Record<string, string>): number {
  const f = find(samples, name, labels);
  if (f.length !== 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${f.length} samples`);
  return f[0]!.value;
}

async function scrape(port: number, path = '/metrics', method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

const step = (over: Partial<StepStatsLike> & { seconds?: StepStatsLike['seconds'] }): StepStatsLike => ({
  step: 1,
  loss: 2.5,
  lr: 1e-4,
  gradNorm: 3,
  skipped: false,
  examples: 4,
  seconds: { forwardBackward: 1, allReduce: 0.1, optimizer: 0.05 },
  ...over,
});

describe('TrainingMetrics over HTTP', () => {
  const coord = new TrainingMetrics({ rank: 0, node: 'node-a' });
  const worker = new TrainingMetrics({ rank: 1, node: 'node-b' });
  let server: MetricsServer;
  let kept: tf.Tensor;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    kept = tf.zeros([10, 10]); // 400 bytes live on the coordinator
    coord.buildInfo('0.1.0', 'cpu');
    worker.buildInfo('0.1.0', 'wasm');
    // Rank 0: one applied step (1.5 + 0.2 + 0.05 + 0.01 = 1.76 s), then one skipped step (6.5 s).
    coord.recordStep(step({ step: 11, tokens: 100, maxWeight: 0.6, entropy: 1.2, maskMax: 0.7, seconds: { data: 0.01, forwardBackward: 1.5, allReduce: 0.2, optimizer: 0.05 } }), 1000);
    coord.recordStep(step({ step: 11, loss: NaN, gradNorm: Infinity, skipped: true, tokens: 50, seconds: { data: 0.5, forwardBackward: 5, allReduce: 1, optimizer: 0 } }), 1000);
    coord.recordEval({ 'R@5': 0.8, 'NDCG@5': 0.6, MRR: 0.5, EM: 0.4, F1: 0.45, 'indirect R@5': null }, 'reranker');
    coord.recordCheckpoint(1_700_000_000);
    // Rank 1: one step, a restart; shipped as JSON text like a ZeroMQ frame would carry it.
    worker.recordStep(step({ step: 11, loss: 3.25, lr: 2e-4, gradNorm: 0.5, examples: 4, tokens: 80, seconds: { forwardBackward: 0.3, allReduce: 0.02, optimizer: 0.01 } }), 1000);
    worker.recordRestart();
    coord.mergeFromJSON(JSON.stringify(await worker.toJSON()), { rank: 1, node: 'node-b' });
    server = await startMetricsServer(0, coord, { host: '127.0.0.1' });
  });

  afterAll(async () => {
    await server?.close();
    kept?.dispose();
  });

  it('serves the text exposition on /metrics with the Prometheus content type', async () => {
    expect(server.port).toBeGreaterThan(0);
    const r = await scrape(server.port);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    expect(() => parseExposition(r.body)).not.toThrow();
  });

  it('answers 404 elsewhere and 405 to other methods on /metrics', async () => {
    expect((await scrape(server.port, '/')).status).toBe(404);
    expect((await scrape(server.port, '/metricsx')).status).toBe(404);
    expect((await scrape(server.port, '/metrics?x=1')).status).toBe(200);
    expect((await scrape(server.port, '/metrics', 'POST')).status).toBe(405);
  });

  it('names every metric with one prefix, _total counters and _seconds histograms, labelled rank and node', async () => {
    const { types, help, samples } = parseExposition((await scrape(server.port)).body);
    const expected: Record<string, string> = {
      grerank_train_steps_total: 'counter',
      grerank_train_skipped_steps_total: 'counter',
      grerank_train_examples_total: 'counter',
      grerank_train_tokens_total: 'counter',
      grerank_allreduce_bytes_total: 'counter',
      grerank_train_optimizer_step: 'gauge',
      grerank_train_loss: 'gauge',
      grerank_train_learning_rate: 'gauge',
      grerank_train_grad_norm: 'gauge',
      grerank_gumbel_max_weight: 'gauge',
      grerank_gumbel_weight_entropy_nats: 'gauge',
      grerank_gumbel_mask_max: 'gauge',
      grerank_train_step_seconds: 'histogram',
      grerank_train_step_phase_seconds: 'histogram',
      grerank_eval_score: 'gauge',
      grerank_eval_runs_total: 'counter',
      grerank_worker_restarts_total: 'counter',
      grerank_checkpoints_total: 'counter',
      grerank_checkpoint_last_timestamp_seconds: 'gauge',
      grerank_process_memory_bytes: 'gauge',
      grerank_tfjs_tensors: 'gauge',
      grerank_tfjs_memory_bytes: 'gauge',
      grerank_build_info: 'gauge',
      grerank_metrics_snapshot_age_seconds: 'gauge',
    };
    expect(Object.fromEntries(types)).toEqual(expected);
    for (const [name, type] of types) {
      expect(name.startsWith(METRIC_PREFIX)).toBe(true);
      expect(help.get(name)).toBeTruthy();
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$/);
    }
    for (const s of samples) {
      expect(s.labels.rank, s.name).toMatch(/^[01]$/);
      expect(s.labels.node, s.name).toBe(s.labels.rank === '0' ? 'node-a' : 'node-b');
    }
    // Both ranks report every per-step series.
    for (const rank of ['0', '1']) {
      for (const name of ['grerank_train_steps_total', 'grerank_train_loss', 'grerank_build_info', 'grerank_tfjs_tensors', 'grerank_train_step_seconds_count']) {
        expect(find(samples, name, { rank }).length, `${name} rank ${rank}`).toBe(1);
      }
    }
  });

  it('reports the recorded values per rank', async () => {
    const { samples } = parseExposition((await scrape(server.port)).body);
    const r0 = { rank: '0', node: 'node-a' };
    const r1 = { rank: '1', node: 'node-b' };
    expect(one(samples, 'grerank_train_steps_total', r0)).toBe(2);
    expect(one(samples, 'grerank_train_skipped_steps_total', r0)).toBe(1);
    expect(one(samples, 'grerank_train_examples_total', r0)).toBe(8);
    expect(one(samples, 'grerank_train_tokens_total', r0)).toBe(150);
    expect(one(samples, 'grerank_allreduce_bytes_total', r0)).toBe(2000);
    expect(one(samples, 'grerank_train_optimizer_step', r0)).toBe(11);
    expect(one(samples, 'grerank_train_loss', r0)).toBeNaN();
    expect(one(samples, 'grerank_train_grad_norm', r0)).toBe(Infinity);
    expect(one(samples, 'grerank_train_learning_rate', r0)).toBe(1e-4);
    expect(one(samples, 'grerank_gumbel_max_weight', r0)).toBe(0.6);
    expect(one(samples, 'grerank_gumbel_weight_entropy_nats', r0)).toBe(1.2);
    expect(one(samples, 'grerank_gumbel_mask_max', r0)).toBe(0.7);
    expect(one(samples, 'grerank_checkpoint_last_timestamp_seconds', r0)).toBe(1_700_000_000);
    expect(one(samples, 'grerank_checkpoints_total', r0)).toBe(1);
    expect(one(samples, 'grerank_worker_restarts_total', r0)).toBe(0);
    expect(one(samples, 'grerank_build_info', { ...r0, version: '0.1.0', backend: 'cpu' })).toBe(1);
    expect(one(samples, 'grerank_tfjs_tensors', r0)).toBeGreaterThanOrEqual(1);
    expect(one(samples, 'grerank_tfjs_memory_bytes', r0)).toBeGreaterThanOrEqual(400);
    expect(one(samples, 'grerank_process_memory_bytes', { ...r0, kind: 'rss' })).toBeGreaterThan(1e6);
    expect(one(samples, 'grerank_process_memory_bytes', { ...r1, kind: 'heap_used' })).toBeGreaterThan(0);
    // Evaluation: ratios keyed by setting and metric; an undefined metric has no series.
    const ev = { ...r0, setting: 'reranker' };
    expect(one(samples, 'grerank_eval_score', { ...ev, metric: 'recall_at_5' })).toBe(0.8);
    expect(one(samples, 'grerank_eval_score', { ...ev, metric: 'ndcg_at_5' })).toBe(0.6);
    expect(one(samples, 'grerank_eval_score', { ...ev, metric: 'mrr' })).toBe(0.5);
    expect(one(samples, 'grerank_eval_score', { ...ev, metric: 'em' })).toBe(0.4);
    expect(one(samples, 'grerank_eval_score', { ...ev, metric: 'f1' })).toBe(0.45);
    expect(find(samples, 'grerank_eval_score', { metric: 'indirect_recall_at_5' })).toHaveLength(0);
    expect(one(samples, 'grerank_eval_runs_total', ev)).toBe(1);
    // Rank 1, merged from its JSON.
    expect(one(samples, 'grerank_train_steps_total', r1)).toBe(1);
    expect(one(samples, 'grerank_train_loss', r1)).toBe(3.25);
    expect(one(samples, 'grerank_train_learning_rate', r1)).toBe(2e-4);
    expect(one(samples, 'grerank_worker_restarts_total', r1)).toBe(1);
    expect(one(samples, 'grerank_build_info', { ...r1, version: '0.1.0', backend: 'wasm' })).toBe(1);
    expect(one(samples, 'grerank_metrics_snapshot_age_seconds', r1)).toBeGreaterThanOrEqual(0);
    expect(find(samples, 'grerank_metrics_snapshot_age_seconds', { rank: '0' })).toHaveLength(0);
  });

  it('exposes cumulative histogram buckets for the step and each phase', async () => {
    const { samples } = parseExposition((await scrape(server.port)).body);
    const r0 = { rank: '0' };
    const les = find(samples, 'grerank_train_step_seconds_bucket', r0).map((s) => s.labels.le);
    expect(les).toEqual([...STEP_SECONDS_BUCKETS.map(String), '+Inf']);
    // Steps of 1.76 s and 6.5 s.
    expect(one(samples, 'grerank_train_step_seconds_bucket', { ...r0, le: '1' })).toBe(0);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { ...r0, le: '2.5' })).toBe(1);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { ...r0, le: '5' })).toBe(1);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { ...r0, le: '10' })).toBe(2);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { ...r0, le: '+Inf' })).toBe(2);
    expect(one(samples, 'grerank_train_step_seconds_count', r0)).toBe(2);
    expect(one(samples, 'grerank_train_step_seconds_sum', r0)).toBeCloseTo(1.76 + 6.5, 9);
    expect(one(samples, 'grerank_train_step_phase_seconds_sum', { ...r0, phase: 'forward_backward' })).toBeCloseTo(6.5, 9);
    expect(one(samples, 'grerank_train_step_phase_seconds_sum', { ...r0, phase: 'data' })).toBeCloseTo(0.51, 9);
    expect(one(samples, 'grerank_train_step_phase_seconds_bucket', { ...r0, phase: 'data', le: '0.01' })).toBe(1);
    expect(one(samples, 'grerank_train_step_phase_seconds_count', { ...r0, phase: 'allreduce' })).toBe(2);
    expect(one(samples, 'grerank_train_step_phase_seconds_count', { ...r0, phase: 'optimizer' })).toBe(2);
    // Rank 1 had no data phase; its step histogram came through the merge intact.
    expect(find(samples, 'grerank_train_step_phase_seconds_count', { rank: '1', phase: 'data' })).toHaveLength(0);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { rank: '1', le: '0.5' })).toBe(1);
    expect(one(samples, 'grerank_train_step_seconds_bucket', { rank: '1', le: '0.25' })).toBe(0);
    for (const rank of ['0', '1']) {
      const counts = find(samples, 'grerank_train_step_seconds_bucket', { rank }).map((s) => s.value);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
    }
  });

  it('counters increase across scrapes; a newer snapshot of a rank replaces the older one', async () => {
    const before = parseExposition((await scrape(server.port)).body).samples;
    coord.recordStep(step({ examples: 2, seconds: { forwardBackward: 0.1, allReduce: 0, optimizer: 0 } }));
    worker.recordStep(step({ examples: 4, loss: 1.5, seconds: { forwardBackward: 0.1, allReduce: 0, optimizer: 0 } }), 1000);
    coord.mergeFromJSON(new TextEncoder().encode(JSON.stringify(await worker.toJSON())), { rank: 1, node: 'node-b' });
    const after = parseExposition((await scrape(server.port)).body).samples;
    expect(one(after, 'grerank_train_steps_total', { rank: '0' })).toBe(one(before, 'grerank_train_steps_total', { rank: '0' }) + 1);
    expect(one(after, 'grerank_train_examples_total', { rank: '0' })).toBe(one(before, 'grerank_train_examples_total', { rank: '0' }) + 2);
    expect(one(after, 'grerank_train_steps_total', { rank: '1' })).toBe(2);
    expect(one(after, 'grerank_train_examples_total', { rank: '1' })).toBe(8);
    expect(one(after, 'grerank_allreduce_bytes_total', { rank: '1' })).toBe(2000);
    expect(one(after, 'grerank_train_loss', { rank: '1' })).toBe(1.5);
    expect(coord.remotes()).toEqual([{ rank: '1', node: 'node-b' }]);
  });

  it('refuses a snapshot carrying its own labels, and a port already bound', async () => {
    expect(() => coord.mergeFromJSON([], { rank: 0, node: 'node-a' })).toThrow(/own labels/);
    expect(() => coord.mergeFromJSON('{}', { rank: 2, node: 'node-c' })).toThrow(/array/);
    await expect(startMetricsServer(server.port, coord, { host: '127.0.0.1' })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('metrics helpers', () => {
  it('turns eval metric keys into label values', () => {
    expect(evalMetricLabel('R@5')).toBe('recall_at_5');
    expect(evalMetricLabel('NDCG@5')).toBe('ndcg_at_5');
    expect(evalMetricLabel('MRR')).toBe('mrr');
    expect(evalMetricLabel('indirect R@20')).toBe('indirect_recall_at_20');
    expect(evalMetricLabel('SubEM')).toBe('subem');
  });

  it('counts the non-padding passage and target tokens of a batch', () => {
    expect(batchTokens({ passageMask: Int32Array.of(1, 1, 0, 1, 0, 0), labels: Int32Array.of(7, 1, -100, 9, -100, -100) })).toBe(6);
    expect(batchTokens({ passageMask: [1, 1] })).toBe(2);
  });

  it('serves a plain prom-client registry too, and closes', async () => {
    const m = new TrainingMetrics({ rank: 3, node: 'n' });
    const s = await startMetricsServer(0, () => m.registry, { host: '127.0.0.1' });
    const r = await scrape(s.port);
    expect(r.status).toBe(200);
    expect(one(parseExposition(r.body).samples, 'grerank_train_steps_total', { rank: '3', node: 'n' })).toBe(0);
    await s.close();
    await s.close();
    await expect(fetch(`http://127.0.0.1:${s.port}/metrics`)).rejects.toThrow();
  });
});

describe('grerank train --metrics-port (single process)', () => {
  const work = tempDir();
  const model = tinyT5Model([...TINY_WORDS, 'person']);
  const data = join(work, 'train.jsonl');
  const evalData = join(work, 'eval.jsonl');
  // Eval data needs gold flags.
  writeTinyQa(data, 6);
  writeTinyQa(evalData, 3, { labels: oneGold });
  afterAll(() => {
    removeDir(work);
    removeDir(model);
  });

  it('serves step, eval, checkpoint and build metrics while it trains, and stops serving when it ends', async () => {
    const port = await freePort();
    const out = join(work, 'out');
    const args = ['--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', '1000', '--batch-size', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--lr', '1e-3', '--backend', 'wasm'];
    const extra = ['--eval-every', '2', '--eval-data', evalData, '--eval-k', '2', '--save-every', '3', '--keep', '1', '--log-every', '1', '--log-format', 'json', '--metrics-port', String(port)];
    const started = Date.now() / 1000;
    // Far more steps than the test waits for: it is stopped with SIGTERM (checkpoint, then exit).
    const child = spawn(process.execPath, [join(REPO, 'dist/cli/main.js'), 'train', ...args, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) => find(samples, name, labels)[0]?.value ?? NaN;
    let samples: Sample[] = [];
    let first: Sample[] | undefined;
    try {
      // Until at least 4 steps, one evaluation (step 2) and one checkpoint (step 3) show.
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
        if (!text) continue;
        samples = parseExposition(text).samples;
        first ??= samples;
        if (value(samples, 'grerank_train_steps_total') >= 4 && value(samples, 'grerank_checkpoints_total') >= 1 && value(samples, 'grerank_eval_runs_total') >= 1) break;
      }
    } finally {
      child.kill('SIGTERM');
    }
    const code = await done;
    expect(stderr).toContain(`[grerank] metrics: http://${hostname()}:${port}/metrics`);
    // SIGTERM: the step finishes, a checkpoint is written, the run stops as preempted.
    expect(code, stderr).toBe(EXIT_PREEMPTED);
    const labels = { rank: '0', node: hostname() };
    for (const s of samples) expect(s.labels, s.name).toMatchObject(labels);
    const steps = value(samples, 'grerank_train_steps_total');
    expect(steps, stderr).toBeGreaterThanOrEqual(4);
    // The first scrape came earlier: a counter only grows.
    expect(value(first!, 'grerank_train_steps_total')).toBeLessThanOrEqual(steps);
    expect(value(samples, 'grerank_train_examples_total')).toBe(2 * steps);
    expect(value(samples, 'grerank_train_optimizer_step')).toBe(steps);
    expect(value(samples, 'grerank_train_skipped_steps_total')).toBe(0);
    // 2 questions x 5 passages x up to 24 reader tokens, plus the answers' tokens, per step.
    const tokens = value(samples, 'grerank_train_tokens_total');
    expect(tokens).toBeGreaterThan(10 * steps);
    expect(tokens).toBeLessThanOrEqual((2 * 5 * 24 + 2 * 6) * steps);
    expect(Number.isFinite(value(samples, 'grerank_train_loss'))).toBe(true);
    expect(value(samples, 'grerank_train_loss')).toBeGreaterThan(0);
    expect(value(samples, 'grerank_train_learning_rate')).toBeGreaterThan(0);
    expect(value(samples, 'grerank_gumbel_max_weight')).toBeGreaterThan(0);
    expect(value(samples, 'grerank_gumbel_max_weight')).toBeLessThanOrEqual(1);
    // Every phase a single process has, data included (timed around the batch encoding).
    expect(value(samples, 'grerank_train_step_seconds_count')).toBe(steps);
    for (const phase of ['data', 'forward_backward', 'allreduce', 'optimizer']) {
      expect(value(samples, 'grerank_train_step_phase_seconds_count', { phase }), phase).toBe(steps);
    }
    expect(value(samples, 'grerank_train_step_phase_seconds_sum', { phase: 'data' })).toBeGreaterThan(0);
    // Evaluation through the onEval hook: ratios of the reranker at k = 2.
    expect(value(samples, 'grerank_eval_runs_total', { setting: 'reranker' })).toBeGreaterThanOrEqual(1);
    for (const metric of ['recall_at_2', 'ndcg_at_2', 'mrr']) {
      const v = value(samples, 'grerank_eval_score', { setting: 'reranker', metric });
      expect(v, metric).toBeGreaterThanOrEqual(0);
      expect(v, metric).toBeLessThanOrEqual(1);
    }
    // Checkpoints through the onCheckpoint hook.
    expect(value(samples, 'grerank_checkpoints_total')).toBeGreaterThanOrEqual(1);
    const at = value(samples, 'grerank_checkpoint_last_timestamp_seconds');
    expect(at).toBeGreaterThanOrEqual(Math.floor(started));
    expect(at).toBeLessThanOrEqual(Date.now() / 1000);
    expect(value(samples, 'grerank_worker_restarts_total')).toBe(0);
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    expect(value(samples, 'grerank_build_info', { version, backend: 'wasm' })).toBe(1);
    expect(value(samples, 'grerank_process_memory_bytes', { kind: 'rss' })).toBeGreaterThan(1e6);
    expect(value(samples, 'grerank_tfjs_memory_bytes')).toBeGreaterThan(0);
    // Single process: no snapshots from other ranks, no all-reduce payload.
    expect(find(samples, 'grerank_metrics_snapshot_age_seconds', {})).toHaveLength(0);
    expect(value(samples, 'grerank_allreduce_bytes_total')).toBe(0);
    // The run is over: the endpoint is closed.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  }, 120_000);
});
