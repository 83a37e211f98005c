import * as tf from '@tensorflow/tfjs-core';

/**
 * Small building blocks shared by the models. Shapes are in the names: x[..., in] @ w[in, out].
 * Functional tfjs ops only (no chained tensor methods, which need a side-effect import).
 * Projections flatten to 2-D first, because 2-D matMul is the fastest path on every backend.
 */
export function linear(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor {
  const inDim = w.shape[0];
  const outDim = w.shape[1];
  const lead = x.shape.slice(0, -1);
  const x2 = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
  let y: tf.Tensor = tf.matMul(x2, w);
  if (b) y = tf.add(y, b);
  return tf.reshape(y, [...lead, outDim]);
}

/** T5's RMS norm: no mean subtraction, no bias. */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor1D, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), w);
}

/** LayerNorm over the last axis with weight and bias (BERT/XLM-R). */
export function layerNorm(x: tf.Tensor, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), w), b);
}

/** GELU with the tanh approximation (transformers' gelu_new / NewGELU; T5 v1.1's gated-gelu). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  const c = Math.sqrt(2 / Math.PI);
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), c);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** Exact GELU, x * Phi(x) with erf (transformers' "gelu", BERT/XLM-R). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** Additive attention bias from a 0/1 mask [B, S]: 0 where 1, a large negative where 0 -> [B, 1, 1, S]. */
export function maskToBias(mask: tf.Tensor2D, negative = -1e9): tf.Tensor4D {
  const [b, s] = mask.shape;
  return tf.reshape(tf.mul(tf.sub(1, tf.cast(mask, 'float32')), negative), [b, 1, 1, s]);
}
