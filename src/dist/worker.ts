#!/usr/bin/env node
/**
 * A data-parallel training worker (one process per device). launcher/start.js starts one per
 * local device with its identity in GRERANK_* variables (see ./launch.ts WORKER_ENV):
 *
 *   node dist/dist/worker.js --config FILE [--out DIR] [--steps N] [--batch-size B] ...
 *
 * It runs trainReranker's loop on its shard of every global batch (./plan.ts), with the ring
 * all-reduce as the Trainer's gradient reducer; rank 0 writes the result. `batchSize` is the
 * per-worker batch: the global batch is batchSize × world size. Gumbel noise and answer targets
 * are drawn per example from (seed, step/epoch, dataset index), so the result does not depend on
 * how the global batch is split. One compute thread per worker.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TrainingMetrics } from '../obs/metrics.js';
import { startMetricsServer } from '../obs/metrics-server.js';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { chooseTarget, encodeBatch } from '../data/encode.js';
import { readExamples, type Example } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { saveModelDir } from '../io/export.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { GumbelObjective } from '../methods/gumbel.js';
import { makeObjective } from '../methods/index.js';
import { RerankerScorer, WeightTable, type Scorer } from '../methods/scorer.js';
import { FidReader } from '../models/fid.js';
import { loadReranker, type LoadedReranker } from '../models/load.js';
import { Progress } from '../obs/progress.js';
import { METHODS, TRAIN_DEFAULTS, type TrainConfig } from '../train/run.js';
import { Trainer, type StepStats } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { ringAllGather, ringBarrier } from './allreduce.js';
import { ChecksumGuard } from './checksum.js';
import { workerIdentity, type WorkerIdentity } from './launch.js';
import { planEpoch, stepsPerEpoch } from './plan.js';
import { createGradientReducer } from './reducer.js';
import { RingTransport, ringEndpoints } from './transport.js';

const EMBEDDING_NAMES = ['shared.weight', 'roberta.embeddings.word_embeddings.weight'];
const STATS_STREAM = 0x7ffffff0;
const METRICS_STREAM = 0x7ffffff1;

export interface WorkerOptions {
  backend: BackendChoice;
  logFormat: 'text' | 'json';
  /** Parameter checksum every K steps (0 = never). */
  checksumEvery: number;
  /** Rank 0 serves Prometheus metrics for the whole job on this port (0 = off). */
  metricsPort: number;
}

/** What one worker reports per step (rank 0 also has the global mean loss). */
export interface WorkerStepLog {
  rank: number;
  step: number;
  loss: number;
  globalLoss: number;
  examples: number;
  skipped: boolean;
  /** Steps in the whole run. */
  total: number;
}

const FLAGS: Record<string, keyof TrainConfig> = {
  '--reader': 'reader',
  '--reranker': 'reranker',
  '--data': 'data',
  '--out': 'out',
  '--method': 'method',
  '--steps': 'steps',
  '--epochs': 'epochs',
  '--batch-size': 'batchSize',
  '--lr': 'lr',
  '--warmup-steps': 'warmupSteps',
  '--weight-decay': 'weightDecay',
  '--clip-norm': 'clipNorm',
  '--schedule': 'schedule',
  '--seed': 'seed',
  '--limit': 'limit',
  '--log-every': 'logEvery',
  '--rankt5-token-id': 'rankT5TokenId',
};
const NESTED: Record<string, ['encode' | 'gumbel', string]> = {
  '--n-passages': ['encode', 'nPassages'],
  '--text-maxlength': ['encode', 'passageMaxLength'],
  '--pair-maxlength': ['encode', 'pairMaxLength'],
  '--answer-maxlength': ['encode', 'answerMaxLength'],
  '--k': ['gumbel', 'k'],
  '--tau': ['gumbel', 'tau'],
  '--kappa': ['gumbel', 'kappa'],
};

/** The worker's TrainConfig and options from `--config FILE` plus flag overrides (grerank train's names). */
export function parseWorkerArgs(argv: readonly string[]): { cfg: TrainConfig; opts: WorkerOptions } {
  const d = TRAIN_DEFAULTS;
  const opts: WorkerOptions = { backend: 'auto', logFormat: 'text', checksumEvery: 50, metricsPort: 0 };
  let fromFile: Partial<TrainConfig> = {};
  const ci = argv.indexOf('--config');
  if (ci >= 0) fromFile = readJsonFile(argv[ci + 1]!) as Partial<TrainConfig>;
  const cfg = { ...d, ...fromFile, encode: { ...d.encode, ...fromFile.encode }, gumbel: { ...d.gumbel, ...fromFile.gumbel } } as TrainConfig;
  const value = (s: string): string | number => (s.trim() !== '' && Number.isFinite(Number(s)) ? Number(s) : s);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === '--config' || a === '--rank' || a === '--world-size') i++;
    else if (a === '--freeze-embeddings') cfg.freezeEmbeddings = true;
    else if (a === '--backend') (opts.backend = v as BackendChoice), i++;
    else if (a === '--log-format') (opts.logFormat = v === 'json' ? 'json' : 'text'), i++;
    else if (a === '--checksum-every') (opts.checksumEvery = Number(v)), i++;
    else if (a === '--metrics-port') (opts.metricsPort = Number(v)), i++;
    else if (FLAGS[a]) ((cfg as unknown as Record<string, unknown>)[FLAGS[a]] = value(v ?? '')), i++;
    else if (NESTED[a]) {
      const [group, key] = NESTED[a];
      (cfg[group] as unknown as Record<string, number>)[key] = Number(v);
      i++;
    } else throw new GrerankError(`worker: unknown option ${a}`);
  }
  for (const k of ['reader', 'data', 'out'] as const) if (!cfg[k]) throw new GrerankError(`--${k} is required (or set "${k}" in --config)`);
  if (!METHODS.includes(cfg.method)) throw new GrerankError(`unknown method "${cfg.method}" (choose ${METHODS.join(', ')})`);
  if (cfg.method !== 'weights' && !cfg.reranker) throw new GrerankError(`--reranker is required for method ${cfg.method}`);
  if (cfg.gumbel.k < 1 || cfg.gumbel.k > cfg.encode.nPassages) throw new GrerankError(`k = ${cfg.gumbel.k} must lie in [1, n-passages = ${cfg.encode.nPassages}]`);
  if (!Number.isInteger(cfg.batchSize) || cfg.batchSize < 1) throw new GrerankError(`--batch-size must be a positive integer`);
  return { cfg, opts };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** One compute thread: the wasm backend's thread pool is sized before the backend starts. */
async function pinOneThread(backend: BackendChoice): Promise<void> {
  if (backend === 'auto' || backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount(1);
  }
}

/** Runs one worker to the end; returns its per-step log. Rank 0 writes `cfg.out`. */
export async function runWorker(
  cfg: TrainConfig,
  opts: WorkerOptions,
  id: WorkerIdentity,
  onLog?: (l: WorkerStepLog) => void,
  metrics?: TrainingMetrics,
): Promise<WorkerStepLog[]> {
  const { examples } = await readExamples(cfg.data, { limit: cfg.limit });
  if (examples.length === 0) throw new GrerankError(`${cfg.data}: no examples`);
  const readerTok = loadTokenizer(cfg.reader);
  const reader = await FidReader.load(cfg.reader);
  let loaded: LoadedReranker | undefined;
  let scorer: Scorer;
  if (cfg.method === 'weights') {
    scorer = new WeightTable(examples.length, cfg.encode.nPassages);
  } else {
    loaded = await loadReranker(cfg.reranker!, { rankT5TokenId: cfg.rankT5TokenId });
    if (cfg.freezeEmbeddings) loaded.reranker.params.freeze(EMBEDDING_NAMES.filter((n) => loaded!.reranker.params.params.has(n)));
    scorer = new RerankerScorer(loaded.reranker);
  }
  const perEpoch = stepsPerEpoch(examples.length, cfg.batchSize, id.worldSize);
  const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
  const gumbel = cfg.method === 'gumbel' || cfg.method === 'weights' ? new GumbelObjective(cfg.gumbel, new Rng(cfg.seed + 17), cfg.seed + 17) : undefined;
  const objective = gumbel ?? makeObjective(cfg.method, { gumbel: cfg.gumbel, temperatureScore: cfg.temperatureScore, temperatureGold: cfg.temperatureGold }, new Rng(cfg.seed + 17));

  let transport: RingTransport | undefined;
  if (id.worldSize > 1) {
    const { bind, connect } = ringEndpoints({ rank: id.rank, hosts: id.rankHosts, basePort: id.basePort, ipcDir: id.ipcDir });
    transport = await RingTransport.open({ rank: id.rank, worldSize: id.worldSize, bind, connect, secret: id.secret, timeoutMs: id.timeoutMs, ioThreads: 1 });
  }
  const reduce = transport ? createGradientReducer(transport, { names: scorer.variables().map((v) => v.name), timeoutMs: id.timeoutMs }) : undefined;
  const guard = transport && opts.checksumEvery > 0 ? new ChecksumGuard(transport, opts.checksumEvery) : undefined;
  const trainer = new Trainer(
    scorer,
    reader,
    objective,
    { schedule: { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule }, clipNorm: cfg.clipNorm, adamw: { weightDecay: cfg.weightDecay } },
    reduce,
  );
  const pairs = loaded ? { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer } : { kind: 'rankt5' as const, tokenizer: readerTok };
  const logs: WorkerStepLog[] = [];
  let ok = false;
  try {
    let step = 0;
    for (let epoch = 0; step < total; epoch++) {
      const plan = planEpoch(examples.length, cfg.seed, epoch, cfg.batchSize, id.worldSize);
      for (let s = 0; s < plan.length && step < total; s++, step++) {
        const idx = plan[s]![id.rank]!;
        // The answer target of each example from (seed, epoch, index), not from one stream.
        const chosen: Example[] = idx.map((i) => ({ ...examples[i]!, target: chooseTarget(examples[i]!, new Rng([cfg.seed + 29, epoch, i, 0x2545f491])) }));
        const tData = performance.now();
        const batch = await encodeBatch(chosen, idx, readerTok, pairs, cfg.encode);
        const dataSeconds = (performance.now() - tData) / 1000;
        if (gumbel) gumbel.step = step;
        const stats: StepStats = await trainer.trainStep(batch);
        if (metrics) {
          let tokens = 0;
          for (const m of batch.passageMask) tokens += m;
          metrics.recordStep({ ...stats, tokens, seconds: { ...stats.seconds, data: dataSeconds } }, reduce?.stats.bytes);
          // Every rank's registry reaches rank 0, which serves them all (a collective call).
          if (transport && (step + 1) % cfg.logEvery === 0) {
            const snaps = await ringAllGather(transport, await metrics.snapshotBytes(), { step, stream: METRICS_STREAM, timeoutMs: id.timeoutMs });
            if (id.rank === 0) snaps.forEach((snap, r) => r !== 0 && metrics.mergeFromJSON(snap, { rank: r, node: id.rankHosts[r] ?? String(r) }));
          }
        }
        let globalLoss = stats.loss;
        if (transport) {
          const all = await ringAllGather(transport, new Uint8Array(Float64Array.of(stats.loss).buffer), { step, stream: STATS_STREAM, timeoutMs: id.timeoutMs });
          globalLoss = all.reduce((a, b) => a + new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + 8))[0]!, 0) / all.length;
        }
        const log: WorkerStepLog = { rank: id.rank, step: stats.step, loss: stats.loss, globalLoss, examples: stats.examples * id.worldSize, skipped: stats.skipped, total };
        logs.push(log);
        onLog?.(log);
        await guard?.maybeVerify(trainer.step, () => scorer.variables().map((v) => ({ name: v.name, data: v.dataSync() as Float32Array })));
      }
    }
    if (id.rank === 0) {
      mkdirSync(cfg.out, { recursive: true });
      writeFileSync(join(cfg.out, 'train-config.json'), JSON.stringify({ ...cfg, distributed: { worldSize: id.worldSize, globalBatch: cfg.batchSize * id.worldSize } }, null, 2) + '\n');
      if (loaded) saveModelDir(join(cfg.out, 'reranker'), cfg.reranker!, loaded.reranker.params.toRaw());
      else {
        const table = scorer as WeightTable;
        writeFileSync(join(cfg.out, 'weights.json'), JSON.stringify(examples.map((ex, i) => ({ id: ex.id, weights: Array.from(table.weightsOf(i)) }))) + '\n');
      }
    }
    // Nobody leaves before rank 0 has written the result.
    if (transport) await ringBarrier(transport, total + 1, id.timeoutMs);
    ok = true;
    return logs;
  } finally {
    trainer.dispose();
    reader.dispose();
    loaded?.reranker.dispose();
    if (transport) {
      if (ok) await transport.shutdown();
      else transport.close();
    }
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { cfg, opts } = parseWorkerArgs(argv);
  const id = workerIdentity(process.env, argv);
  await pinOneThread(opts.backend);
  const backend = await initBackend(opts.backend, { quiet: id.rank !== 0 });
  const metrics = new TrainingMetrics({ rank: id.rank, node: id.rankHosts[id.rank] ?? hostname() });
  metrics.buildInfo(packageVersion(), backend.name);
  const server = id.rank === 0 && opts.metricsPort > 0 ? await startMetricsServer(opts.metricsPort, metrics) : undefined;
  if (server) process.stderr.write(`[grerank] metrics: http://${hostname()}:${server.port}/metrics\n`);
  const t0 = performance.now();
  let examples = 0;
  let progress: Progress | undefined;
  const logs = await runWorker(cfg, opts, id, (l) => {
    examples += l.examples;
    const rate = examples / ((performance.now() - t0) / 1000);
    if (opts.logFormat === 'json') process.stderr.write(JSON.stringify({ ...l, 'ex/s': rate }) + '\n');
    if (id.rank !== 0) return;
    progress ??= new Progress('train', l.total, { every: cfg.logEvery, format: 'text' });
    if (opts.logFormat !== 'json') progress.update(l.step, { step: l.step, loss: l.globalLoss, 'ex/s': rate, ...(l.skipped ? { skipped: 'yes' } : {}) });
  }, metrics);
  await server?.close();
  if (id.rank === 0) {
    const secs = (performance.now() - t0) / 1000;
    process.stderr.write(`trained ${logs.length} steps on ${id.worldSize} worker(s) (${logs.filter((l) => l.skipped).length} skipped; ${(examples / secs).toFixed(2)} examples/s); wrote ${cfg.out}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      const rank = process.env.GRERANK_RANK ?? '0';
      process.stderr.write(`error: rank ${rank}: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
