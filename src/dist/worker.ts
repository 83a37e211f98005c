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
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { batchTokens, TrainingMetrics } from '../obs/metrics.js';
import { startMetricsServer } from '../obs/metrics-server.js';
import { initBackend, type BackendChoice } from '../backend/index.js';
import type { RerankBatch } from '../data/batch.js';
import { chooseTarget, encodeBatch } from '../data/encode.js';
import { TokenizePool } from '../data/pool.js';
import type { Example } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { saveModelDir } from '../io/export.js';
import { GumbelObjective } from '../methods/gumbel.js';
import { makeObjective } from '../methods/index.js';
import type { WeightTable } from '../methods/scorer.js';
import { Progress } from '../obs/progress.js';
import { EXIT_PREEMPTED, resolveResume, saveCheckpoint } from '../train/checkpoint.js';
import { checkpointContents, checkTrainEval, isEvalStep, loadResumable, microBatches, normaliseAccumulation, loadTrainingModels, METHODS, resumeTrainer, runTrainEval, TRAIN_DEFAULTS, type TrainConfig, type TrainEvalOptions } from '../train/run.js';
import { Trainer, type StepStats } from '../train/step.js';
import { StopRequest } from '../train/stop.js';
import { Rng } from '../util/rng.js';
import { ringAllGather, ringBarrier } from './allreduce.js';
import { ChecksumGuard } from './checksum.js';
import { WORKER_ENV, workerIdentity, type WorkerIdentity } from './launch.js';
import { startHeartbeat } from './heartbeat.js';
import { planEpoch, stepsPerEpoch } from './plan.js';
import { createGradientReducer } from './reducer.js';
import { DistError, PeerError, RingTransport, ringEndpoints } from './transport.js';
import { EXIT_PEER_FAILED } from './coordinator.js';

const STATS_STREAM = 0x7ffffff0;
const METRICS_STREAM = 0x7ffffff1;
const EVAL_STREAM = 0x7ffffff2;
/** Exit status of a worker stopped by bad input (config, data, checkpoint): not worth a restart. */
export const EXIT_BAD_INPUT = 2;
const STOP_STREAM = 0x7ffffff3;
const UNITS_STREAM = 0x7ffffff4;
/** Signal numbers as stop flags (0: none); every rank stops with the largest it hears of. */
const STOP_SIGNALS: Record<number, NodeJS.Signals> = { 10: 'SIGUSR1', 15: 'SIGTERM' };
/** How long the other ranks wait for rank 0's evaluation. */
const EVAL_TIMEOUT_MS = 6 * 3600_000;

export interface WorkerOptions {
  backend: BackendChoice;
  logFormat: 'text' | 'json';
  /** Parameter checksum every K steps (0 = never). */
  checksumEvery: number;
  /** Rank 0 serves Prometheus metrics for the whole job on this port (0 = off). */
  metricsPort: number;
  /** Tokenisation threads (a piscina pool that prepares the next batch during a step); 0: in the training thread. */
  tokenizeThreads: number;
  /** Checkpoints (rank 0 writes them; every rank reads them on resume): undefined = none. */
  checkpoints?: { saveEvery: number; keep: number; resume?: string };
  /** Evaluation during training, run by rank 0 while the others wait. */
  eval?: TrainEvalOptions;
}

/** How a worker's run ended. */
export interface WorkerResult {
  logs: WorkerStepLog[];
  /** Set when a SIGTERM/SIGUSR1 on some rank stopped the job after a checkpoint. */
  interrupted?: NodeJS.Signals;
  checkpoint?: string;
  resumedFrom?: string;
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
  /** Mean per-query maximum sampling weight on this rank (G-Rerank's Figure 4 signal). */
  maxWeight?: number;
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
  '--accumulation-steps': 'accumulationSteps',
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
  const opts: WorkerOptions = { backend: 'auto', logFormat: 'text', checksumEvery: 50, metricsPort: 0, tokenizeThreads: 1 };
  const ck = { saveEvery: 0, keep: 3, resume: undefined as string | undefined, on: true };
  const ev: Partial<TrainEvalOptions> = {};
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
    else if (a === '--tokenize-threads') (opts.tokenizeThreads = Number(v)), i++;
    else if (a === '--save-every') (ck.saveEvery = Number(v)), i++;
    else if (a === '--keep') (ck.keep = Number(v)), i++;
    else if (a === '--resume') (ck.resume = v), i++;
    else if (a === '--no-checkpoints') ck.on = false;
    else if (a === '--eval-every') (ev.every = Number(v)), i++;
    else if (a === '--eval-data') (ev.data = v), i++;
    else if (a === '--eval-k') (ev.k = Number(v)), i++;
    else if (a === '--eval-limit') (ev.limit = Number(v)), i++;
    else if (a === '--eval-batch-size') (ev.batchSize = Number(v)), i++;
    else if (a === '--eval-generate') ev.generate = true;
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
  normaliseAccumulation(cfg);
  for (const [flag, n, min] of [['--save-every', ck.saveEvery, 0], ['--keep', ck.keep, 1], ['--tokenize-threads', opts.tokenizeThreads, 0]] as const) {
    if (!Number.isInteger(n) || n < min) throw new GrerankError(`${flag} must be an integer >= ${min}, got ${n}`);
  }
  if (ck.on || ck.resume) opts.checkpoints = { saveEvery: ck.saveEvery, keep: ck.keep, resume: ck.resume };
  if (ev.every !== undefined || ev.data !== undefined) {
    if (ev.data === undefined) throw new GrerankError('--eval-every needs --eval-data FILE (labelled eval data)');
    opts.eval = { every: ev.every ?? 0, data: ev.data, k: ev.k ?? 5, limit: ev.limit, generate: ev.generate ?? false, batchSize: ev.batchSize };
  }
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

/**
 * Where a (re)started worker resumes: `--resume` as given; after a restart by the launcher
 * (GRERANK_RESTARTS > 0), the latest checkpoint of OUT when there is one, else what `--resume`
 * said (a restart before the first checkpoint starts where the first start did).
 */
export function resumeDirOf(spec: string | undefined, out: string, restarts: number): string | undefined {
  if (restarts > 0) {
    const latest = resolveResume('auto', out);
    if (latest) return latest;
  }
  return spec === undefined ? undefined : resolveResume(spec, out);
}

/** The first n float64 values of an all-gathered message (copied: the frame may be unaligned). */
function float64s(b: Uint8Array, n: number): Float64Array {
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + 8 * n));
}

/** Runs one worker to the end (or to a stop signal); rank 0 writes `cfg.out` and the checkpoints. */
export async function runWorker(
  cfg: TrainConfig,
  opts: WorkerOptions,
  id: WorkerIdentity,
  onLog?: (l: WorkerStepLog) => void,
  metrics?: TrainingMetrics,
  restarts = 0,
): Promise<WorkerResult> {
  // What the checkpoints record as the config: a different world size changes the data plan.
  const savedConfig = { ...cfg, distributed: { worldSize: id.worldSize } };
  const ckpt = opts.checkpoints;
  const resumed = loadResumable(ckpt ? resumeDirOf(ckpt.resume, cfg.out, restarts) : undefined, savedConfig);
  if (resumed && id.rank === 0) process.stderr.write(`resumed from ${resumed.dir} (step ${resumed.state.step})\n`);
  if (opts.eval && cfg.method === 'weights') throw new GrerankError('--eval-every needs a reranker: method weights learns per-question weights of the training questions only');
  if (opts.eval && id.rank === 0) await checkTrainEval(opts.eval);
  const { examples, readerTok, reader, loaded, scorer } = await loadTrainingModels(cfg, resumed);
  const accumulation = cfg.accumulationSteps ?? 1;
  const perEpoch = stepsPerEpoch(examples.length, cfg.batchSize, id.worldSize, accumulation);
  const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
  // Gumbel noise is keyed by (step, example), so it needs no state; the baselines' generator does.
  const noiseRng = new Rng(resumed ? resumed.state.rng.gumbel : cfg.seed + 17);
  const gumbel = cfg.method === 'gumbel' || cfg.method === 'weights' ? new GumbelObjective(cfg.gumbel, noiseRng, cfg.seed + 17) : undefined;
  const objective = gumbel ?? makeObjective(cfg.method, { gumbel: cfg.gumbel, temperatureScore: cfg.temperatureScore, temperatureGold: cfg.temperatureGold }, noiseRng);
  const schedule = { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule };

  let transport: RingTransport | undefined;
  if (id.worldSize > 1) {
    const { bind, connect } = ringEndpoints({ rank: id.rank, hosts: id.rankHosts, basePort: id.basePort, ipcDir: id.ipcDir });
    // Said before joining, so that a ring that never forms shows which address to look at.
    process.stderr.write(`[grerank] rank ${id.rank}: joining the ring (listening on ${bind}, sending to ${connect}; ring security ${id.security})\n`);
    transport = await RingTransport.open({ rank: id.rank, worldSize: id.worldSize, bind, connect, secret: id.secret, timeoutMs: id.timeoutMs, security: id.security, ioThreads: 1 });
  }
  const reduce = transport ? createGradientReducer(transport, { names: scorer.variables().map((v) => v.name), timeoutMs: id.timeoutMs }) : undefined;
  const guard = transport && opts.checksumEvery > 0 ? new ChecksumGuard(transport, opts.checksumEvery) : undefined;
  // Ranks weighted by their target tokens (or questions): the update is that of the global mean.
  let unitsCall = 0;
  const rankScale = transport
    ? async (units: number): Promise<number> => {
        const all = await ringAllGather(transport!, new Uint8Array(Float64Array.of(units).buffer), { step: unitsCall++, stream: UNITS_STREAM, timeoutMs: id.timeoutMs });
        const total = all.reduce((a, b) => a + float64s(b, 1)[0]!, 0);
        return total > 0 ? (units * id.worldSize) / total : 1;
      }
    : undefined;
  const trainer = new Trainer(scorer, reader, objective, { schedule, clipNorm: cfg.clipNorm, adamw: { weightDecay: cfg.weightDecay }, rankScale }, reduce);
  const pairs = loaded ? { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer } : { kind: 'rankt5' as const, tokenizer: readerTok };
  const pool = opts.tokenizeThreads > 0 ? new TokenizePool({ reader: cfg.reader, pair: loaded ? cfg.reranker! : cfg.reader, threads: opts.tokenizeThreads }) : undefined;

  const stopReq = ckpt ? new StopRequest(undefined, { announce: id.rank === 0 }) : undefined;

  const logs: WorkerStepLog[] = [];
  let ok = false;
  let lastCheckpoint: string | undefined;
  try {
    let { step, epoch, cursor } = resumeTrainer(trainer, resumed);
    const save = (reason: string): void => {
      if (!ckpt || id.rank !== 0) return;
      lastCheckpoint = saveCheckpoint(
        cfg.out,
        checkpointContents({ cfg: savedConfig, reason, done: step, data: { epoch, cursor }, rng: { gumbel: noiseRng.state(), target: [] }, schedule, trainer, scorer, loaded }),
        ckpt.keep,
      );
      metrics?.recordCheckpoint();
    };
    let stopped: NodeJS.Signals | undefined;
    // This rank's micro-batches at (epoch, cursor), tokenised in the pool's thread when there is one.
    const plans = new Map<number, number[][][]>();
    const encodeAt = (e: number, c: number): Promise<RerankBatch[]> => {
      if (!plans.has(e)) plans.set(e, planEpoch(examples.length, cfg.seed, e, cfg.batchSize, id.worldSize, accumulation));
      plans.delete(e - 1);
      return Promise.all(
        microBatches(plans.get(e)![c]![id.rank]!, cfg.batchSize).map((idx) => {
          // The answer target of each example from (seed, epoch, index), not from one stream.
          const chosen: Example[] = idx.map((i) => {
            const ex = examples.get(i);
            return { ...ex, target: chooseTarget(ex, new Rng([cfg.seed + 29, e, i, 0x2545f491])) };
          });
          return pool ? pool.encode(chosen, idx, cfg.encode, pairs.kind) : encodeBatch(chosen, idx, readerTok, pairs, cfg.encode);
        }),
      );
    };
    let prefetched: Promise<RerankBatch[]> | undefined;
    while (step < total && !stopped) {
      if (cursor >= perEpoch) {
        epoch++;
        cursor = 0;
      }
      {
        const tData = performance.now();
        const batches = await (prefetched ?? encodeAt(epoch, cursor));
        const dataSeconds = (performance.now() - tData) / 1000;
        // The next batch is tokenised while this step trains.
        prefetched = pool && step + 1 < total ? (cursor + 1 < perEpoch ? encodeAt(epoch, cursor + 1) : encodeAt(epoch + 1, 0)) : undefined;
        if (gumbel) gumbel.step = step;
        const stats: StepStats = await trainer.trainStep(batches);
        step++;
        cursor++;
        if (metrics) {
          metrics.recordStep({ ...stats, tokens: batches.reduce((a, b) => a + batchTokens(b), 0), seconds: { ...stats.seconds, data: dataSeconds } }, reduce?.stats.bytes);
          // Every rank's registry reaches rank 0, which serves them all (a collective call).
          if (transport && step % cfg.logEvery === 0) {
            const snaps = await ringAllGather(transport, await metrics.snapshotBytes(), { step, stream: METRICS_STREAM, timeoutMs: id.timeoutMs });
            if (id.rank === 0) snaps.forEach((snap, r) => r !== 0 && metrics.mergeFromJSON(snap, { rank: r, node: id.rankHosts[r] ?? String(r) }));
          }
        }
        // The test hook (GRERANK_TEST_SIGNAL_AT) signals rank 0 only.
        await stopReq?.poll(step, id.rank === 0);
        // The mean loss and any rank's stop request travel together, so every rank stops at the same step.
        let globalLoss = stats.loss;
        let stop = stopReq?.number ?? 0;
        if (transport) {
          // The global loss weights each rank's loss by its units, as the gradient does.
          const all = await ringAllGather(transport, new Uint8Array(Float64Array.of(stats.loss, stop, stats.units ?? stats.examples).buffer), { step, stream: STATS_STREAM, timeoutMs: id.timeoutMs });
          const vals = all.map((b) => float64s(b, 3));
          const total = vals.reduce((a, v) => a + v[2]!, 0);
          globalLoss = total > 0 ? vals.reduce((a, v) => a + v[0]! * v[2]!, 0) / total : vals.reduce((a, v) => a + v[0]!, 0) / vals.length;
          stop = Math.max(...vals.map((v) => v[1]!));
        }
        const log: WorkerStepLog = { rank: id.rank, step: stats.step, loss: stats.loss, globalLoss, examples: stats.examples * id.worldSize, skipped: stats.skipped, total, ...(stats.maxWeight !== undefined && { maxWeight: stats.maxWeight }) };
        logs.push(log);
        onLog?.(log);
        await guard?.maybeVerify(trainer.step, () => scorer.variables().map((v) => ({ name: v.name, data: v.dataSync() as Float32Array })));
        if (opts.eval && loaded && isEvalStep(opts.eval, step, total)) {
          if (id.rank === 0) {
            await runTrainEval(opts.eval, { reranker: loaded, reader: { reader, tokenizer: readerTok } }, cfg, step, total, (e) => metrics?.recordEval(e.metrics, 'reranker'));
          }
          if (transport) await ringBarrier(transport, step, EVAL_TIMEOUT_MS, EVAL_STREAM);
        }
        if (stop) {
          stopped = STOP_SIGNALS[stop] ?? 'SIGTERM';
          save(stopped);
        } else if (step === total) save('final');
        else if (ckpt && ckpt.saveEvery > 0 && step % ckpt.saveEvery === 0) save('interval');
      }
    }
    await prefetched?.catch(() => undefined);
    if (stopped) {
      // Nobody exits before rank 0 has written the checkpoint.
      if (transport) await ringBarrier(transport, step, id.timeoutMs, STOP_STREAM);
      ok = true;
      return { logs, interrupted: stopped, checkpoint: lastCheckpoint, resumedFrom: resumed?.dir };
    }
    if (id.rank === 0) {
      mkdirSync(cfg.out, { recursive: true });
      writeFileSync(join(cfg.out, 'train-config.json'), JSON.stringify({ ...cfg, distributed: { worldSize: id.worldSize, globalBatch: cfg.batchSize * id.worldSize * accumulation } }, null, 2) + '\n');
      if (loaded) saveModelDir(join(cfg.out, 'reranker'), cfg.reranker!, loaded.reranker.params.toRaw());
      else {
        const table = scorer as WeightTable;
        writeFileSync(join(cfg.out, 'weights.json'), JSON.stringify(Array.from({ length: examples.length }, (_, i) => ({ id: examples.get(i).id, weights: Array.from(table.weightsOf(i)) }))) + '\n');
      }
    }
    // Nobody leaves before rank 0 has written the result.
    if (transport) await ringBarrier(transport, total + 1, id.timeoutMs);
    ok = true;
    return { logs, checkpoint: lastCheckpoint, resumedFrom: resumed?.dir };
  } finally {
    stopReq?.dispose();
    await pool?.close();
    examples.close();
    trainer.dispose();
    reader.dispose();
    loaded?.reranker.dispose();
    if (transport) {
      if (ok) await transport.shutdown();
      else transport.close();
    }
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const { cfg, opts } = parseWorkerArgs(argv);
  const id = workerIdentity(process.env, argv);
  const heartbeat = startHeartbeat(id.rank);
  // Started by a launcher that is now gone: nobody could restart or stop this worker, so it goes
  // too (rather than hold its device while the job is being torn down).
  process.once('disconnect', () => {
    process.stderr.write(`error: rank ${id.rank}: its launcher is gone; exiting\n`);
    process.exit(1);
  });
  await pinOneThread(opts.backend);
  const backend = await initBackend(opts.backend, { quiet: id.rank !== 0 });
  const metrics = new TrainingMetrics({ rank: id.rank, node: id.rankHosts[id.rank] ?? hostname() });
  metrics.buildInfo(packageVersion(), backend.name);
  const server = id.rank === 0 && opts.metricsPort > 0 ? await startMetricsServer(opts.metricsPort, metrics) : undefined;
  if (server) process.stderr.write(`[grerank] metrics: http://${hostname()}:${server.port}/metrics\n`);
  const restarts = Number(process.env[WORKER_ENV.restarts] ?? '0') || 0;
  for (let i = 0; i < restarts; i++) metrics.recordRestart();
  const t0 = performance.now();
  let examples = 0;
  let progress: Progress | undefined;
  const result = await runWorker(
    cfg,
    opts,
    id,
    (l) => {
      heartbeat.progress(l.step);
      examples += l.examples;
      const rate = examples / ((performance.now() - t0) / 1000);
      if (opts.logFormat === 'json') process.stderr.write(JSON.stringify({ ...l, 'ex/s': rate }) + '\n');
      if (id.rank !== 0) return;
      progress ??= new Progress('train', l.total, { every: cfg.logEvery, format: 'text' });
      if (opts.logFormat !== 'json') progress.update(l.step, { step: l.step, loss: l.globalLoss, 'ex/s': rate, ...(l.skipped ? { skipped: 'yes' } : {}) });
    },
    metrics,
    restarts,
  );
  await server?.close();
  heartbeat.stop();
  const { logs } = result;
  if (id.rank !== 0) return result.interrupted ? EXIT_PREEMPTED : 0;
  const secs = (performance.now() - t0) / 1000;
  const summary = `${logs.length} steps on ${id.worldSize} worker(s) (${logs.filter((l) => l.skipped).length} skipped; ${(examples / secs).toFixed(2)} examples/s)`;
  if (result.interrupted) {
    process.stderr.write(`stopped on ${result.interrupted} after ${summary}; checkpoint ${result.checkpoint}; continue with --resume latest\n`);
    return EXIT_PREEMPTED;
  }
  process.stderr.write(`trained ${summary}; wrote ${cfg.out}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const rank = process.env.GRERANK_RANK ?? '0';
      process.stderr.write(`error: rank ${rank}: ${e instanceof Error ? e.message : String(e)}\n`);
      // Bad input (exit 2) fails the same way on every restart; the launcher does not retry it.
      // A rank that only lost its ring neighbour says so (exit 3): the coordinator then names the
      // rank that failed first-hand, whichever report reached it first.
      process.exit(e instanceof PeerError ? EXIT_PEER_FAILED : e instanceof GrerankError && !(e instanceof DistError) ? EXIT_BAD_INPUT : 1);
    },
  );
}
