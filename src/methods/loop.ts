import type * as tf from '@tensorflow/tfjs-core';
import type { StepInputs } from './objective.js';
import { DistillationObjective, leaveOneOutNll, type DistillOptions } from './teacher.js';

/**
 * LOOP (leave-one-out perplexity, Atlas "loop"; SPEC.md section 4): s_k = mean NLL of the answer
 * given every passage except d_k (d_k masked out of the cross-attention of the batch's encoding),
 * target = softmax(s / T_g): a passage whose removal hurts the answer most is the most important.
 * loss = KL(target || softmax(w / T_s)).
 */
export class LoopObjective extends DistillationObjective {
  readonly name = 'loop';

  constructor(opts: Partial<DistillOptions> = {}) {
    super(opts);
  }

  protected score(inputs: StepInputs): tf.Tensor2D {
    return leaveOneOutNll(inputs.reader, inputs.enc, inputs.decoderInputIds, inputs.labels);
  }
}
