import * as tf from '@tensorflow/tfjs-core';
import { FLOAT32_TINY, gumbelNoise, relaxedTopK, type GumbelOptions } from '../gumbel/mask.js';
import { logPassageMask } from '../models/fid.js';
import { Rng } from '../util/rng.js';
import type { Objective, ObjectiveOutput, StepInputs } from './objective.js';

/**
 * Per-example Gumbel noise keyed by (seed, step, dataset index): example `index[i]` of global
 * step `step` gets the same k·n draws whichever batch or worker it lands in, so splitting a
 * global batch across data-parallel workers does not change anyone's noise. Layout [k, b, n].
 */
export function keyedGumbelNoise(seed: number, step: number, index: ArrayLike<number>, k: number, n: number): Float32Array {
  const b = index.length;
  const g = new Float32Array(k * b * n);
  for (let i = 0; i < b; i++) {
    const rng = new Rng([seed >>> 0, step >>> 0, index[i]! >>> 0, 0x9e3779b9]);
    for (let w = 0; w < 4; w++) rng.nextUint32(); // mix the raw key before drawing
    for (let j = 0; j < k; j++) {
      for (let d = 0; d < n; d++) {
        const u = Math.max(rng.uniform(), FLOAT32_TINY);
        g[(j * b + i) * n + d] = -Math.log(-Math.log(u));
      }
    }
  }
  return g;
}

/**
 * G-Rerank: the scores become a relaxed top-k mask (Algorithm 1) that enters every decoder
 * cross-attention of the frozen reader (differentiable masked attention); the loss is the
 * reader's answer NLL. One noise draw per step from `rng`, or, when `noiseSeed` is set (the
 * data-parallel workers), per-example noise from {@link keyedGumbelNoise}(noiseSeed, `step`,
 * batch.index): the caller sets `step` to the global step before each loss.
 */
export class GumbelObjective implements Objective {
  readonly name = 'gumbel';
  readonly meanOver = 'tokens' as const;
  /** Global step for keyed noise (ignored without `noiseSeed`). */
  step = 0;

  constructor(
    readonly opts: GumbelOptions,
    readonly rng: Rng,
    readonly noiseSeed?: number,
  ) {}

  loss(scores: tf.Tensor2D, inputs: StepInputs): ObjectiveOutput {
    const [b, n] = scores.shape;
    const raw = this.noiseSeed === undefined ? gumbelNoise(this.rng, this.opts.k, b, n) : keyedGumbelNoise(this.noiseSeed, this.step, inputs.batch.index, this.opts.k, n);
    const noise = tf.tensor3d(raw, [this.opts.k, b, n]);
    const mask = relaxedTopK(scores, noise, this.opts);
    const out = inputs.reader.forward(inputs.enc, inputs.decoderInputIds, inputs.labels, { logMask: logPassageMask(mask) });
    return { loss: out.loss, mask, weights: tf.softmax(tf.mul(scores, this.opts.kappa)) as tf.Tensor2D };
  }
}
