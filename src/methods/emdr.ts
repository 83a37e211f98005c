import * as tf from '@tensorflow/tfjs-core';
import type { Objective, ObjectiveOutput, StepInputs } from './objective.js';
import { DISTILL_DEFAULTS, flushTinyGradients, labelMask, singlePassageLogProbs } from './teacher.js';

export interface EmdrOptions {
  /** T_s: p_R = softmax(w / T_s). Atlas default 0.01. */
  temperatureScore: number;
  /**
   * Temperature of the reader's token distribution, log p_LM = logSoftmax(logits / T). 1 is the
   * SPEC.md formula; Atlas' code divides the reader logits by its temperature_gold (0.01).
   */
  temperatureLm: number;
}

export const EMDR_DEFAULTS: EmdrOptions = { temperatureScore: DISTILL_DEFAULTS.temperatureScore, temperatureLm: 1 };

/**
 * EMDR² (SPEC.md section 4, Atlas "emdr"): maximise log sum_k p_LM(a | q, d_k) p_R(d_k | q),
 * marginalised per target token as Atlas does:
 *   loss = -mean over the batch's non-pad target tokens of logsumexp_k(log p_LM(a_t | q, d_k, a_<t) + log p_R(d_k)),
 * with p_R = softmax(w / T_s) and log p_LM from one-passage reader runs (teacher.ts,
 * singlePassageLogProbs) computed in `prepare`, held constant.
 */
export class EmdrObjective implements Objective {
  readonly name = 'emdr';
  readonly meanOver = 'tokens' as const;
  readonly opts: EmdrOptions;
  /** log p_LM(a_t | q, d_k, a_<t) [B, N, T] of the prepared batch, 0 on padding (until `release`). */
  tokenLogProbs?: tf.Tensor3D;
  private valid?: tf.Tensor2D;

  constructor(opts: Partial<EmdrOptions> = {}) {
    this.opts = { ...EMDR_DEFAULTS, ...opts };
    if (!(this.opts.temperatureScore > 0) || !(this.opts.temperatureLm > 0)) throw new RangeError(`temperatures must be positive, got T_s = ${this.opts.temperatureScore}, T_lm = ${this.opts.temperatureLm}`);
  }

  prepare(inputs: StepInputs): void {
    this.release();
    this.tokenLogProbs = singlePassageLogProbs(inputs.reader, inputs.enc, inputs.decoderInputIds, inputs.labels, this.opts.temperatureLm);
    this.valid = labelMask(inputs.labels);
  }

  loss(scores: tf.Tensor2D, inputs: StepInputs): ObjectiveOutput {
    if (!this.tokenLogProbs) this.prepare(inputs);
    const [b, n] = scores.shape;
    const logPr = tf.logSoftmax(tf.div(flushTinyGradients(scores), this.opts.temperatureScore)) as tf.Tensor2D;
    const joint = tf.add(this.tokenLogProbs!, tf.reshape(logPr, [b, n, 1])); // [B, N, T]
    const perToken = tf.logSumExp(joint, 1); // [B, T]
    const valid = this.valid!;
    const loss = tf.neg(tf.div(tf.sum(tf.mul(perToken, valid)), tf.maximum(tf.sum(valid), 1))) as tf.Scalar;
    return { loss, weights: tf.exp(logPr) as tf.Tensor2D };
  }

  release(): void {
    this.tokenLogProbs?.dispose();
    this.valid?.dispose();
    this.tokenLogProbs = undefined;
    this.valid = undefined;
  }
}
