import type * as tf from '@tensorflow/tfjs-core';
import type { ParamStore } from './params.js';

/**
 * What training needs of a reranker: scores for tokenised (query, document) pairs, with
 * gradient w.r.t. its trainable parameters. RankT5 and the XLM-R cross-encoder implement it.
 */
export interface Reranker {
  readonly kind: 'rankt5' | 'cross-encoder';
  readonly params: ParamStore;
  /** Scores [P] for pair token ids and 0/1 masks [P, L]. */
  score(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor1D;
  dispose(): void;
}
