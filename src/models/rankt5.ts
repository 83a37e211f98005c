import * as tf from '@tensorflow/tfjs-core';
import { GrerankError } from '../errors.js';
import type { ParamStore } from './params.js';
import type { Reranker } from './reranker.js';
import { T5Model, type T5LoadOptions } from './t5.js';

/** The RankT5 encoder-decoder scores with the first-step logit of `<extra_id_10>`. */
export const RANKT5_TOKEN_ID = 32089;

/**
 * RankT5 (Soyoung97/RankT5-base): input "Query: {q} Document: {d}", the decoder started with
 * token 0, score = the raw first-step logit of one token, i.e. (h * d_model^-0.5) . E[token].
 * Only that one logit is computed, not the whole vocabulary.
 */
export class RankT5 implements Reranker {
  readonly kind = 'rankt5' as const;

  constructor(
    readonly t5: T5Model,
    readonly tokenId = RANKT5_TOKEN_ID,
  ) {
    if (tokenId < 0 || tokenId >= t5.config.vocabSize) {
      throw new GrerankError(`${t5.dir}: RankT5 token id ${tokenId} is outside the vocabulary [0, ${t5.config.vocabSize})`);
    }
  }

  static async load(dir: string, opts: T5LoadOptions & { tokenId?: number } = {}): Promise<RankT5> {
    return new RankT5(await T5Model.load(dir, { trainable: opts.trainable ?? true, legacyCrossBias: opts.legacyCrossBias }), opts.tokenId);
  }

  /** Scores [B] for token ids and 0/1 masks [B, L]. Differentiable w.r.t. trainable weights. */
  score(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor1D {
    const t5 = this.t5;
    const b = inputIds.shape[0];
    const enc = t5.encode(inputIds, attentionMask);
    const kv = t5.crossKV(enc);
    const start = tf.fill([b, 1], t5.config.decoderStartTokenId, 'int32') as tf.Tensor2D;
    const dec = t5.decode(start, kv, t5.crossBias(attentionMask, 1));
    const h = tf.reshape(t5.headInput(dec), [b, t5.config.dModel]) as tf.Tensor2D;
    const row = tf.gather(t5.headWeight(), tf.tensor1d([this.tokenId], 'int32')); // [1, d]
    return tf.reshape(tf.matMul(h, row, false, true), [b]);
  }

  get params(): ParamStore {
    return this.t5.params;
  }

  dispose(): void {
    this.t5.dispose();
  }
}
