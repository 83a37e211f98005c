import type * as tf from '@tensorflow/tfjs-core';
import type { StepInputs } from './objective.js';
import { DistillationObjective, pdistScores, type DistillOptions } from './teacher.js';

/**
 * PDist (perplexity distillation, Atlas "ppmean"; SPEC.md section 4): s_k = mean log-likelihood
 * of the answer given q and d_k alone, target = softmax(s / T_g), loss = KL(target || softmax(w / T_s)).
 * The one-passage reader runs reuse the batch's encoding (teacher.ts, singlePassageLogProbs).
 */
export class PDistObjective extends DistillationObjective {
  readonly name = 'pdist';

  constructor(opts: Partial<DistillOptions> = {}) {
    super(opts);
  }

  protected score(inputs: StepInputs): tf.Tensor2D {
    return pdistScores(inputs.reader, inputs.enc, inputs.decoderInputIds, inputs.labels);
  }
}
