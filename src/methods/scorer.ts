import * as tf from '@tensorflow/tfjs-core';
import type { RerankBatch } from '../data/batch.js';
import type { Reranker } from '../models/reranker.js';

/** Where the scores w [b, n] come from: a reranker, or Algorithm 2's free per-document weights. */
export interface Scorer {
  /** Trainable variables, in a fixed order (the order gradients and optimizer moments use). */
  variables(): tf.Variable[];
  /** Scores [b, n] for a batch; differentiable w.r.t. variables(). */
  scores(batch: RerankBatch): tf.Tensor2D;
}

export class RerankerScorer implements Scorer {
  constructor(readonly reranker: Reranker) {}

  variables(): tf.Variable[] {
    return this.reranker.params.variables();
  }

  scores(batch: RerankBatch): tf.Tensor2D {
    const rows = batch.b * batch.n;
    const ids = tf.tensor2d(batch.pairIds, [rows, batch.pairLen], 'int32');
    const mask = tf.tensor2d(batch.pairMask, [rows, batch.pairLen], 'int32');
    return tf.reshape(this.reranker.score(ids, mask), [batch.b, batch.n]);
  }
}

/**
 * Algorithm 2 (Appendix F): no reranker; one scalar weight per (query, document), initialised
 * to 0 and trained by the same masked-attention loss. Queries are keyed by dataset index.
 */
export class WeightTable implements Scorer {
  readonly table: tf.Variable;

  constructor(numQueries: number, n: number) {
    this.table = tf.variable(tf.zeros([numQueries, n]), true, undefined);
  }

  variables(): tf.Variable[] {
    return [this.table];
  }

  scores(batch: RerankBatch): tf.Tensor2D {
    return tf.gather(this.table, tf.tensor1d(batch.index, 'int32')) as tf.Tensor2D;
  }

  /** The learned weights of one query: the ranking Algorithm 2 produces. */
  weightsOf(index: number): Float32Array {
    return tf.tidy(() => tf.slice(this.table, [index, 0], [1, -1]).dataSync() as Float32Array);
  }
}
