import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../util/rng.js';

/** Algorithm 1's knobs. Paper defaults: tau 0.5, kappa 1.0; k = the reader's top-k at inference. */
export interface GumbelOptions {
  k: number;
  tau: number;
  kappa: number;
}

export const GUMBEL_DEFAULTS: Omit<GumbelOptions, 'k'> = { tau: 0.5, kappa: 1.0 };

/** The smallest positive float32: u is drawn from U(tiny, 1), never 0. */
export const FLOAT32_TINY = 1.1754943508222875e-38;

/**
 * k independent Gumbel(0, 1) draws per (query, document): G = -log(-log u), u ~ U(tiny, 1),
 * as a [k, B, n] float32 array. Drawn on the host from a seeded generator, so a resumed run
 * repeats the noise of an uninterrupted one, on every backend.
 */
export function gumbelNoise(rng: Rng, k: number, b: number, n: number): Float32Array {
  const g = new Float32Array(k * b * n);
  for (let i = 0; i < g.length; i++) {
    const u = Math.max(rng.uniform(), FLOAT32_TINY);
    g[i] = -Math.log(-Math.log(u));
  }
  return g;
}

/**
 * The relaxed top-k mask (Algorithm 1): M^j = softmax((G^j + kappa * w) / tau) over the n
 * documents for each of the k draws, and the mask is their element-wise max. No straight-through
 * estimator, no renormalisation. scores w [B, n], noise [k, B, n] -> mask [B, n] in (0, 1].
 */
export function relaxedTopK(scores: tf.Tensor2D, noise: tf.Tensor3D, opts: Omit<GumbelOptions, 'k'>): tf.Tensor2D {
  return tf.tidy(() => {
    const logits = tf.div(tf.add(noise, tf.mul(scores, opts.kappa)), opts.tau); // [k, B, n]
    return tf.max(tf.softmax(logits), 0) as tf.Tensor2D;
  });
}

/** Inference: the indices of the k highest scores per row (no noise), best first. */
export function hardTopK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, Math.min(k, idx.length));
}

/**
 * Statistics of sampling weights [B, n] the paper watches (Figures 4, 6, 7): the largest weight
 * of each query, averaged over queries, and the mean entropy (nats) of the weights normalised
 * per query. Uniform weights give 1/n and log n; a reranker that separates documents pushes the
 * first up and the second down.
 */
export function weightStats(mask: Float32Array, b: number, n: number): { maxWeight: number; entropy: number } {
  let meanMax = 0;
  let entropy = 0;
  for (let i = 0; i < b; i++) {
    let sum = 0;
    let rowMax = 0;
    for (let j = 0; j < n; j++) {
      const v = mask[i * n + j]!;
      sum += v;
      if (v > rowMax) rowMax = v;
    }
    let h = 0;
    for (let j = 0; j < n; j++) {
      const p = mask[i * n + j]! / sum;
      if (p > 0) h -= p * Math.log(p);
    }
    entropy += h / b;
    meanMax += rowMax / b;
  }
  return { maxWeight: meanMax, entropy };
}
