import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { GrerankError } from '../errors.js';
import { loadStateDict, readConfig } from '../io/checkpoint.js';
import type { StateDict } from '../io/types.js';
import { geluErf, geluTanh, linear, maskToBias, rmsNorm } from './layers.js';
import { ParamStore, type Layout } from './params.js';

/**
 * T5 encoder-decoder (transformers' modeling_t5), v1.0 (ReLU FFN, tied embeddings with the
 * d_model^-0.5 rescaling before the LM head) and v1.1 (gated-GELU, untied head). Parameter names
 * are the checkpoint's, so loading is a mapping, not a translation.
 */
export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numDecoderLayers: number;
  numHeads: number;
  numBuckets: number;
  maxDistance: number;
  eps: number;
  /** Feed-forward activation, and whether the FFN is gated (wi_0 * act, wi_1). */
  act: 'relu' | 'gelu_new' | 'gelu';
  gated: boolean;
  tieEmbeddings: boolean;
  decoderStartTokenId: number;
  padTokenId: number;
  eosTokenId: number;
}

const ACTS = ['relu', 'gelu_new', 'gelu'] as const;

export function parseT5Config(raw: Record<string, unknown>, file = 'config.json'): T5Config {
  const num = (key: string, dflt?: number): number => {
    const v = raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new GrerankError(`${file}: field "${key}" must be a number, got ${JSON.stringify(raw[key])}`);
    return v;
  };
  const modelType = raw.model_type;
  if (modelType !== undefined && modelType !== 't5') throw new GrerankError(`${file}: model_type is "${String(modelType)}", expected "t5"`);
  const proj = String(raw.feed_forward_proj ?? 'relu');
  const gated = proj.startsWith('gated-');
  let act = gated ? proj.slice('gated-'.length) : proj;
  // transformers maps "gated-gelu" to the tanh approximation (dense_act_fn "gelu_new").
  if (proj === 'gated-gelu') act = 'gelu_new';
  if (typeof raw.dense_act_fn === 'string') act = raw.dense_act_fn;
  if (!(ACTS as readonly string[]).includes(act)) throw new GrerankError(`${file}: unsupported feed-forward activation "${act}" (feed_forward_proj "${proj}")`);
  const numLayers = num('num_layers');
  return {
    vocabSize: num('vocab_size'),
    dModel: num('d_model'),
    dKv: num('d_kv'),
    dFf: num('d_ff'),
    numLayers,
    numDecoderLayers: num('num_decoder_layers', numLayers),
    numHeads: num('num_heads'),
    numBuckets: num('relative_attention_num_buckets', 32),
    maxDistance: num('relative_attention_max_distance', 128),
    eps: num('layer_norm_epsilon', 1e-6),
    act: act as T5Config['act'],
    gated,
    tieEmbeddings: raw.tie_word_embeddings === undefined ? true : Boolean(raw.tie_word_embeddings),
    decoderStartTokenId: num('decoder_start_token_id', 0),
    padTokenId: num('pad_token_id', 0),
    eosTokenId: num('eos_token_id', 1),
  };
}

/** The tensor a FiD checkpoint trained with transformers 3.0.2 carries (SPEC.md section 2). */
export const LEGACY_CROSS_BIAS = 'decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight';

export interface T5LoadOptions {
  trainable?: boolean;
  /**
   * The cross-attention relative bias of transformers 3.0.2. 'auto' (default): used iff the
   * checkpoint carries it, which reproduces the behaviour such a checkpoint was trained with.
   */
  legacyCrossBias?: boolean | 'auto';
  /** Load only what scoring needs (RankT5: encoder, one decoder step, no separate LM head). */
}

/** Every parameter of a T5 model: name, shape in the checkpoint, layout here. */
export function t5ParamSpecs(c: T5Config, legacyCrossBias: boolean): Array<{ name: string; shape: number[]; layout: Layout }> {
  const inner = c.numHeads * c.dKv;
  const specs: Array<{ name: string; shape: number[]; layout: Layout }> = [];
  const lin = (name: string, out: number, inp: number) => specs.push({ name, shape: [out, inp], layout: 'transposed' });
  const vec = (name: string, n: number) => specs.push({ name, shape: [n], layout: 'same' });
  specs.push({ name: 'shared.weight', shape: [c.vocabSize, c.dModel], layout: 'same' });
  const attention = (prefix: string) => {
    for (const p of ['q', 'k', 'v']) lin(`${prefix}.${p}.weight`, inner, c.dModel);
    lin(`${prefix}.o.weight`, c.dModel, inner);
  };
  const ffn = (prefix: string) => {
    if (c.gated) {
      lin(`${prefix}.DenseReluDense.wi_0.weight`, c.dFf, c.dModel);
      lin(`${prefix}.DenseReluDense.wi_1.weight`, c.dFf, c.dModel);
    } else {
      lin(`${prefix}.DenseReluDense.wi.weight`, c.dFf, c.dModel);
    }
    lin(`${prefix}.DenseReluDense.wo.weight`, c.dModel, c.dFf);
    vec(`${prefix}.layer_norm.weight`, c.dModel);
  };
  for (let i = 0; i < c.numLayers; i++) {
    const b = `encoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`);
    vec(`${b}.layer.0.layer_norm.weight`, c.dModel);
    ffn(`${b}.layer.1`);
  }
  specs.push({ name: 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', shape: [c.numBuckets, c.numHeads], layout: 'same' });
  vec('encoder.final_layer_norm.weight', c.dModel);
  for (let i = 0; i < c.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`);
    vec(`${b}.layer.0.layer_norm.weight`, c.dModel);
    attention(`${b}.layer.1.EncDecAttention`);
    vec(`${b}.layer.1.layer_norm.weight`, c.dModel);
    ffn(`${b}.layer.2`);
  }
  specs.push({ name: 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', shape: [c.numBuckets, c.numHeads], layout: 'same' });
  if (legacyCrossBias) specs.push({ name: LEGACY_CROSS_BIAS, shape: [c.numBuckets, c.numHeads], layout: 'same' });
  vec('decoder.final_layer_norm.weight', c.dModel);
  if (!c.tieEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.dModel], layout: 'same' });
  return specs;
}

/** Tied names that transformers resolves to shared.weight (a .bin carries them all, safetensors one). */
const T5_ALIASES: Record<string, string> = { 'shared.weight': 'encoder.embed_tokens.weight' };

/**
 * transformers' T5Attention._relative_position_bucket, in float32 arithmetic exactly as PyTorch
 * computes it (the log-spaced buckets truncate, so float64 would move some boundaries).
 */
export function relativePositionBucket(relativePosition: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  let buckets = 0;
  let n = numBuckets;
  let rp = relativePosition;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rp > 0) buckets += n;
    rp = Math.abs(rp);
  } else {
    rp = -Math.min(rp, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rp < maxExact) return buckets + rp;
  const f = Math.fround;
  const ratio = f(Math.log(f(f(rp) / maxExact)));
  const scaled = f(f(ratio / f(Math.log(maxDistance / maxExact))) * (n - maxExact));
  const large = Math.min(maxExact + Math.trunc(scaled), n - 1);
  return buckets + large;
}

/** Bucket indices [q, k] for query positions qStart..qStart+q-1 and key positions 0..k-1. */
function bucketGrid(q: number, k: number, bidirectional: boolean, c: T5Config, qStart = 0): Int32Array {
  const out = new Int32Array(q * k);
  const cache = new Map<number, number>();
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < k; j++) {
      const rel = j - (i + qStart);
      let b = cache.get(rel);
      if (b === undefined) {
        b = relativePositionBucket(rel, bidirectional, c.numBuckets, c.maxDistance);
        cache.set(rel, b);
      }
      out[i * k + j] = b;
    }
  }
  return out;
}

/** Per-layer cross-attention keys and values [B, H, S, dk], computed once per batch. */
export interface CrossKV {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/** Optional intermediate outputs, for checking against the reference implementation. */
export interface T5Capture {
  encoderPositionBias?: tf.Tensor;
  decoderPositionBias?: tf.Tensor;
  encoderSelfAttention0?: tf.Tensor;
  decoderSelfAttention0?: tf.Tensor;
  crossAttention0?: tf.Tensor;
  crossAttentionLast?: tf.Tensor;
}

export class T5Model {
  constructor(
    readonly config: T5Config,
    readonly params: ParamStore,
    /** Whether the decoder's cross-attention adds the transformers-3.0.2 relative bias. */
    readonly legacyCrossBias: boolean,
    readonly dir = '',
  ) {}

  static async load(dir: string, opts: T5LoadOptions = {}): Promise<T5Model> {
    const config = parseT5Config(readConfig(dir), join(dir, 'config.json'));
    const sd = await loadStateDict(dir);
    return T5Model.fromStateDict(config, sd, opts);
  }

  static fromStateDict(config: T5Config, sd: StateDict, opts: T5LoadOptions = {}): T5Model {
    const legacy = opts.legacyCrossBias === undefined || opts.legacyCrossBias === 'auto' ? sd.tensors.has(LEGACY_CROSS_BIAS) : opts.legacyCrossBias;
    const params = ParamStore.fromStateDict(sd, t5ParamSpecs(config, legacy), { trainable: opts.trainable ?? false, aliases: T5_ALIASES });
    return new T5Model(config, params, legacy, sd.dir);
  }

  private w<R extends tf.Rank>(name: string): tf.Tensor<R> {
    return this.params.get<R>(name);
  }

  /** Relative position bias [1, H, q, k] from a relative_attention_bias table. */
  positionBias(table: string, q: number, k: number, bidirectional: boolean, qStart = 0): tf.Tensor4D {
    const c = this.config;
    return tf.tidy(() => {
      const idx = tf.tensor1d(bucketGrid(q, k, bidirectional, c, qStart), 'int32');
      const vals = tf.gather(this.w<tf.Rank.R2>(table), idx); // [q*k, H]
      return tf.reshape(tf.transpose(vals), [1, c.numHeads, q, k]) as tf.Tensor4D;
    });
  }

  /** [B, T, H*dk] -> [B, H, T, dk] */
  private splitHeads(x: tf.Tensor): tf.Tensor4D {
    const [b, t] = x.shape;
    return tf.transpose(tf.reshape(x, [b!, t!, this.config.numHeads, this.config.dKv]), [0, 2, 1, 3]) as tf.Tensor4D;
  }

  /** [B, H, T, dk] -> [B, T, H*dk] */
  private mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, t, d] = x.shape;
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, t, h * d]);
  }

  /**
   * T5 attention: no 1/sqrt(d_kv) scaling; `bias` (position bias + masks) is added to the
   * scores before the softmax. Returns the output [B, T, d] and the probabilities.
   */
  private attend(prefix: string, x: tf.Tensor3D, kv: CrossKV | null, bias: tf.Tensor): { out: tf.Tensor3D; probs: tf.Tensor4D } {
    const q = this.splitHeads(linear(x, this.w(`${prefix}.q.weight`)));
    let k: tf.Tensor4D;
    let v: tf.Tensor4D;
    if (kv) {
      ({ k, v } = kv);
    } else {
      k = this.splitHeads(linear(x, this.w(`${prefix}.k.weight`)));
      v = this.splitHeads(linear(x, this.w(`${prefix}.v.weight`)));
    }
    const scores = tf.add(tf.matMul(q, k, false, true), bias);
    const probs = tf.softmax(scores) as tf.Tensor4D;
    const ctx = this.mergeHeads(tf.matMul(probs, v) as tf.Tensor4D);
    return { out: linear(ctx, this.w(`${prefix}.o.weight`)) as tf.Tensor3D, probs };
  }

  private ffn(prefix: string, x: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    const act = (h: tf.Tensor) => (c.act === 'relu' ? tf.relu(h) : c.act === 'gelu_new' ? geluTanh(h) : geluErf(h));
    let h: tf.Tensor;
    if (c.gated) {
      h = tf.mul(act(linear(x, this.w(`${prefix}.DenseReluDense.wi_0.weight`))), linear(x, this.w(`${prefix}.DenseReluDense.wi_1.weight`)));
    } else {
      h = act(linear(x, this.w(`${prefix}.DenseReluDense.wi.weight`)));
    }
    return linear(h, this.w(`${prefix}.DenseReluDense.wo.weight`)) as tf.Tensor3D;
  }

  private norm(name: string, x: tf.Tensor): tf.Tensor3D {
    return rmsNorm(x, this.w(name), this.config.eps) as tf.Tensor3D;
  }

  embed(ids: tf.Tensor): tf.Tensor {
    const flat = tf.reshape(ids, [-1]);
    const e = tf.gather(this.w<tf.Rank.R2>('shared.weight'), flat);
    return tf.reshape(e, [...ids.shape, this.config.dModel]);
  }

  /** Encoder: input ids and 0/1 mask [B, L] -> last hidden state [B, L, d] (after the final norm). */
  encode(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, capture?: T5Capture): tf.Tensor3D {
    const c = this.config;
    const [, len] = inputIds.shape;
    let h = this.embed(inputIds) as tf.Tensor3D;
    const pos = this.positionBias('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', len, len, true);
    const bias = tf.add(pos, maskToBias(attentionMask));
    if (capture) capture.encoderPositionBias = tf.keep(pos);
    for (let i = 0; i < c.numLayers; i++) {
      const b = `encoder.block.${i}`;
      const prev = h;
      // One scope per layer: outside the gradient tape a layer's intermediates (the [tokens,
      // d_ff] FFN activations above all) are freed before the next layer runs; inside it the
      // tape keeps its own references to what backward needs.
      h = tf.tidy(() => {
        const { out, probs } = this.attend(`${b}.layer.0.SelfAttention`, this.norm(`${b}.layer.0.layer_norm.weight`, prev), null, bias);
        if (capture && i === 0) capture.encoderSelfAttention0 = tf.keep(probs);
        const x = tf.add(prev, out);
        return tf.add(x, this.ffn(`${b}.layer.1`, this.norm(`${b}.layer.1.layer_norm.weight`, x)));
      });
      prev.dispose();
    }
    return this.norm('encoder.final_layer_norm.weight', h);
  }

  /** Keys and values of every decoder layer's cross-attention over encoder states [B, S, d]. */
  crossKV(encoderHidden: tf.Tensor3D): CrossKV[] {
    const out: CrossKV[] = [];
    for (let i = 0; i < this.config.numDecoderLayers; i++) {
      const p = `decoder.block.${i}.layer.1.EncDecAttention`;
      out.push({
        k: this.splitHeads(linear(encoderHidden, this.w(`${p}.k.weight`))),
        v: this.splitHeads(linear(encoderHidden, this.w(`${p}.v.weight`))),
      });
    }
    return out;
  }

  /**
   * The additive cross-attention bias [B, 1|H, 1|T, S]: padding of the encoder keys, the
   * legacy relative bias when the checkpoint carries it, and an optional extra bias (the
   * differentiable passage mask, already broadcast to [B, 1, 1, S]).
   */
  crossBias(encoderMask: tf.Tensor2D, targetLength: number, extra?: tf.Tensor, qStart = 0): tf.Tensor {
    let bias: tf.Tensor = maskToBias(encoderMask);
    if (this.legacyCrossBias) {
      // transformers 3.0.2: causal buckets of (key position - query position) over the
      // flattened keys, computed in block 0 and shared by every block.
      bias = tf.add(bias, this.positionBias(LEGACY_CROSS_BIAS, targetLength, encoderMask.shape[1], false, qStart));
    }
    if (extra) bias = tf.add(bias, extra);
    return bias;
  }

  /**
   * Decoder, teacher-forced: decoder input ids [B, T] attend causally to themselves and to the
   * cross keys/values with `crossBias`. Returns the last hidden state [B, T, d] after the final
   * norm (before any LM-head rescaling).
   */
  decode(decoderInputIds: tf.Tensor2D, kv: CrossKV[], crossBias: tf.Tensor, capture?: T5Capture): tf.Tensor3D {
    const c = this.config;
    const t = decoderInputIds.shape[1];
    let h = this.embed(decoderInputIds) as tf.Tensor3D;
    const pos = this.positionBias('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', t, t, false);
    if (capture) capture.decoderPositionBias = tf.keep(pos);
    const causal = tf.tensor4d(causalMask(t), [1, 1, t, t]);
    const selfBias = tf.add(pos, causal);
    for (let i = 0; i < c.numDecoderLayers; i++) {
      const b = `decoder.block.${i}`;
      const prev = h;
      h = tf.tidy(() => {
        const sa = this.attend(`${b}.layer.0.SelfAttention`, this.norm(`${b}.layer.0.layer_norm.weight`, prev), null, selfBias);
        if (capture && i === 0) capture.decoderSelfAttention0 = tf.keep(sa.probs);
        let x = tf.add(prev, sa.out);
        const ca = this.attend(`${b}.layer.1.EncDecAttention`, this.norm(`${b}.layer.1.layer_norm.weight`, x), kv[i]!, crossBias);
        if (capture && i === 0) capture.crossAttention0 = tf.keep(ca.probs);
        if (capture && i === c.numDecoderLayers - 1) capture.crossAttentionLast = tf.keep(ca.probs);
        x = tf.add(x, ca.out);
        return tf.add(x, this.ffn(`${b}.layer.2`, this.norm(`${b}.layer.2.layer_norm.weight`, x)));
      });
      prev.dispose();
    }
    return this.norm('decoder.final_layer_norm.weight', h);
  }

  /** The input of the LM head: v1.0 (tied) rescales by d_model^-0.5, v1.1 does not. */
  headInput(decoderHidden: tf.Tensor): tf.Tensor {
    return this.config.tieEmbeddings ? tf.mul(decoderHidden, this.config.dModel ** -0.5) : decoderHidden;
  }

  /** The LM head's weight [V, d]: the shared embedding when tied. */
  headWeight(): tf.Tensor2D {
    return this.w<tf.Rank.R2>(this.config.tieEmbeddings ? 'shared.weight' : 'lm_head.weight');
  }

  /** Logits [B, T, V] from the decoder's last hidden state. */
  lmLogits(decoderHidden: tf.Tensor3D): tf.Tensor3D {
    const [b, t, d] = decoderHidden.shape;
    const x = tf.reshape(this.headInput(decoderHidden), [b * t, d]) as tf.Tensor2D;
    return tf.reshape(tf.matMul(x, this.headWeight(), false, true), [b, t, this.config.vocabSize]);
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** 0 on and below the diagonal, a large negative above: [t * t]. */
function causalMask(t: number): Float32Array {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = -1e9;
  return m;
}

/**
 * Teacher-forced token cross-entropy: labels [B, T] with -100 on padding. Returns the per-token
 * NLL [B, T] (0 on padding) and the mean over non-padding tokens (transformers' loss).
 */
export function tokenNll(logits: tf.Tensor3D, labels: tf.Tensor2D): { perToken: tf.Tensor2D; loss: tf.Scalar } {
  return tf.tidy(() => {
    const [b, t, v] = logits.shape;
    const valid = tf.cast(tf.greaterEqual(labels, 0), 'float32');
    const safe = tf.mul(tf.cast(labels, 'int32'), tf.cast(valid, 'int32'));
    const logp = tf.logSoftmax(tf.reshape(logits, [b * t, v]));
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.reshape(safe, [-1]), v)), -1);
    const perToken = tf.mul(tf.neg(tf.reshape(picked, [b, t])), valid) as tf.Tensor2D;
    const loss = tf.div(tf.sum(perToken), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
    return { perToken, loss };
  });
}

/** labels [B, T] (-100 = pad) -> decoder input ids: shifted right, start token, pads as pad id. */
export function shiftRight(labels: Int32Array, b: number, t: number, startId: number, padId: number): Int32Array {
  const out = new Int32Array(b * t);
  for (let i = 0; i < b; i++) {
    out[i * t] = startId;
    for (let j = 1; j < t; j++) {
      const l = labels[i * t + j - 1]!;
      out[i * t + j] = l === -100 ? padId : l;
    }
  }
  return out;
}
