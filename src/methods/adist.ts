import type * as tf from '@tensorflow/tfjs-core';
import type { StepInputs } from './objective.js';
import { attentionScores, DistillationObjective, type DistillOptions } from './teacher.js';

/**
 * ADist (attention distillation, Atlas "evalnormsavg"; SPEC.md section 4): s_k = the reader's
 * cross-attention probability x ||value||_2, summed over decoder layers, heads, target tokens and
 * d_k's tokens and divided by their counts (one teacher-forced reader run with all passages),
 * target = softmax(s / T_g), loss = KL(target || softmax(w / T_s)).
 */
export class ADistObjective extends DistillationObjective {
  readonly name = 'adist';

  constructor(opts: Partial<DistillOptions> = {}) {
    super(opts);
  }

  protected score(inputs: StepInputs): tf.Tensor2D {
    return attentionScores(inputs.reader, inputs.enc, inputs.decoderInputIds, inputs.labels);
  }
}
