import * as tf from '@tensorflow/tfjs-core';
import { gumbelNoise, relaxedTopK, type GumbelOptions } from '../gumbel/mask.js';
import { logPassageMask } from '../models/fid.js';
import type { Rng } from '../util/rng.js';
import type { Objective, ObjectiveOutput, StepInputs } from './objective.js';

/**
 * G-Rerank: the scores become a relaxed top-k mask (Algorithm 1) that enters every decoder
 * cross-attention of the frozen reader (differentiable masked attention); the loss is the
 * reader's answer NLL. One noise draw per step from `rng`.
 */
export class GumbelObjective implements Objective {
  readonly name = 'gumbel';

  constructor(
    readonly opts: GumbelOptions,
    readonly rng: Rng,
  ) {}

  loss(scores: tf.Tensor2D, inputs: StepInputs): ObjectiveOutput {
    const [b, n] = scores.shape;
    const noise = tf.tensor3d(gumbelNoise(this.rng, this.opts.k, b, n), [this.opts.k, b, n]);
    const mask = relaxedTopK(scores, noise, this.opts);
    const out = inputs.reader.forward(inputs.enc, inputs.decoderInputIds, inputs.labels, { logMask: logPassageMask(mask) });
    return { loss: out.loss, mask, weights: tf.softmax(tf.mul(scores, this.opts.kappa)) as tf.Tensor2D };
  }
}
