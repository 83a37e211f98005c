import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RerankBatch } from '../data/batch.js';
import { encodeBatch } from '../data/encode.js';
import { readExamples } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { weightStats } from '../gumbel/mask.js';
import { saveModelDir } from '../io/export.js';
import { makeObjective } from '../methods/index.js';
import type { Objective, StepInputs } from '../methods/objective.js';
import { RerankerScorer } from '../methods/scorer.js';
import type { FidReader } from '../models/fid.js';
import { loadReranker, type LoadedReranker } from '../models/load.js';
import { shiftRight } from '../models/t5.js';
import { Rng } from '../util/rng.js';
import { AdamW, clipByGlobalNorm, learningRate, type AdamWOptions, type ScheduleOptions } from './optimizer.js';
import { loadTrainableReader, READER_TRAIN_DEFAULTS, saveReader, type ReaderTrainConfig, type TrainableReader } from './reader.js';
import { checkTrainEval, epochOrder, isEvalStep, runTrainEval, type TrainConfig, type TrainHooks } from './run.js';
import type { GradientResult, StepStats } from './step.js';

/**
 * Joint training of reader and reranker (the paper's Figure 2): the reader is trainable too and
 * one loss, the reader's answer NLL under the relaxed Gumbel top-k mask, updates both. Unlike the
 * frozen-reader path (step.ts), the reader's encoder runs inside the gradient tape.
 */

/** The reader's default peak learning rate (FiD's). */
export const READER_LR_DEFAULT = 1e-4;

/** Word-embedding tables of the supported rerankers (as in run.ts). */
const EMBEDDING_NAMES = ['shared.weight', 'roberta.embeddings.word_embeddings.weight'];

export interface JointGradients extends Omit<GradientResult, 'grads'> {
  /** Aligned with scorer.variables() and reader.t5.params.variables(); the caller disposes them. */
  rerankerGrads: tf.Tensor[];
  readerGrads: tf.Tensor[];
}

/** Forward and backward of one batch through reranker and reader, the reader's encoder taped. */
export function jointForwardBackward(scorer: RerankerScorer, objective: Objective, reader: FidReader, batch: RerankBatch): JointGradients {
  const { b, n, passageLen: l, targetLen: t } = batch;
  const c = reader.t5.config;
  const rVars = scorer.variables();
  const dVars = reader.t5.params.variables();
  if (dVars.length === 0) throw new Error('jointForwardBackward: the reader was loaded without trainable parameters');
  const labels = tf.tensor2d(batch.labels, [b, t], 'int32');
  const decoderInputIds = tf.tensor2d(shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t], 'int32');
  let maskT: tf.Tensor | undefined;
  let weightsT: tf.Tensor | undefined;
  try {
    const { value, grads } = tf.variableGrads(() => {
      const enc = reader.encodePassages(tf.tensor3d(batch.passageIds, [b, n, l], 'int32'), tf.tensor3d(batch.passageMask, [b, n, l], 'int32'));
      const inputs: StepInputs = { batch, reader, enc, labels: labels as tf.Tensor2D, decoderInputIds: decoderInputIds as tf.Tensor2D };
      const out = objective.loss(scorer.scores(batch), inputs);
      if (out.mask) maskT = tf.keep(out.mask);
      if (out.weights) weightsT = tf.keep(out.weights);
      return out.loss;
    }, [...rVars, ...dVars]);
    const loss = value.dataSync()[0]!;
    value.dispose();
    const pick = (vs: tf.Variable[]) => vs.map((v) => grads[v.name] ?? tf.zerosLike(v));
    return {
      loss,
      rerankerGrads: pick(rVars),
      readerGrads: pick(dVars),
      mask: maskT ? (maskT.dataSync() as Float32Array) : undefined,
      weights: weightsT ? (weightsT.dataSync() as Float32Array) : undefined,
    };
  } finally {
    maskT?.dispose();
    weightsT?.dispose();
    tf.dispose([labels, decoderInputIds]);
  }
}

export interface JointTrainerOptions {
  /** The reranker's schedule; the reader's is the same with `readerLr` as its peak. */
  schedule: ScheduleOptions;
  readerLr: number;
  /** Global gradient-norm clip, applied to each parameter set separately (0 disables). */
  clipNorm: number;
  adamw?: Partial<AdamWOptions>;
}

export interface JointStepStats extends StepStats {
  readerLr: number;
  readerGradNorm: number;
}

/** The joint loop body: one loss, two AdamW optimizers (reranker and reader). */
export class JointTrainer {
  readonly optimizer: AdamW;
  readonly readerOptimizer: AdamW;
  readonly readerSchedule: ScheduleOptions;
  skippedSteps = 0;

  constructor(
    readonly scorer: RerankerScorer,
    readonly reader: FidReader,
    readonly objective: Objective,
    readonly opts: JointTrainerOptions,
  ) {
    this.optimizer = new AdamW(scorer.variables(), opts.adamw);
    this.readerOptimizer = new AdamW(reader.t5.params.variables(), opts.adamw);
    this.readerSchedule = { ...opts.schedule, lr: opts.readerLr };
  }

  get step(): number {
    return this.optimizer.step;
  }

  trainStep(batch: RerankBatch): JointStepStats {
    const t0 = performance.now();
    const res = jointForwardBackward(this.scorer, this.objective, this.reader, batch);
    const t1 = performance.now();
    const cr = clipByGlobalNorm(res.rerankerGrads, this.opts.clipNorm);
    const cd = clipByGlobalNorm(res.readerGrads, this.opts.clipNorm);
    const nonFinite = !Number.isFinite(res.loss) || !Number.isFinite(cr.norm) || !Number.isFinite(cd.norm);
    const lr = learningRate(this.opts.schedule, this.optimizer.step + 1);
    const readerLr = learningRate(this.readerSchedule, this.readerOptimizer.step + 1);
    if (nonFinite) this.skippedSteps++;
    else {
      this.optimizer.apply(cr.grads, lr);
      this.readerOptimizer.apply(cd.grads, readerLr);
    }
    tf.dispose(cr.grads.filter((g) => !res.rerankerGrads.includes(g)));
    tf.dispose(cd.grads.filter((g) => !res.readerGrads.includes(g)));
    tf.dispose([...res.rerankerGrads, ...res.readerGrads]);
    const t2 = performance.now();
    const stats: JointStepStats = {
      step: this.optimizer.step,
      loss: res.loss,
      lr,
      gradNorm: cr.norm,
      readerLr,
      readerGradNorm: cd.norm,
      skipped: nonFinite,
      examples: batch.b,
      seconds: { forwardBackward: (t1 - t0) / 1000, allReduce: 0, optimizer: (t2 - t1) / 1000 },
    };
    if (res.weights) Object.assign(stats, weightStats(res.weights, batch.b, batch.n));
    if (res.mask) stats.maskMax = weightStats(res.mask, batch.b, batch.n).maxWeight;
    return stats;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.readerOptimizer.dispose();
  }
}

export interface JointTrainResult {
  steps: number;
  skipped: number;
  history: JointStepStats[];
  outDir: string;
}

/**
 * `grerank train --train both`: trains reader and reranker jointly with the Gumbel objective and
 * writes out/reranker and out/reader (Hugging Face directories) and out/train-config.json.
 * No checkpoints (a run cannot be resumed).
 */
export async function trainJoint(cfg: TrainConfig, onStep?: (s: JointStepStats, total: number) => void, hooks: TrainHooks = {}): Promise<JointTrainResult> {
  if (cfg.method !== 'gumbel') throw new GrerankError(`--train both trains with the Gumbel objective only (got --method ${cfg.method})`);
  if (!cfg.reranker) throw new GrerankError('--reranker is required for --train both');
  if (cfg.gumbel.k < 1 || cfg.gumbel.k > cfg.encode.nPassages) throw new GrerankError(`k = ${cfg.gumbel.k} must lie in [1, n-passages = ${cfg.encode.nPassages}]`);
  if (hooks.eval) await checkTrainEval(hooks.eval);
  const { examples } = await readExamples(cfg.data, { limit: cfg.limit });
  if (examples.length === 0) throw new GrerankError(`${cfg.data}: no examples`);
  let trainable: TrainableReader | undefined;
  let loaded: LoadedReranker | undefined;
  let trainer: JointTrainer | undefined;
  try {
    trainable = await loadTrainableReader({ reader: cfg.reader, initSeed: 0 });
    loaded = await loadReranker(cfg.reranker, { rankT5TokenId: cfg.rankT5TokenId });
    if (cfg.freezeEmbeddings) loaded.reranker.params.freeze(EMBEDDING_NAMES.filter((n) => loaded!.reranker.params.params.has(n)));
    const scorer = new RerankerScorer(loaded.reranker);
    const perEpoch = Math.ceil(examples.length / cfg.batchSize);
    const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
    const noiseRng = new Rng(cfg.seed + 17);
    const objective = makeObjective('gumbel', { gumbel: cfg.gumbel }, noiseRng);
    trainer = new JointTrainer(scorer, trainable.reader, objective, {
      schedule: { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule },
      readerLr: cfg.readerLr ?? READER_LR_DEFAULT,
      clipNorm: cfg.clipNorm,
      adamw: { weightDecay: cfg.weightDecay },
    });
    const targetRng = new Rng(cfg.seed + 29);
    const history: JointStepStats[] = [];
    const pairs = { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer };
    let done = 0;
    for (let epoch = 0; done < total; epoch++) {
      const order = epochOrder(examples.length, cfg.seed, epoch);
      for (let s = 0; s < order.length && done < total; s += cfg.batchSize) {
        const idx = order.slice(s, s + cfg.batchSize);
        const batch = await encodeBatch(idx.map((i) => examples[i]!), idx, trainable.tokenizer, pairs, cfg.encode, targetRng);
        const stats = trainer.trainStep(batch);
        history.push(stats);
        done++;
        onStep?.(stats, total);
        if (hooks.eval && isEvalStep(hooks.eval, done, total)) {
          await runTrainEval(hooks.eval, { reranker: loaded, reader: { reader: trainable.reader, tokenizer: trainable.tokenizer } }, cfg, done, total, hooks.onEval);
        }
      }
    }
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(join(cfg.out, 'train-config.json'), JSON.stringify(cfg, null, 2) + '\n');
    saveModelDir(join(cfg.out, 'reranker'), cfg.reranker, loaded.reranker.params.toRaw());
    saveReader(join(cfg.out, 'reader'), trainable);
    return { steps: trainer.step, skipped: trainer.skippedSteps, history, outDir: cfg.out };
  } finally {
    trainer?.dispose();
    trainable?.reader.dispose();
    loaded?.reranker.dispose();
  }
}

/**
 * `grerank train --train reader`: the reader trainer of `grerank train-reader` on the same data,
 * with the reader's settings taken from the train config (peak learning rate `readerLr`); the
 * reader is written to out/reader.
 */
export function readerConfigOf(cfg: TrainConfig): ReaderTrainConfig {
  return {
    ...READER_TRAIN_DEFAULTS,
    reader: cfg.reader,
    data: cfg.data,
    out: join(cfg.out, 'reader'),
    steps: cfg.steps,
    epochs: cfg.epochs,
    batchSize: cfg.batchSize,
    encode: { nPassages: cfg.encode.nPassages, passageMaxLength: cfg.encode.passageMaxLength, answerMaxLength: cfg.encode.answerMaxLength },
    lr: cfg.readerLr ?? READER_LR_DEFAULT,
    warmupSteps: cfg.warmupSteps,
    weightDecay: cfg.weightDecay,
    clipNorm: cfg.clipNorm,
    schedule: cfg.schedule,
    seed: cfg.seed,
    logEvery: cfg.logEvery,
    ...(cfg.limit !== undefined ? { limit: cfg.limit } : {}),
  };
}
