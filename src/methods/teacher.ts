import * as tf from '@tensorflow/tfjs-core';
import { passageBias, type FidEncoding, type FidReader } from '../models/fid.js';
import { geluErf, geluTanh, linear, rmsNorm } from '../models/layers.js';
import { LEGACY_CROSS_BIAS, type CrossKV, type T5Model } from '../models/t5.js';
import type { Objective, ObjectiveOutput, StepInputs } from './objective.js';

/**
 * Reader-derived teacher signals for the LLM-supervised baselines (SPEC.md section 4, Atlas
 * semantics). Everything here runs in an objective's `prepare`, outside the gradient tape, on the
 * frozen reader, and reuses the batch's encoding (encoder states and cross-attention keys and
 * values): no passage is encoded twice.
 */

/** The additive bias that removes a key from attention: exp(-1e9 - max) is exactly 0 in float32. */
export const REMOVED = -1e9;

/** Atlas' defaults for the student and teacher temperatures (T_s = T_g = 0.01). */
export const DISTILL_DEFAULTS: DistillOptions = { temperatureScore: 0.01, temperatureGold: 0.01 };

export interface DistillOptions {
  /** T_s: student p_R = softmax(w / T_s). */
  temperatureScore: number;
  /** T_g: target = softmax(s / T_g). */
  temperatureGold: number;
}

/** 1 on the target's non-pad tokens (labels >= 0), 0 on padding: [B, T] float32. */
export function labelMask(labels: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.greaterEqual(labels, 0), 'float32') as tf.Tensor2D);
}

/**
 * log p(label_t) of every target token under logits [R, T, V] (divided by `temperature` before
 * the softmax), 0 on padding: [R, T]. Picks the label's logit and subtracts the log-partition,
 * without materialising a one-hot [R*T, V].
 */
export function labelLogProbs(logits: tf.Tensor3D, labels: tf.Tensor2D, temperature = 1): tf.Tensor2D {
  return tf.tidy(() => {
    const [r, t, v] = logits.shape;
    const valid = labelMask(labels);
    const safe = tf.mul(tf.cast(labels, 'int32'), tf.cast(valid, 'int32'));
    let flat = tf.reshape(logits, [r * t, v]) as tf.Tensor2D;
    if (temperature !== 1) flat = tf.div(flat, temperature);
    const lse = tf.logSumExp(flat, 1); // [R*T]
    const index = tf.add(tf.mul(tf.range(0, r * t, 1, 'int32'), tf.scalar(v, 'int32')), tf.reshape(safe, [r * t]));
    const picked = tf.gather(tf.reshape(flat, [r * t * v]), index); // [R*T]
    return tf.mul(tf.reshape(tf.sub(picked, lse), [r, t]), valid) as tf.Tensor2D;
  });
}

/** Mean over the non-pad target tokens of values [B, ..., T] with the mask [B, T]: [B, ...]. */
function meanOverTokens(values: tf.Tensor, valid: tf.Tensor2D): tf.Tensor {
  const [b, t] = valid.shape;
  const lead = values.shape.slice(1, -1).map(() => 1);
  const v = tf.reshape(valid, [b, ...lead, t]);
  return tf.div(tf.sum(tf.mul(values, v), -1), tf.maximum(tf.sum(v, -1), 1));
}

/** Repeats each row of x [B, ...] n times, consecutively: row b*n + k is x[b]. */
function repeatRows<T extends tf.Tensor>(x: T, n: number): T {
  const [b, ...rest] = x.shape;
  const tiled = tf.tile(tf.reshape(x, [b!, 1, ...rest]), [1, n, ...rest.map(() => 1)]);
  return tf.reshape(tiled, [b! * n, ...rest]) as T;
}

/**
 * Token log-probabilities of the target given q and one passage alone: [B, N, T] (0 on padding),
 * entry [b, k, t] = log p_LM(a_t | q, d_k, a_<t). Each passage is encoded independently in FiD,
 * so the reader run on d_k alone is the decoder attending to d_k's L keys only. Rather than
 * masking the other passages out of the N*L keys (which needs the keys and values tiled N
 * times, or N decoder runs), the keys and values are regrouped to one decoder row per
 * (question, passage): [B*N, H, L, dk], a single copy of the encoding. The decoder then runs
 * once over B*N rows with L keys each: N times fewer attention FLOPs than the masked form, and
 * d_k sits at key positions 0..L-1 exactly as in a one-passage run, so it is also exact for
 * readers with the transformers-3.0.2 cross-attention position bias.
 */
export function singlePassageLogProbs(reader: FidReader, enc: FidEncoding, decoderInputIds: tf.Tensor2D, labels: tf.Tensor2D, temperature = 1): tf.Tensor3D {
  return tf.tidy(() => {
    const { b, n, l } = enc;
    const t5 = reader.t5;
    const t = decoderInputIds.shape[1];
    const kv: CrossKV[] = enc.kv.map(({ k, v }) => ({ k: byPassage(k, n, l), v: byPassage(v, n, l) }));
    const mask = tf.reshape(enc.mask, [b * n, l]) as tf.Tensor2D;
    const ids = repeatRows(decoderInputIds, n);
    const lab = repeatRows(labels, n);
    const hidden = t5.decode(ids, kv, t5.crossBias(mask, t));
    const logp = labelLogProbs(t5.lmLogits(hidden), lab, temperature);
    return tf.reshape(logp, [b, n, t]) as tf.Tensor3D;
  });
}

/** Keys or values [B, H, N*L, dk] -> one row per (question, passage): [B*N, H, L, dk]. */
function byPassage(x: tf.Tensor4D, n: number, l: number): tf.Tensor4D {
  const [b, h, , dk] = x.shape;
  const split = tf.reshape(x, [b, h, n, l, dk]);
  return tf.reshape(tf.transpose(split, [0, 2, 1, 3, 4]), [b * n, h, l, dk]) as tf.Tensor4D;
}

/**
 * PDist's teacher: s_k = mean over the target tokens of log p_LM(a_t | q, d_k, a_<t), the
 * answer's mean log-likelihood given q and d_k alone (Atlas "ppmean"): [B, N].
 */
export function pdistScores(reader: FidReader, enc: FidEncoding, decoderInputIds: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => meanOverTokens(singlePassageLogProbs(reader, enc, decoderInputIds, labels), labelMask(labels)) as tf.Tensor2D);
}

/**
 * LOOP's teacher: s_k = the answer's mean NLL given every passage except d_k: [B, N]. The
 * encoding is reused; passage k is masked out of the cross-attention (-1e9 on its keys, in every
 * layer and head) and the decoder runs once per k over the B questions. A loop over k rather than
 * one decoder run over B*N tiled rows: each run needs all N*L keys, and tiling them N times would
 * hold N copies of every layer's keys and values (20 x the reader's cross-attention memory at
 * n = 20); the loop costs the same FLOPs with one copy. The LM head, which needs no keys, runs
 * once over the N runs' decoder states.
 *
 * With the transformers-3.0.2 cross-attention position bias the key positions matter: removing d_k
 * shifts the later passages' keys down by L. The bias of the kept keys is corrected to those
 * shifted positions, so s_k is exactly the reader run on the n-1 other passages in both cases.
 */
export function leaveOneOutNll(reader: FidReader, enc: FidEncoding, decoderInputIds: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor2D {
  const { b, n, l } = enc;
  const t5 = reader.t5;
  const t = decoderInputIds.shape[1];
  const s = n * l;
  // Legacy bias of the kept keys after d_k's removal, minus the bias at their original positions:
  // keys behind d_k move from p to p - L, i.e. the query offset grows by L.
  const shift = t5.legacyCrossBias
    ? tf.tidy(() => tf.sub(t5.positionBias(LEGACY_CROSS_BIAS, t, s, false, l), t5.positionBias(LEGACY_CROSS_BIAS, t, s, false, 0)))
    : undefined;
  const perK: tf.Tensor3D[] = [];
  try {
    for (let k = 0; k < n; k++) {
      perK.push(
        tf.tidy(() => {
          const drop = new Float32Array(b * n);
          for (let i = 0; i < b; i++) drop[i * n + k] = REMOVED;
          let extra: tf.Tensor = passageBias(tf.tensor2d(drop, [b, n]), l);
          if (shift) {
            const behind = new Float32Array(s);
            behind.fill(1, (k + 1) * l);
            extra = tf.add(extra, tf.mul(shift, tf.tensor4d(behind, [1, 1, 1, s])));
          }
          return t5.decode(decoderInputIds, enc.kv, t5.crossBias(enc.mask, t, extra)); // [B, T, d]
        }),
      );
    }
    // One LM head over all N*B*T rows: the head is most of a run's FLOPs, and one large matmul
    // is several times faster per row than N small ones.
    return tf.tidy(() => {
      const d = t5.config.dModel;
      const hidden = tf.reshape(tf.stack(perK, 1), [b * n, t, d]) as tf.Tensor3D; // row b*N + k
      const lab = repeatRows(labels, n);
      const nll = tf.neg(meanOverTokens(labelLogProbs(t5.lmLogits(hidden), lab), labelMask(lab)));
      return tf.reshape(nll, [b, n]) as tf.Tensor2D;
    });
  } finally {
    tf.dispose(perK);
    shift?.dispose();
  }
}

/**
 * ADist's teacher (Atlas' attention distillation, "evalnormsavg"): the reader runs once with all
 * passages, teacher-forced; s_k = sum over decoder layers, heads, non-pad target tokens and d_k's
 * non-pad keys of (cross-attention probability x ||value||_2 of that key in that head), divided by
 * layers x heads x target tokens x d_k's tokens: [B, N], non-negative.
 */
export function attentionScores(reader: FidReader, enc: FidEncoding, decoderInputIds: tf.Tensor2D, labels: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const { b, n, l } = enc;
    const t5 = reader.t5;
    const { numHeads: h, numDecoderLayers: layers } = t5.config;
    const t = decoderInputIds.shape[1];
    const valid = labelMask(labels);
    const validT = tf.reshape(valid, [b, 1, t, 1]);
    const norms = enc.kv.map(({ v }) => tf.sqrt(tf.sum(tf.square(v), -1))); // [B, H, S]
    let acc: tf.Tensor = tf.zeros([b, n * l]);
    decodeCrossAttention(t5, decoderInputIds, enc.kv, t5.crossBias(enc.mask, t), (i, probs) => {
      const perKey = tf.sum(tf.mul(tf.sum(tf.mul(probs, validT), 2), norms[i]!), 1); // [B, S]
      acc = tf.add(acc, perKey);
    });
    const keyMask = tf.reshape(tf.cast(enc.mask, 'float32'), [b, n, l]);
    const summed = tf.sum(tf.mul(tf.reshape(acc, [b, n, l]), keyMask), -1); // [B, N]
    const tokens = tf.maximum(tf.sum(keyMask, -1), 1); // [B, N]
    const answer = tf.reshape(tf.maximum(tf.sum(valid, -1), 1), [b, 1]);
    return tf.div(summed, tf.mul(tf.mul(tokens, answer), layers * h)) as tf.Tensor2D;
  });
}

/**
 * The reader's teacher-forced decoder (T5Model.decode, operation for operation) up to the last
 * cross-attention, handing every layer's cross-attention probabilities [B, H, T, S] to `visit`.
 * T5Model's capture records only the first and last layer; ADist needs them all. Checked against
 * T5Model.decode in test/baselines.test.ts.
 */
export function decodeCrossAttention(t5: T5Model, decoderInputIds: tf.Tensor2D, kv: CrossKV[], crossBias: tf.Tensor, visit: (layer: number, probs: tf.Tensor4D) => void): tf.Tensor3D {
  const c = t5.config;
  const w = <R extends tf.Rank>(name: string) => t5.params.get<R>(name);
  const heads = (x: tf.Tensor): tf.Tensor4D => {
    const [bb, tt] = x.shape;
    return tf.transpose(tf.reshape(x, [bb!, tt!, c.numHeads, c.dKv]), [0, 2, 1, 3]) as tf.Tensor4D;
  };
  const attend = (prefix: string, x: tf.Tensor, pair: CrossKV | null, bias: tf.Tensor) => {
    const q = heads(linear(x, w(`${prefix}.q.weight`)));
    const k = pair ? pair.k : heads(linear(x, w(`${prefix}.k.weight`)));
    const v = pair ? pair.v : heads(linear(x, w(`${prefix}.v.weight`)));
    const probs = tf.softmax(tf.add(tf.matMul(q, k, false, true), bias)) as tf.Tensor4D;
    const ctx = tf.matMul(probs, v) as tf.Tensor4D;
    const [bb, hh, tt, dd] = ctx.shape;
    const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [bb, tt, hh * dd]);
    return { out: linear(merged, w(`${prefix}.o.weight`)), probs };
  };
  const norm = (name: string, x: tf.Tensor) => rmsNorm(x, w(name), c.eps);
  const act = (x: tf.Tensor) => (c.act === 'relu' ? tf.relu(x) : c.act === 'gelu_new' ? geluTanh(x) : geluErf(x));
  const ffn = (prefix: string, x: tf.Tensor) => {
    const hidden = c.gated
      ? tf.mul(act(linear(x, w(`${prefix}.DenseReluDense.wi_0.weight`))), linear(x, w(`${prefix}.DenseReluDense.wi_1.weight`)))
      : act(linear(x, w(`${prefix}.DenseReluDense.wi.weight`)));
    return linear(hidden, w(`${prefix}.DenseReluDense.wo.weight`));
  };
  const t = decoderInputIds.shape[1];
  const causal = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) causal[i * t + j] = -1e9;
  const selfBias = tf.add(t5.positionBias('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', t, t, false), tf.tensor4d(causal, [1, 1, t, t]));
  let h = t5.embed(decoderInputIds);
  for (let i = 0; i < c.numDecoderLayers; i++) {
    const blk = `decoder.block.${i}`;
    h = tf.add(h, attend(`${blk}.layer.0.SelfAttention`, norm(`${blk}.layer.0.layer_norm.weight`, h), null, selfBias).out);
    const ca = attend(`${blk}.layer.1.EncDecAttention`, norm(`${blk}.layer.1.layer_norm.weight`, h), kv[i]!, crossBias);
    visit(i, ca.probs);
    h = tf.add(h, ca.out);
    h = tf.add(h, ffn(`${blk}.layer.2`, norm(`${blk}.layer.2.layer_norm.weight`, h)));
  }
  return norm('decoder.final_layer_norm.weight', h) as tf.Tensor3D;
}

/** Gradient components below this magnitude are zeroed by `flushTinyGradients`. */
export const GRADIENT_FLOOR = 1e-20;

/**
 * Identity on the scores whose backward zeroes the components of dL/dw below 1e-20 in magnitude.
 * At T_s = 0.01 the student softmax(w / T_s) puts e^-100-sized mass on weak passages, so their
 * gradient (p_R - target) / T_s is a float32 subnormal, and a subnormal gradient row makes the
 * reranker's whole backward pass for that passage run on the CPU's slow subnormal path (3x per
 * step for EMDR on the tiny model, wasm). A gradient of 1e-20 cannot move a float32 parameter
 * (AdamW's eps is 1e-8), so zeroing it changes nothing else.
 */
const flushTiny = tf.customGrad((...args: unknown[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.where(tf.greaterEqual(tf.abs(dy), GRADIENT_FLOOR), dy, tf.zerosLike(dy)),
}));

export function flushTinyGradients(scores: tf.Tensor2D): tf.Tensor2D {
  return flushTiny(scores) as tf.Tensor2D;
}

/**
 * KL(target || p_R) per question, averaged over the batch, with p_R = softmax(w / T_s) and the
 * target given by its log-probabilities (logSoftmax(s / T_g), so no 0 * log 0). Gradient w.r.t.
 * w: (p_R - target) / (T_s * B).
 */
export function klToStudent(scores: tf.Tensor2D, logTarget: tf.Tensor2D, temperatureScore: number): { loss: tf.Scalar; student: tf.Tensor2D } {
  const logp = tf.logSoftmax(tf.div(flushTinyGradients(scores), temperatureScore)) as tf.Tensor2D;
  const kl = tf.sum(tf.mul(tf.exp(logTarget), tf.sub(logTarget, logp)), 1);
  return { loss: tf.mean(kl) as tf.Scalar, student: tf.exp(logp) as tf.Tensor2D };
}

/**
 * The distillation baselines (PDist, LOOP, ADist): a teacher score s [B, N] from the frozen reader
 * in `prepare`, target = softmax(s / T_g), loss = KL(target || softmax(w / T_s)).
 */
export abstract class DistillationObjective implements Objective {
  abstract readonly name: string;
  readonly meanOver = 'queries' as const;
  readonly opts: DistillOptions;
  /** The teacher scores s [B, N] of the prepared batch (until `release`). */
  teacherScores?: tf.Tensor2D;
  /** log target = logSoftmax(s / T_g) [B, N] of the prepared batch (until `release`). */
  logTarget?: tf.Tensor2D;

  constructor(opts: Partial<DistillOptions> = {}) {
    this.opts = { ...DISTILL_DEFAULTS, ...opts };
    if (!(this.opts.temperatureScore > 0) || !(this.opts.temperatureGold > 0)) throw new RangeError(`temperatures must be positive, got T_s = ${this.opts.temperatureScore}, T_g = ${this.opts.temperatureGold}`);
  }

  /** The teacher score of every (question, passage), computed without gradient. */
  protected abstract score(inputs: StepInputs): tf.Tensor2D;

  prepare(inputs: StepInputs): void {
    this.release();
    const s = this.score(inputs);
    this.teacherScores = s;
    this.logTarget = tf.tidy(() => tf.logSoftmax(tf.div(s, this.opts.temperatureGold)) as tf.Tensor2D);
  }

  loss(scores: tf.Tensor2D, inputs: StepInputs): ObjectiveOutput {
    if (!this.logTarget) this.prepare(inputs);
    const { loss, student } = klToStudent(scores, this.logTarget!, this.opts.temperatureScore);
    return { loss, weights: student };
  }

  release(): void {
    this.teacherScores?.dispose();
    this.logTarget?.dispose();
    this.teacherScores = undefined;
    this.logTarget = undefined;
  }
}
