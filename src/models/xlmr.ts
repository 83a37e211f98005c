import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { GrerankError } from '../errors.js';
import { loadStateDict, readConfig } from '../io/checkpoint.js';
import type { StateDict } from '../io/types.js';
import { geluErf, layerNorm, maskToBias } from './layers.js';
import { ParamStore, type Layout } from './params.js';
import type { Reranker } from './reranker.js';

/**
 * The BGE reranker (BAAI/bge-reranker-base): transformers' XLMRobertaForSequenceClassification
 * with one label. score = the raw logit of the classifier head (dense + tanh + out_proj) on the
 * `<s>` token. Parameter names are the checkpoint's; nn.Linear weights are kept as [in, out]
 * ('transposed' layout), so every projection is one 2-D x @ W.
 */
export interface XlmrConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
}

/** The one architecture this module implements. */
export const XLMR_ARCHITECTURE = 'XLMRobertaForSequenceClassification';

/**
 * Parses an XLM-R cross-encoder config.json. Missing fields take XLMRobertaConfig's defaults
 * (as transformers would); anything this implementation would compute differently from
 * transformers is rejected with a one-line error naming `file` and the field.
 */
export function parseXlmrConfig(raw: Record<string, unknown>, file = 'config.json'): XlmrConfig {
  const int = (key: string, dflt: number, min = 1): number => {
    const v = raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new GrerankError(`${file}: field "${key}" must be an integer >= ${min}, got ${JSON.stringify(raw[key])}`);
    }
    return v;
  };
  const arch = raw.architectures;
  if (arch !== undefined && !(Array.isArray(arch) && arch.includes(XLMR_ARCHITECTURE))) {
    throw new GrerankError(`${file}: field "architectures" is ${JSON.stringify(arch)}, expected ["${XLMR_ARCHITECTURE}"]`);
  }
  if (arch === undefined) throw new GrerankError(`${file}: field "architectures" is missing, expected ["${XLMR_ARCHITECTURE}"]`);
  // transformers derives num_labels from id2label (default 2 when neither is given).
  const id2label = raw.id2label;
  let numLabels: unknown;
  let labelsField: string;
  if (id2label !== undefined && id2label !== null) {
    if (typeof id2label !== 'object') throw new GrerankError(`${file}: field "id2label" must be an object, got ${JSON.stringify(id2label)}`);
    numLabels = Object.keys(id2label).length;
    labelsField = `"id2label" has ${String(numLabels)} labels`;
  } else {
    numLabels = raw.num_labels ?? 2;
    labelsField = raw.num_labels === undefined ? 'no "id2label" or "num_labels" (transformers defaults to 2 labels)' : `"num_labels" is ${JSON.stringify(raw.num_labels)}`;
  }
  if (numLabels !== 1) throw new GrerankError(`${file}: ${labelsField}, expected one label (a reranker's single score)`);
  const act = raw.hidden_act ?? 'gelu';
  if (act !== 'gelu') {
    throw new GrerankError(`${file}: field "hidden_act" is ${JSON.stringify(act)}, only "gelu" (exact erf GELU) is supported`);
  }
  const posType = raw.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute') {
    throw new GrerankError(`${file}: field "position_embedding_type" is ${JSON.stringify(posType)}, only "absolute" is supported`);
  }
  const eps = raw.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) throw new GrerankError(`${file}: field "layer_norm_eps" must be a positive number, got ${JSON.stringify(raw.layer_norm_eps)}`);
  const cfg: XlmrConfig = {
    vocabSize: int('vocab_size', 30522),
    hiddenSize: int('hidden_size', 768),
    numLayers: int('num_hidden_layers', 12),
    numHeads: int('num_attention_heads', 12),
    intermediateSize: int('intermediate_size', 3072),
    maxPositionEmbeddings: int('max_position_embeddings', 512),
    typeVocabSize: int('type_vocab_size', 2),
    layerNormEps: eps,
    padTokenId: int('pad_token_id', 1, 0),
    bosTokenId: int('bos_token_id', 0, 0),
    eosTokenId: int('eos_token_id', 2, 0),
  };
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new GrerankError(`${file}: field "hidden_size" (${cfg.hiddenSize}) is not a multiple of "num_attention_heads" (${cfg.numHeads})`);
  }
  if (cfg.maxPositionEmbeddings <= cfg.padTokenId + 1) {
    throw new GrerankError(`${file}: field "max_position_embeddings" (${cfg.maxPositionEmbeddings}) leaves no positions after pad_token_id + 1`);
  }
  return cfg;
}

/** The longest input (special tokens included) whose position ids stay inside the table. */
export function maxInputLength(c: XlmrConfig): number {
  return c.maxPositionEmbeddings - c.padTokenId - 1;
}

type Spec = { name: string; shape: number[]; layout: Layout };

/** Every parameter of the cross-encoder: HF name, shape in the checkpoint, layout here. */
export function xlmrParamSpecs(c: XlmrConfig): Spec[] {
  const h = c.hiddenSize;
  const specs: Spec[] = [];
  const lin = (prefix: string, out: number, inp: number) => {
    specs.push({ name: `${prefix}.weight`, shape: [out, inp], layout: 'transposed' });
    specs.push({ name: `${prefix}.bias`, shape: [out], layout: 'same' });
  };
  const norm = (prefix: string) => {
    specs.push({ name: `${prefix}.weight`, shape: [h], layout: 'same' });
    specs.push({ name: `${prefix}.bias`, shape: [h], layout: 'same' });
  };
  const e = 'roberta.embeddings';
  specs.push({ name: `${e}.word_embeddings.weight`, shape: [c.vocabSize, h], layout: 'same' });
  specs.push({ name: `${e}.position_embeddings.weight`, shape: [c.maxPositionEmbeddings, h], layout: 'same' });
  specs.push({ name: `${e}.token_type_embeddings.weight`, shape: [c.typeVocabSize, h], layout: 'same' });
  norm(`${e}.LayerNorm`);
  for (let i = 0; i < c.numLayers; i++) {
    const l = `roberta.encoder.layer.${i}`;
    for (const p of ['query', 'key', 'value']) lin(`${l}.attention.self.${p}`, h, h);
    lin(`${l}.attention.output.dense`, h, h);
    norm(`${l}.attention.output.LayerNorm`);
    lin(`${l}.intermediate.dense`, c.intermediateSize, h);
    lin(`${l}.output.dense`, h, c.intermediateSize);
    norm(`${l}.output.LayerNorm`);
  }
  lin('classifier.dense', h, h);
  lin('classifier.out_proj', 1, h);
  return specs;
}

/** Token ids of the pair template `<s> q </s></s> d </s>`. */
export interface SpecialIds {
  bos: number;
  eos: number;
  pad: number;
}

export const XLMR_SPECIAL_IDS: SpecialIds = { bos: 0, eos: 2, pad: 1 };

/** A batch of encoded pairs: row-major int32 [batch, length]. */
export interface EncodedPairs {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  length: number;
  /** How many pairs lost tokens to truncation. */
  truncated: number;
}

/**
 * How many tokens of a query of length `q` and a document of length `d` are kept when at most
 * `budget` content tokens fit. The rule is transformers' `longest_first`: remove one token at a
 * time from the end of whichever is longer, the document on ties. So the document is truncated
 * first, and the query only once the document has been cut down to the query's length; both then
 * shrink alternately, ending with ceil(budget/2) query and floor(budget/2) document tokens.
 */
export function truncatePair(q: number, d: number, budget: number): [number, number] {
  const excess = q + d - budget;
  if (excess <= 0) return [q, d];
  if (d - q >= excess) return [q, d - excess];
  if (q - d > excess) return [q - excess, d];
  // Both are cut to (nearly) equal lengths.
  const qKeep = Math.ceil(budget / 2);
  return [qKeep, budget - qKeep];
}

/**
 * Encodes (query, document) token-id pairs as XLM-R pair inputs `<s> q </s></s> d </s>` (what
 * the XLM-R tokenizer does for text pairs), truncated with `truncatePair` so that every row has at
 * most `maxLength` tokens, and padded with `pad` to the longest row of the batch.
 */
export function encodePairs(
  queryIds: ReadonlyArray<ArrayLike<number>>,
  docIds: ReadonlyArray<ArrayLike<number>>,
  maxLength = 512,
  special: SpecialIds = XLMR_SPECIAL_IDS,
): EncodedPairs {
  if (queryIds.length !== docIds.length) throw new RangeError(`encodePairs: ${queryIds.length} queries but ${docIds.length} documents`);
  if (!Number.isInteger(maxLength) || maxLength < 4) throw new RangeError(`encodePairs: maxLength must be an integer >= 4, got ${maxLength}`);
  const budget = maxLength - 4;
  const batch = queryIds.length;
  const keep: Array<[number, number]> = [];
  let length = 0;
  let truncated = 0;
  for (let i = 0; i < batch; i++) {
    const k = truncatePair(queryIds[i]!.length, docIds[i]!.length, budget);
    if (k[0] !== queryIds[i]!.length || k[1] !== docIds[i]!.length) truncated++;
    keep.push(k);
    length = Math.max(length, k[0] + k[1] + 4);
  }
  const inputIds = new Int32Array(batch * length).fill(special.pad);
  const attentionMask = new Int32Array(batch * length);
  for (let i = 0; i < batch; i++) {
    const [qn, dn] = keep[i]!;
    const q = queryIds[i]!;
    const d = docIds[i]!;
    let o = i * length;
    const start = o;
    inputIds[o++] = special.bos;
    for (let j = 0; j < qn; j++) inputIds[o++] = q[j]!;
    inputIds[o++] = special.eos;
    inputIds[o++] = special.eos;
    for (let j = 0; j < dn; j++) inputIds[o++] = d[j]!;
    inputIds[o++] = special.eos;
    attentionMask.fill(1, start, o);
  }
  return { inputIds, attentionMask, batch, length, truncated };
}

/**
 * transformers' create_position_ids_from_input_ids: non-padding tokens are numbered from
 * padId + 1 (counting only non-padding tokens), padding gets padId. int32 [B, L].
 */
export function positionIds(inputIds: tf.Tensor2D, padId: number): tf.Tensor2D {
  return tf.tidy(() => {
    const mask = tf.cast(tf.notEqual(inputIds, padId), 'int32');
    return tf.add(tf.mul(tf.cumsum(mask, 1), mask), tf.scalar(padId, 'int32')) as tf.Tensor2D;
  });
}

/** positionIds on host arrays: row-major int32 ids with rows of `length`. */
export function positionIdsHost(inputIds: Int32Array, length: number, padId: number): Int32Array {
  const out = new Int32Array(inputIds.length);
  for (let r = 0; r < inputIds.length; r += length) {
    let n = 0;
    for (let j = r; j < r + length; j++) out[j] = inputIds[j] === padId ? padId : padId + ++n;
  }
  return out;
}

/** What forwardOutputs returns (every tensor is new; the caller disposes them). */
export interface XlmrOutputs {
  /** The raw logit per row (the reranker score), [B]. */
  logits: tf.Tensor1D;
  /** Embeddings after their LayerNorm, [B, L, H]. */
  embeddings: tf.Tensor3D;
  /** The last encoder layer's output, [B, L, H]. */
  lastHiddenState: tf.Tensor3D;
  /** Layer 0's attention probabilities, [B, heads, L, L]. */
  attentionLayer0: tf.Tensor4D;
}

export interface XlmrLoadOptions {
  /** Hold tf.Variables (for training); default true. */
  trainable?: boolean;
}

/** An XLM-R cross-encoder (one-label sequence classifier) over a ParamStore. */
export class CrossEncoder implements Reranker {
  readonly kind = 'cross-encoder' as const;
  private readonly headDim: number;

  constructor(
    readonly config: XlmrConfig,
    readonly params: ParamStore,
  ) {
    this.headDim = config.hiddenSize / config.numHeads;
  }

  static async load(dir: string, opts: XlmrLoadOptions = {}): Promise<CrossEncoder> {
    const config = parseXlmrConfig(readConfig(dir), join(dir, 'config.json'));
    const sd: StateDict = await loadStateDict(dir);
    // Extra tensors (the roberta.embeddings.position_ids buffer, pooler weights) are ignored.
    const params = ParamStore.fromStateDict(sd, xlmrParamSpecs(config), { trainable: opts.trainable ?? true });
    return new CrossEncoder(config, params);
  }

  /** Scores [B] for int32 token ids and 0/1 masks [B, L]: the raw logits. */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => this.run(inputIds, attentionMask, false).logits);
  }

  /** The same as forward; the name the other rerankers use. */
  score(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor1D {
    return this.forward(inputIds, attentionMask);
  }

  /** forward with the intermediate outputs the reference goldens hold. */
  forwardOutputs(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D): XlmrOutputs {
    return tf.tidy(() => this.run(inputIds, attentionMask, true) as unknown as tf.TensorContainerObject) as unknown as XlmrOutputs;
  }

  /** Encodes token-id pairs (encodePairs) and scores them: [B]. */
  scorePairs(queryIds: ReadonlyArray<ArrayLike<number>>, docIds: ReadonlyArray<ArrayLike<number>>, maxLength = 512): tf.Tensor1D {
    const c = this.config;
    const enc = encodePairs(queryIds, docIds, Math.min(maxLength, maxInputLength(c)), { bos: c.bosTokenId, eos: c.eosTokenId, pad: c.padTokenId });
    return tf.tidy(() => {
      const ids = tf.tensor2d(enc.inputIds, [enc.batch, enc.length], 'int32');
      const mask = tf.tensor2d(enc.attentionMask, [enc.batch, enc.length], 'int32');
      return this.forward(ids, mask);
    });
  }

  variables(): tf.Variable[] {
    return this.params.variables();
  }

  dispose(): void {
    this.params.dispose();
  }

  private run(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, capture: boolean): Partial<XlmrOutputs> & { logits: tf.Tensor1D } {
    const c = this.config;
    const [b, l] = inputIds.shape;
    if (inputIds.dtype !== 'int32') throw new TypeError(`CrossEncoder: inputIds must be int32, got ${inputIds.dtype}`);
    if (attentionMask.shape[0] !== b || attentionMask.shape[1] !== l) {
      throw new RangeError(`CrossEncoder: attentionMask shape [${attentionMask.shape.join(', ')}] does not match inputIds [${b}, ${l}]`);
    }
    if (l > maxInputLength(c)) {
      throw new GrerankError(`input length ${l} exceeds the model's ${maxInputLength(c)} positions (max_position_embeddings ${c.maxPositionEmbeddings}, pad id ${c.padTokenId})`);
    }
    const p = (name: string) => this.params.get(name);
    const h = c.hiddenSize;
    const n = b * l;
    const out: Partial<XlmrOutputs> = {};

    // Embeddings: word + token type (all 0) + position, then LayerNorm. Hidden states stay 2-D
    // [B*L, H] through the encoder, so each projection is one plain matMul.
    let x = tf.tidy(() => {
      const ids = tf.reshape(inputIds, [n]) as tf.Tensor1D;
      const pos = tf.reshape(positionIds(inputIds, c.padTokenId), [n]) as tf.Tensor1D;
      const word = tf.gather(p('roberta.embeddings.word_embeddings.weight'), ids);
      const type0 = tf.slice(p('roberta.embeddings.token_type_embeddings.weight'), [0, 0], [1, h]);
      const e = tf.add(tf.add(word, type0), tf.gather(p('roberta.embeddings.position_embeddings.weight'), pos));
      return layerNorm(e, p('roberta.embeddings.LayerNorm.weight') as tf.Tensor1D, p('roberta.embeddings.LayerNorm.bias') as tf.Tensor1D, c.layerNormEps) as tf.Tensor2D;
    });
    if (capture) out.embeddings = tf.reshape(x, [b, l, h]) as tf.Tensor3D;

    const bias = maskToBias(attentionMask);
    for (let i = 0; i < c.numLayers; i++) {
      const [next, probs] = this.layer(i, x, bias, b, l, capture && i === 0);
      // Free each layer's input as soon as it is used (tensors the gradient tape needs are
      // saved copies), so inference holds one layer's activations at a time.
      x.dispose();
      x = next;
      if (probs) out.attentionLayer0 = probs;
    }
    if (capture) out.lastHiddenState = tf.reshape(x, [b, l, h]) as tf.Tensor3D;

    // Classification head on the <s> token: dense + tanh + out_proj.
    const cls = tf.reshape(tf.slice(tf.reshape(x, [b, l, h]), [0, 0, 0], [b, 1, h]), [b, h]) as tf.Tensor2D;
    const pooled = tf.tanh(this.dense(cls, 'classifier.dense'));
    const logits = tf.reshape(this.dense(pooled, 'classifier.out_proj'), [b]) as tf.Tensor1D;
    return { ...out, logits };
  }

  /** x [N, in] @ W [in, out] + b for the nn.Linear named `prefix`. */
  private dense(x: tf.Tensor2D, prefix: string): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.params.get<tf.Rank.R2>(`${prefix}.weight`)), this.params.get(`${prefix}.bias`));
  }

  /** One encoder layer (post-LN BERT block) on x [B*L, H]; optionally returns its attention probabilities. */
  private layer(i: number, x: tf.Tensor2D, bias: tf.Tensor4D, b: number, l: number, keepProbs: boolean): [tf.Tensor2D, tf.Tensor4D | undefined] {
    const c = this.config;
    const pre = `roberta.encoder.layer.${i}`;
    const p = (name: string) => this.params.get<tf.Rank.R1>(`${pre}.${name}`);
    const [y, probsOut] = tf.tidy(() => {
      const nh = c.numHeads;
      const dh = this.headDim;
      // [B*L, H] -> [B, heads, L, dh]
      const heads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [b, l, nh, dh]), [0, 2, 1, 3]) as tf.Tensor4D;
      // 1/sqrt(dh) applied to q (a power of two for the usual head sizes, so exact).
      const q = heads(tf.mul(this.dense(x, `${pre}.attention.self.query`), 1 / Math.sqrt(dh)));
      const k = heads(this.dense(x, `${pre}.attention.self.key`));
      const v = heads(this.dense(x, `${pre}.attention.self.value`));
      const probs = tf.softmax(tf.add(tf.matMul(q, k, false, true), bias)) as tf.Tensor4D;
      const ctx = tf.reshape(tf.transpose(tf.matMul(probs, v), [0, 2, 1, 3]), [b * l, c.hiddenSize]) as tf.Tensor2D;
      const attn = layerNorm(
        tf.add(this.dense(ctx, `${pre}.attention.output.dense`), x),
        p('attention.output.LayerNorm.weight'),
        p('attention.output.LayerNorm.bias'),
        c.layerNormEps,
      ) as tf.Tensor2D;
      const inter = geluErf(this.dense(attn, `${pre}.intermediate.dense`)) as tf.Tensor2D;
      const y = layerNorm(tf.add(this.dense(inter, `${pre}.output.dense`), attn), p('output.LayerNorm.weight'), p('output.LayerNorm.bias'), c.layerNormEps) as tf.Tensor2D;
      return keepProbs ? [y, probs] : [y];
    }) as [tf.Tensor2D, tf.Tensor4D?];
    return [y, probsOut];
  }
}

/** Loads an XLM-R cross-encoder (bge-reranker-base architecture) from a Hugging Face directory. */
export function loadCrossEncoder(dir: string, opts: XlmrLoadOptions = {}): Promise<CrossEncoder> {
  return CrossEncoder.load(dir, opts);
}
