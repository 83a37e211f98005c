import * as tf from '@tensorflow/tfjs-core';
import type { RerankBatch } from '../data/batch.js';
import { weightStats } from '../gumbel/mask.js';
import type { Objective, StepInputs } from '../methods/objective.js';
import type { Scorer } from '../methods/scorer.js';
import { disposeEncoding, type FidReader } from '../models/fid.js';
import { shiftRight } from '../models/t5.js';
import { AdamW, clipByGlobalNorm, learningRate, type AdamWOptions, type ScheduleOptions } from './optimizer.js';

export interface GradientResult {
  loss: number;
  /** Gradients aligned with scorer.variables(); the caller disposes them. */
  grads: tf.Tensor[];
  /** The passage mask the reader saw [b*n], when the objective has one. */
  mask?: Float32Array;
  /** The normalised sampling weights [b*n], when the objective reports them. */
  weights?: Float32Array;
}

/**
 * Forward and backward of one batch. The reader's encoder and cross-attention keys/values are
 * computed first, outside the gradient tape: they do not depend on the mask, so backward keeps
 * none of the encoder's activations; only the reranker and the reader's decoder are taped.
 */
export function forwardBackward(scorer: Scorer, objective: Objective, reader: FidReader, batch: RerankBatch): GradientResult {
  const { b, n, passageLen: l, targetLen: t } = batch;
  const c = reader.t5.config;
  const inputs: StepInputs = tf.tidy(() => {
    const ids = tf.tensor3d(batch.passageIds, [b, n, l], 'int32');
    const mask = tf.tensor3d(batch.passageMask, [b, n, l], 'int32');
    return {
      batch,
      reader,
      enc: reader.encodePassages(ids, mask),
      labels: tf.tensor2d(batch.labels, [b, t], 'int32'),
      decoderInputIds: tf.tensor2d(shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t], 'int32'),
    } as unknown as tf.TensorContainer;
  }) as unknown as StepInputs;
  let maskT: tf.Tensor | undefined;
  let weightsT: tf.Tensor | undefined;
  try {
    objective.prepare?.(inputs);
    const vars = scorer.variables();
    const { value, grads } = tf.variableGrads(() => {
      const out = objective.loss(scorer.scores(batch), inputs);
      if (out.mask) maskT = tf.keep(out.mask);
      if (out.weights) weightsT = tf.keep(out.weights);
      return out.loss;
    }, vars);
    const loss = value.dataSync()[0]!;
    value.dispose();
    // A variable the loss does not reach (e.g. an unused head) gets a zero gradient.
    const ordered = vars.map((v) => grads[v.name] ?? tf.zerosLike(v));
    const mask = maskT ? (maskT.dataSync() as Float32Array) : undefined;
    const weights = weightsT ? (weightsT.dataSync() as Float32Array) : undefined;
    return { loss, grads: ordered, mask, weights };
  } finally {
    objective.release?.();
    maskT?.dispose();
    weightsT?.dispose();
    disposeEncoding(inputs.enc);
    tf.dispose([inputs.labels, inputs.decoderInputIds]);
  }
}

/** Target tokens of a batch (labels that are not padding). */
export function targetTokens(batch: RerankBatch): number {
  let n = 0;
  for (const id of batch.labels) if (id >= 0) n++;
  return n;
}

/** What an objective's loss over `batch` is a mean over: its target tokens or its questions. */
export function lossUnits(batch: RerankBatch, meanOver: 'tokens' | 'queries'): number {
  return meanOver === 'tokens' ? targetTokens(batch) : batch.b;
}

/**
 * Runs `run` on each micro-batch and combines the results into those of the whole batch: with
 * the loss a mean over `meanOver` units, micro-batch i enters with weight units_i / sum(units).
 * One micro-batch is returned as it is (no rescaling, so results stay bit-identical).
 */
export function accumulate(micro: readonly RerankBatch[], meanOver: 'tokens' | 'queries', run: (b: RerankBatch) => GradientResult): GradientResult {
  if (micro.length === 1) return run(micro[0]!);
  const units = micro.map((b) => lossUnits(b, meanOver));
  const total = units.reduce((a, u) => a + u, 0) || 1;
  let sum: tf.Tensor[] | undefined;
  let loss = 0;
  const masks: Float32Array[] = [];
  const weights: Float32Array[] = [];
  for (let i = 0; i < micro.length; i++) {
    const r = run(micro[i]!);
    const w = units[i]! / total;
    loss += r.loss * w;
    const prev = sum;
    sum = tf.tidy(() => r.grads.map((g, j) => (prev ? tf.add(prev[j]!, tf.mul(g, w)) : tf.mul(g, w))));
    tf.dispose([...r.grads, ...(prev ?? [])]);
    if (r.mask) masks.push(r.mask);
    if (r.weights) weights.push(r.weights);
  }
  const cat = (xs: Float32Array[]): Float32Array | undefined => {
    if (xs.length !== micro.length) return undefined;
    const out = new Float32Array(xs.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of xs) out.set(x, (at += x.length) - x.length);
    return out;
  };
  return { loss, grads: sum!, mask: cat(masks), weights: cat(weights) };
}

export interface TrainerOptions {
  schedule: ScheduleOptions;
  /** Global gradient-norm clip (0 disables). */
  clipNorm: number;
  adamw?: Partial<AdamWOptions>;
  /**
   * Data-parallel: given this rank's units (what the objective averages over: target tokens or
   * questions), returns the factor its gradient is scaled by before the all-reduce averages the
   * ranks: units × world size / total units, so that the average is the gradient of the global
   * mean, not the mean of per-rank means (which differ when ranks hold different token counts).
   */
  rankScale?: (localUnits: number) => Promise<number>;
}

/** What every training loop reports of one optimizer update (reranker, reader, joint). */
export interface UpdateStats {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** True when a non-finite loss or gradient skipped this update (on every rank). */
  skipped: boolean;
  examples: number;
}

export interface StepStats extends UpdateStats {
  /** What the loss is a mean over in this update (target tokens or questions, see Objective.meanOver); set by Trainer. */
  units?: number;
  /** Mean per-query maximum of the sampling weights (the paper's Figure 4 signal). */
  maxWeight?: number;
  /** Mean entropy of the sampling weights (nats). */
  entropy?: number;
  /** Mean per-query maximum of the relaxed mask the reader saw. */
  maskMax?: number;
  seconds: { forwardBackward: number; allReduce: number; optimizer: number };
}

/**
 * Averages gradients across data-parallel ranks and says whether any rank saw a non-finite
 * value. The single-process trainer uses the identity.
 */
export type GradientReducer = (grads: tf.Tensor[], localNonFinite: boolean) => Promise<{ grads: tf.Tensor[]; nonFinite: boolean }>;

/**
 * The single-process training loop body: forward/backward, optional all-reduce hook, clipping,
 * AdamW with the schedule. Distributed training swaps in a reducer; nothing else changes.
 */
export class Trainer {
  readonly optimizer: AdamW;
  skippedSteps = 0;

  constructor(
    readonly scorer: Scorer,
    readonly reader: FidReader,
    readonly objective: Objective,
    readonly opts: TrainerOptions,
    readonly reduce?: GradientReducer,
  ) {
    this.optimizer = new AdamW(scorer.variables(), opts.adamw);
  }

  /** Updates applied so far (skipped steps are not updates). */
  get step(): number {
    return this.optimizer.step;
  }

  /**
   * One optimizer update. Several micro-batches (gradient accumulation) are run one after the
   * other and their gradients summed with the weights that make the sum the gradient of the
   * concatenated batch's loss (by target tokens or queries, as the objective averages), so
   * accumulation changes memory, not the result.
   */
  async trainStep(batches: RerankBatch | readonly RerankBatch[]): Promise<StepStats> {
    const micro = Array.isArray(batches) ? (batches as readonly RerankBatch[]) : [batches as RerankBatch];
    if (micro.length === 0) throw new RangeError('trainStep: no batch');
    const t0 = performance.now();
    const res = accumulate(micro, this.objective.meanOver, (b) => forwardBackward(this.scorer, this.objective, this.reader, b));
    const t1 = performance.now();
    let grads = res.grads;
    let nonFinite = !Number.isFinite(res.loss);
    const units = micro.reduce((a, b) => a + lossUnits(b, this.objective.meanOver), 0);
    if (this.reduce && this.opts.rankScale) {
      const scale = await this.opts.rankScale(units);
      // Equal shares give exactly 1: no rescaling, results bit-identical to plain averaging.
      if (scale !== 1) {
        const scaled = tf.tidy(() => grads.map((g) => tf.mul(g, scale)));
        tf.dispose(grads);
        grads = scaled;
      }
    }
    if (this.reduce) {
      const r = await this.reduce(grads, nonFinite);
      if (r.grads !== grads) tf.dispose(grads);
      grads = r.grads;
      nonFinite = r.nonFinite;
    }
    const t2 = performance.now();
    const clipped = clipByGlobalNorm(grads, this.opts.clipNorm);
    nonFinite ||= !Number.isFinite(clipped.norm);
    const lr = learningRate(this.opts.schedule, this.optimizer.step + 1);
    if (nonFinite) this.skippedSteps++;
    else this.optimizer.apply(clipped.grads, lr);
    tf.dispose(clipped.grads.filter((g) => !grads.includes(g)));
    tf.dispose(grads);
    const t3 = performance.now();
    const stats: StepStats = {
      step: this.optimizer.step,
      loss: res.loss,
      lr,
      gradNorm: clipped.norm,
      skipped: nonFinite,
      examples: micro.reduce((a, b) => a + b.b, 0),
      units,
      seconds: { forwardBackward: (t1 - t0) / 1000, allReduce: (t2 - t1) / 1000, optimizer: (t3 - t2) / 1000 },
    };
    if (res.weights) Object.assign(stats, weightStats(res.weights, stats.examples, micro[0]!.n));
    if (res.mask) stats.maskMax = weightStats(res.mask, stats.examples, micro[0]!.n).maxWeight;
    return stats;
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
