import type * as tf from '@tensorflow/tfjs-core';
import type { RerankBatch } from '../data/batch.js';
import type { FidEncoding, FidReader } from '../models/fid.js';

/** What an objective sees of one batch: the raw batch and the reader's mask-independent part. */
export interface StepInputs {
  batch: RerankBatch;
  reader: FidReader;
  /** The reader's encoder states and cross-attention keys/values, computed outside the tape. */
  enc: FidEncoding;
  decoderInputIds: tf.Tensor2D;
  labels: tf.Tensor2D;
}

export interface ObjectiveOutput {
  loss: tf.Scalar;
  /** The passage mask the reader saw [b, n] (gumbel). */
  mask?: tf.Tensor2D;
  /**
   * The normalised sampling weights [b, n] the scores imply (G-Rerank: softmax(kappa * w), the
   * distribution the Gumbel draws sample from; baselines: the student distribution). Their
   * per-query maximum is the paper's "max sampling weight" (Figure 4).
   */
  weights?: tf.Tensor2D;
}

/**
 * A training objective for the reranker's scores: G-Rerank, or a baseline. `loss` runs inside
 * the gradient tape with scores [b, n] that carry gradient; everything an objective can compute
 * without gradient it should compute outside (in `prepare`).
 */
export interface Objective {
  readonly name: string;
  /**
   * What `loss` is a mean over: the batch's target tokens (the reader's LM loss, as transformers
   * averages it) or its queries. Gradient accumulation weights micro-batches by it, so that
   * accumulated micro-batches give the gradient of the whole batch's loss.
   */
  readonly meanOver: 'tokens' | 'queries';
  prepare?(inputs: StepInputs): void;
  loss(scores: tf.Tensor2D, inputs: StepInputs): ObjectiveOutput;
  /** Releases what prepare kept. */
  release?(): void;
}
