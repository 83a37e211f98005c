import type { Variable } from '@tensorflow/tfjs-core';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RerankBatch } from '../data/batch.js';
import { encodeBatch, DEFAULT_ENCODE_SPEC, type EncodeSpec } from '../data/encode.js';
import { Dataset } from '../data/dataset.js';
import { readExamples, type Example } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { checkLabels, EVAL_DEFAULTS, evaluateLoaded, type EvalModels } from '../eval/evaluate.js';
import { saveModelDir } from '../io/export.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { GUMBEL_DEFAULTS, hardTopK, type GumbelOptions } from '../gumbel/mask.js';
import { makeObjective, OBJECTIVES, type ObjectiveName } from '../methods/index.js';
import { RerankerScorer, WeightTable, type Scorer } from '../methods/scorer.js';
import { FidReader } from '../models/fid.js';
import { loadReranker, type LoadedReranker } from '../models/load.js';
import { rawToTensor } from '../models/params.js';
import { Rng } from '../util/rng.js';
import { configDifferences, FORMAT_VERSION, loadCheckpoint, resolveResume, saveCheckpoint, type CheckpointContents, type CheckpointState, type LoadedCheckpoint } from './checkpoint.js';
import { learningRate, type ScheduleOptions } from './optimizer.js';
import { Trainer, type StepStats } from './step.js';
import { StopRequest } from './stop.js';

export const METHODS = OBJECTIVES;
export type Method = ObjectiveName;

/** Everything a single-process training run needs; JSON-serialisable (it is saved with the run). */
export interface TrainConfig {
  reader: string;
  /** The reranker's Hugging Face directory (not used by method "weights"). */
  reranker?: string;
  /** RankT5's scoring token (<extra_id_10> = 32089 in the real vocabulary). */
  rankT5TokenId: number;
  /**
   * Keep the reranker's word embeddings fixed. BGE's [250002, 768] table alone needs 3 GB for its
   * gradient and AdamW moments, more than the wasm backend's 4 GB heap leaves room for.
   */
  freezeEmbeddings: boolean;
  data: string;
  out: string;
  method: Method;
  /** Optimizer updates; 0 = run `epochs` full passes. */
  steps: number;
  epochs: number;
  batchSize: number;
  /**
   * Micro-batches of batchSize summed into one update (gradient accumulation): the update is
   * that of a batch of batchSize × accumulationSteps (× world size), with the memory of one
   * micro-batch. Left out when 1, so older checkpoints' configs still match.
   */
  accumulationSteps?: number;
  encode: EncodeSpec;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  schedule: 'linear' | 'constant';
  gumbel: GumbelOptions;
  /** Baselines: T_s of the student softmax(w / T_s) and T_g of the target softmax(s / T_g) (Atlas: 0.01). */
  temperatureScore: number;
  temperatureGold: number;
  seed: number;
  logEvery: number;
  limit?: number;
  /**
   * What `grerank train` trains: the reranker against the frozen reader (default; the key is
   * then left out), the reader alone (train-reader's loop), or both jointly (joint.ts).
   */
  train?: TrainTarget;
  /** The reader's peak learning rate with train reader|both [1e-4]. */
  readerLr?: number;
}

export const TRAIN_TARGETS = ['reranker', 'reader', 'both'] as const;
export type TrainTarget = (typeof TRAIN_TARGETS)[number];

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'reader' | 'data' | 'out'> = {
  method: 'gumbel',
  rankT5TokenId: 32089,
  freezeEmbeddings: false,
  steps: 0,
  epochs: 1,
  batchSize: 1,
  encode: DEFAULT_ENCODE_SPEC,
  lr: 5e-5,
  warmupSteps: 0,
  weightDecay: 0.01,
  clipNorm: 1.0,
  schedule: 'linear',
  gumbel: { k: 5, ...GUMBEL_DEFAULTS },
  temperatureScore: 0.01,
  temperatureGold: 0.01,
  seed: 0,
  logEvery: 10,
};

/** Word-embedding tables of the supported rerankers (RankT5's is also its tied LM head). */
const EMBEDDING_NAMES = ['shared.weight', 'roberta.embeddings.word_embeddings.weight'];

/** Drops `accumulationSteps` when it is 1 (the configs of older checkpoints lack it); refuses a bad value in one line. */
export function normaliseAccumulation(cfg: TrainConfig): void {
  const a = cfg.accumulationSteps;
  if (a === undefined) return;
  if (!Number.isInteger(a) || a < 1) throw new GrerankError(`--accumulation-steps must be a positive integer, got ${a}`);
  if (a === 1) delete cfg.accumulationSteps;
}

/** Splits an update's indices into micro-batches of `size` (gradient accumulation), in order. */
export function microBatches(indices: readonly number[], size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < indices.length; i += size) out.push(indices.slice(i, i + size));
  return out;
}

/** The deterministic order of epoch `epoch`: a permutation seeded by (seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): number[] {
  return new Rng(seed * 1_000_003 + epoch).shuffle(Array.from({ length: count }, (_, i) => i));
}

export interface TrainResult {
  steps: number;
  skipped: number;
  history: StepStats[];
  outDir: string;
  /** Set when a signal stopped the run early (after saving a checkpoint). */
  interrupted?: NodeJS.Signals;
  /** The last checkpoint written by this run. */
  checkpoint?: string;
  /** The checkpoint this run resumed from. */
  resumedFrom?: string;
}

/** Checkpointing of a run (see docs/checkpoints.md); without it trainReranker writes none. */
export interface CheckpointOptions {
  /** Save every N steps (0: only at the end and on a signal). */
  saveEvery: number;
  /** Complete checkpoints kept (the newest). */
  keep: number;
  /** "latest" or a checkpoint directory to continue from. */
  resume?: string;
  /** Finish the current step, save and stop on these signals (default SIGTERM, SIGUSR1). */
  signals?: NodeJS.Signals[];
}

/** Evaluation during training (`--eval-every`): ranking metrics of the in-memory reranker. */
export interface TrainEvalOptions {
  /** Evaluate every N steps (0: only at the end); always at the end of the run. */
  every: number;
  /** Labelled eval data (gold flags, as `grerank prepare` writes). */
  data: string;
  /** The hard top-k of the metrics [5]. */
  k: number;
  limit?: number;
  /** Also let the reader answer from the top-k (EM, SubEM, F1). */
  generate: boolean;
  /** Questions per scoring pass [4]. */
  batchSize?: number;
}

/** One evaluation during training: what OUT/eval.jsonl holds a line of. */
export interface TrainEvalEvent {
  step: number;
  total: number;
  final: boolean;
  k: number;
  /** Means over the eval questions (null where undefined), fractions in [0, 1]. */
  metrics: Record<string, number | null>;
  counts: Record<string, number>;
  seconds: number;
}

/** Hooks of a training run besides progress and checkpoints. */
export interface TrainHooks {
  eval?: TrainEvalOptions;
  /** Called after every evaluation (a metrics exporter can publish them). */
  onEval?: (e: TrainEvalEvent) => void;
  /** trainReranker: called with each encoded batch and the seconds its encoding took, before its step (the metrics' data phase). */
  onBatch?: (batches: readonly RerankBatch[], seconds: number) => void;
  /** trainReranker: called after every checkpoint written, with its directory and reason. */
  onCheckpoint?: (dir: string, reason: string) => void;
}

/** Checks the eval options and data before training starts (one-line errors). */
export async function checkTrainEval(e: TrainEvalOptions): Promise<void> {
  if (!Number.isInteger(e.every) || e.every < 0) throw new GrerankError(`--eval-every must be a non-negative integer, got ${e.every}`);
  if (!Number.isInteger(e.k) || e.k < 1) throw new GrerankError(`--eval-k must be a positive integer, got ${e.k}`);
  const { examples } = await readExamples(e.data, { limit: e.limit });
  if (examples.length === 0) throw new GrerankError(`${e.data}: no examples`);
  checkLabels(examples, e.data);
}

/** True when step `done` of `total` is an evaluation point. */
export function isEvalStep(e: TrainEvalOptions, done: number, total: number): boolean {
  return done === total || (e.every > 0 && done % e.every === 0);
}

/**
 * Evaluates in-memory models at step `step`: no gradient, no training RNG drawn, no tensors
 * left; appends the metrics to out/eval.jsonl and passes them to `onEval`.
 */
export async function runTrainEval(e: TrainEvalOptions, models: EvalModels, cfg: Pick<TrainConfig, 'out' | 'encode'>, step: number, total: number, onEval?: (ev: TrainEvalEvent) => void): Promise<TrainEvalEvent> {
  const r = await evaluateLoaded(
    {
      ...EVAL_DEFAULTS,
      data: e.data,
      ranker: { kind: 'reranker', dir: join(cfg.out, 'reranker') },
      k: e.k,
      limit: e.limit,
      generate: e.generate,
      batchSize: e.batchSize ?? EVAL_DEFAULTS.batchSize,
      pairMaxLength: cfg.encode.pairMaxLength,
      passageMaxLength: cfg.encode.passageMaxLength,
      name: `step ${step}`,
    },
    models,
  );
  const ev: TrainEvalEvent = { step, total, final: step === total, k: e.k, metrics: r.metrics, counts: r.counts, seconds: r.seconds };
  mkdirSync(cfg.out, { recursive: true });
  appendFileSync(join(cfg.out, 'eval.jsonl'), JSON.stringify(ev) + '\n');
  onEval?.(ev);
  return ev;
}

/**
 * Trains a reranker (or Algorithm 2's weights) in this process against the frozen reader and
 * writes the result to `out`: the reranker as a Hugging Face directory (out/reranker), or the
 * learned weights and rankings (out/weights.json).
 */
export async function trainReranker(cfg: TrainConfig, onStep?: (s: StepStats, total: number) => void, ckpt?: CheckpointOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  if (!METHODS.includes(cfg.method)) throw new GrerankError(`unknown method "${cfg.method}" (choose ${METHODS.join(', ')})`);
  if (cfg.method !== 'weights' && !cfg.reranker) throw new GrerankError(`--reranker is required for method ${cfg.method}`);
  if (cfg.train && cfg.train !== 'reranker') throw new GrerankError(`trainReranker trains the reranker only (train "${cfg.train}": use trainReader or trainJoint)`);
  if (hooks.eval && cfg.method === 'weights') throw new GrerankError('--eval-every needs a reranker: method weights learns per-question weights of the training questions only');
  if (hooks.eval) await checkTrainEval(hooks.eval);
  if (cfg.gumbel.k < 1 || cfg.gumbel.k > cfg.encode.nPassages) throw new GrerankError(`k = ${cfg.gumbel.k} must lie in [1, n-passages = ${cfg.encode.nPassages}]`);
  const resumed = ckpt?.resume ? loadResumable(resolveResume(ckpt.resume, cfg.out), cfg) : undefined;
  const { examples, readerTok, reader, loaded, scorer } = await loadTrainingModels(cfg, resumed);
  const accumulation = cfg.accumulationSteps ?? 1;
  const perUpdate = cfg.batchSize * accumulation;
  const perEpoch = Math.ceil(examples.length / perUpdate);
  const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
  const noiseRng = new Rng(resumed ? resumed.state.rng.gumbel : cfg.seed + 17);
  const objective = makeObjective(cfg.method, { gumbel: cfg.gumbel, temperatureScore: cfg.temperatureScore, temperatureGold: cfg.temperatureGold }, noiseRng);
  const schedule = { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule };
  const trainer = new Trainer(scorer, reader, objective, {
    schedule,
    clipNorm: cfg.clipNorm,
    adamw: { weightDecay: cfg.weightDecay },
  });
  const targetRng = new Rng(resumed ? resumed.state.rng.target : cfg.seed + 29);
  const history: StepStats[] = [];
  const stop = ckpt ? new StopRequest(ckpt.signals) : undefined;
  let lastCheckpoint: string | undefined;
  try {
    let { step: done, epoch, cursor } = resumeTrainer(trainer, resumed);
    const save = (reason: string): void => {
      if (!ckpt) return;
      lastCheckpoint = saveCheckpoint(
        cfg.out,
        checkpointContents({ cfg, reason, done, data: { epoch, cursor }, rng: { gumbel: noiseRng.state(), target: targetRng.state() }, schedule, trainer, scorer, loaded }),
        ckpt.keep,
      );
      hooks.onCheckpoint?.(lastCheckpoint, reason);
    };
    let order = epochOrder(examples.length, cfg.seed, epoch);
    while (done < total && !stop?.signal) {
      if (cursor >= order.length) {
        epoch++;
        cursor = 0;
        order = epochOrder(examples.length, cfg.seed, epoch);
      }
      const idx = order.slice(cursor, cursor + perUpdate);
      const tData = performance.now();
      const pairs = loaded ? { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer } : { kind: 'rankt5' as const, tokenizer: readerTok };
      const batches: RerankBatch[] = [];
      // In order: the answer targets come from one stream, as for one batch of perUpdate.
      for (const m of microBatches(idx, cfg.batchSize)) batches.push(await encodeBatch(examples.getMany(m), m, readerTok, pairs, cfg.encode, targetRng));
      hooks.onBatch?.(batches, (performance.now() - tData) / 1000);
      const stats = await trainer.trainStep(batches);
      history.push(stats);
      done++;
      cursor += perUpdate;
      onStep?.(stats, total);
      if (hooks.eval && loaded && isEvalStep(hooks.eval, done, total)) {
        await runTrainEval(hooks.eval, { reranker: loaded, reader: { reader, tokenizer: readerTok } }, cfg, done, total, hooks.onEval);
      }
      if (ckpt) {
        await stop!.poll(done);
        if (stop?.signal) save(stop.signal);
        else if (done === total) save('final');
        else if (ckpt.saveEvery > 0 && done % ckpt.saveEvery === 0) save('interval');
      }
    }
    if (stop?.signal) {
      if (done === 0 || !lastCheckpoint) save(stop.signal);
      return { steps: trainer.step, skipped: trainer.skippedSteps, history, outDir: cfg.out, interrupted: stop.signal, checkpoint: lastCheckpoint, resumedFrom: resumed?.dir };
    }
    if (ckpt && !lastCheckpoint) save('final');
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(join(cfg.out, 'train-config.json'), JSON.stringify(cfg, null, 2) + '\n');
    if (loaded) {
      saveModelDir(join(cfg.out, 'reranker'), cfg.reranker!, loaded.reranker.params.toRaw());
    } else {
      writeFileSync(join(cfg.out, 'weights.json'), JSON.stringify(weightsReport(scorer as WeightTable, examples.getMany(Array.from({ length: examples.length }, (_, i) => i)), cfg.gumbel.k)) + '\n');
    }
    return { steps: trainer.step, skipped: trainer.skippedSteps, history, outDir: cfg.out, checkpoint: lastCheckpoint, resumedFrom: resumed?.dir };
  } finally {
    stop?.dispose();
    examples.close();
    trainer.dispose();
    reader.dispose();
    loaded?.reranker.dispose();
  }
}

/**
 * The checkpoint in `dir` (none when undefined), refused in one line when it was written with a
 * training config that differs from `config` (the config as the checkpoints record it).
 */
export function loadResumable(dir: string | undefined, config: object): LoadedCheckpoint | undefined {
  if (!dir) return undefined;
  const resumed = loadCheckpoint(dir);
  const diff = configDifferences(resumed.config, JSON.parse(JSON.stringify(config)) as object);
  if (diff.length > 0) throw new GrerankError(`${dir}: cannot resume: the training config differs in ${diff.join(', ')}`);
  return resumed;
}

/** What a reranker training loop trains with: the data, the frozen reader, and the reranker (or Algorithm 2's table) with a checkpoint's weights. */
export async function loadTrainingModels(
  cfg: TrainConfig,
  resumed: LoadedCheckpoint | undefined,
): Promise<{ examples: Dataset; readerTok: TextTokenizer; reader: FidReader; loaded: LoadedReranker | undefined; scorer: Scorer }> {
  // An index of byte offsets, not the parsed file: each rank parses only the examples it trains on.
  const examples = await Dataset.open(cfg.data, { limit: cfg.limit });
  if (examples.length === 0) {
    examples.close();
    throw new GrerankError(`${cfg.data}: no examples`);
  }
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
  if (resumed) restoreWeights(resumed, scorer, loaded);
  return { examples, readerTok, reader, loaded, scorer };
}

/** Puts a checkpoint's optimizer state into `trainer`; returns where the loop continues (0s for a fresh start). */
export function resumeTrainer(trainer: Trainer, resumed: LoadedCheckpoint | undefined): { step: number; epoch: number; cursor: number } {
  if (!resumed) return { step: 0, epoch: 0, cursor: 0 };
  trainer.optimizer.load(resumed.optimizer);
  trainer.skippedSteps = resumed.state.skippedSteps;
  return { step: resumed.state.step, epoch: resumed.state.rng.data.epoch, cursor: resumed.state.rng.data.cursor };
}

/** What a checkpoint of a training loop holds (single-process or one rank of a data-parallel job). */
export function checkpointContents(p: {
  cfg: object;
  reason: string;
  done: number;
  data: { epoch: number; cursor: number };
  rng: { gumbel: number[]; target: number[] };
  schedule: ScheduleOptions;
  trainer: Trainer;
  scorer: Scorer;
  loaded: LoadedReranker | undefined;
}): CheckpointContents {
  const { trainer, scorer, loaded, schedule, done } = p;
  const state: CheckpointState = {
    format: FORMAT_VERSION,
    step: done,
    optimizerStep: trainer.optimizer.step,
    skippedSteps: trainer.skippedSteps,
    schedule,
    lr: done > 0 ? learningRate(schedule, Math.max(1, trainer.optimizer.step)) : undefined,
    rng: { data: p.data, gumbel: p.rng.gumbel, target: p.rng.target },
    variables: loaded ? loaded.reranker.params.variableNames() : ['weights'],
    kind: loaded ? 'reranker' : 'weights',
    reason: p.reason,
    savedAt: new Date().toISOString(),
  };
  const table = scorer instanceof WeightTable ? scorer.table : undefined;
  return {
    state,
    config: p.cfg,
    reranker: loaded?.reranker.params.toRaw(),
    rerankerSource: (p.cfg as { reranker?: string }).reranker,
    weights: table ? { dtype: 'float32', shape: table.shape, data: table.dataSync() as Float32Array } : undefined,
    optimizer: trainer.optimizer.state(),
    variableShapes: scorer.variables().map((v) => v.shape),
  };
}

/** Puts a checkpoint's weights into the freshly loaded reranker (or weight table), checking names and shapes. */
export function restoreWeights(ck: LoadedCheckpoint, scorer: Scorer, loaded: LoadedReranker | undefined): void {
  if (loaded) {
    if (!ck.reranker) throw new GrerankError(`${ck.dir}: checkpoint holds no reranker weights`);
    const params = loaded.reranker.params;
    for (const [name, p] of params.params) {
      const raw = ck.reranker.get(name);
      if (!raw) throw new GrerankError(`${ck.dir}: checkpoint lacks parameter ${name}`);
      const t = rawToTensor(raw, p.layout);
      if (t.shape.join(',') !== p.tensor.shape.join(',')) {
        t.dispose();
        throw new GrerankError(`${ck.dir}: parameter ${name} has shape [${raw.shape.join(', ')}], the model expects another`);
      }
      if (params.trainable) {
        (p.tensor as Variable).assign(t);
        t.dispose();
      } else {
        params.set(name, p.layout, t);
      }
    }
  } else {
    const table = (scorer as WeightTable).table;
    if (!ck.weights || ck.weights.shape.join(',') !== table.shape.join(',')) throw new GrerankError(`${ck.dir}: weight table does not match [${table.shape.join(', ')}]`);
    const t = rawToTensor(ck.weights);
    table.assign(t);
    t.dispose();
  }
}

/** Algorithm 2's output: each query's learned weights and the ranking they induce. */
function weightsReport(table: WeightTable, examples: readonly Example[], k: number): unknown {
  return examples.map((ex, i) => {
    const w = Array.from(table.weightsOf(i));
    return { id: ex.id, weights: w, ranking: hardTopK(w, w.length), topk: hardTopK(w, k) };
  });
}
