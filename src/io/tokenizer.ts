import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from 'tokenizers';
import { GrerankError } from '../errors.js';
import { readJsonFile } from './checkpoint.js';

/**
 * Tokenizers come from the npm `tokenizers` package (Hugging Face's Rust implementation, the
 * same code transformers' fast tokenizers run), loaded from a tokenizer.json. Nothing here
 * re-implements tokenization: this module only adapts the API (plain number arrays, one-line
 * errors) and packs id lists into padded tensors.
 */

export interface EncodeOptions {
  /** Add the post-processor's special tokens (T5: `</s>` at the end; XLM-R: `<s> .. </s>`). Default true. */
  addSpecialTokens?: boolean;
}

export interface DetailedEncoding {
  ids: number[];
  tokens: string[];
  attentionMask: number[];
  specialTokensMask: number[];
}

export interface TextTokenizer {
  /** The tokenizer.json it was loaded from (for messages). */
  readonly file: string;
  /** Vocabulary size including added tokens (T5: 32100 = 32000 pieces + 100 sentinels). */
  readonly vocabSize: number;
  /** Id of `<pad>`, or null if the vocabulary has none. */
  readonly padId: number | null;
  /** Id of `</s>`, or null. */
  readonly eosId: number | null;
  /** Id of `<s>` (XLM-R's CLS / BOS), or null (T5 has none). */
  readonly bosId: number | null;
  encode(text: string, opts?: EncodeOptions): Promise<number[]>;
  /** A (query, document) pair for a cross-encoder, laid out by the post-processor. */
  encodePair(a: string, b: string, opts?: EncodeOptions): Promise<number[]>;
  encodeBatch(texts: string[], opts?: EncodeOptions): Promise<number[][]>;
  /** ids with tokens and masks, for tests and debugging. */
  encodeDetailed(text: string, opts?: EncodeOptions): Promise<DetailedEncoding>;
  decode(ids: readonly number[], skipSpecial?: boolean): Promise<string>;
  tokenToId(token: string): number | null;
}

/**
 * Loads `path` (a tokenizer.json, or a directory holding one). Missing or invalid files give a
 * one-line GrerankError naming the file.
 */
export function loadTokenizer(path: string): TextTokenizer {
  if (!existsSync(path)) throw new GrerankError(`${path}: no such tokenizer file or directory`);
  const file = statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(file)) {
    throw new GrerankError(`${file}: missing (only fast-tokenizer tokenizer.json files are read; save one with transformers' AutoTokenizer.from_pretrained(..).save_pretrained(..))`);
  }
  // readJsonFile gives UTF-8 and JSON errors with line:column before the library sees the text.
  return tokenizerFromJson(JSON.stringify(readJsonFile(file)), file);
}

/** Builds a tokenizer from tokenizer.json text; `file` names it in errors. */
export function tokenizerFromJson(json: string, file = '<tokenizer.json>'): TextTokenizer {
  let tok: HfTokenizer;
  try {
    tok = HfTokenizer.fromString(json);
  } catch (e) {
    const msg = String((e as Error).message ?? e).split('\n')[0];
    throw new GrerankError(`${file}: not a valid Hugging Face tokenizer.json (${msg})`);
  }
  const opts = (o?: EncodeOptions) => ({ addSpecialTokens: o?.addSpecialTokens ?? true });
  return {
    file,
    vocabSize: tok.getVocabSize(true),
    padId: tok.tokenToId('<pad>'),
    eosId: tok.tokenToId('</s>'),
    bosId: tok.tokenToId('<s>'),
    async encode(text, o) {
      return (await tok.encode(text, null, opts(o))).getIds();
    },
    async encodePair(a, b, o) {
      return (await tok.encode(a, b, opts(o))).getIds();
    },
    async encodeBatch(texts, o) {
      return (await tok.encodeBatch(texts, opts(o))).map((e) => e.getIds());
    },
    async encodeDetailed(text, o) {
      const e = await tok.encode(text, null, opts(o));
      return { ids: e.getIds(), tokens: e.getTokens(), attentionMask: e.getAttentionMask(), specialTokensMask: e.getSpecialTokensMask() };
    },
    decode(ids, skipSpecial = true) {
      return tok.decode([...ids], skipSpecial);
    },
    tokenToId(token) {
      return tok.tokenToId(token);
    },
  };
}

export interface PaddedBatch {
  /** Row-major [rows, maxLength] token ids, padded with padId. */
  ids: Int32Array;
  /** 1 for real tokens, 0 for padding. */
  mask: Int32Array;
  shape: [number, number];
}

/**
 * Packs id lists into a [rows, maxLength] batch. Longer rows are cut to maxLength; when eosId is
 * given and a row ended with it, the cut row still ends with it (the T5/FiD convention: the
 * encoder always sees `</s>` last, as HF truncation of `text </s>` produces).
 */
export function padAndTruncate(rows: readonly (readonly number[])[], maxLength: number, padId: number, eosId?: number): PaddedBatch {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new GrerankError(`padAndTruncate: maxLength must be a positive integer, got ${maxLength}`);
  const ids = new Int32Array(rows.length * maxLength).fill(padId);
  const mask = new Int32Array(rows.length * maxLength);
  rows.forEach((row, r) => {
    const n = Math.min(row.length, maxLength);
    const base = r * maxLength;
    for (let j = 0; j < n; j++) ids[base + j] = row[j]!;
    mask.fill(1, base, base + n);
    if (eosId !== undefined && row.length > maxLength && row[row.length - 1] === eosId) ids[base + n - 1] = eosId;
  });
  return { ids, mask, shape: [rows.length, maxLength] };
}

/**
 * The piece list of a Unigram tokenizer.json being built: `specials` first (score 0, ids in
 * order), then each `add(piece, score)` once, in call order (a repeated piece keeps its first id).
 */
export function unigramPieces(specials: readonly string[]): { pieces: Array<[string, number]>; add: (piece: string, score: number) => void } {
  const pieces: Array<[string, number]> = specials.map((s) => [s, 0]);
  const seen = new Set<string>(specials);
  const add = (p: string, score: number): void => {
    if (!seen.has(p)) {
      seen.add(p);
      pieces.push([p, score]);
    }
  };
  return { pieces, add };
}

/**
 * tokenizer.json text for a small XLM-R-shaped tokenizer, for tests and demos where the real
 * 17 MB one is not available: a Unigram model over `words` (plus single letters and digits, so
 * any lowercase ASCII text tokenizes without <unk>), with XLM-R's special ids <s>=0, <pad>=1,
 * </s>=2, <unk>=3 and its post-processor: `<s> A </s>` for one text, `<s> A </s></s> B </s>` for
 * a pair. Ids stay below 4 + words + 37, so they fit small test vocabularies.
 */
export function xlmrTestTokenizerJson(words: readonly string[] = DEFAULT_WORDS): string {
  const specials = ['<s>', '<pad>', '</s>', '<unk>'];
  const { pieces, add } = unigramPieces(specials);
  // Whole words score higher than letter-by-letter spellings, so Unigram prefers them.
  for (const w of words) add(`▁${w.toLowerCase()}`, -5);
  add('▁', -8);
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') add(c, -10);
  add('?', -10);
  const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: true },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 3, vocab: pieces, byte_fallback: false },
  });
}

const DEFAULT_WORDS = [
  'what', 'is', 'the', 'capital', 'of', 'france', 'paris', 'and', 'most', 'populous', 'city',
  'who', 'wrote', 'on', 'origin', 'species', 'charles', 'darwin', 'a', 'in', 'to', 'was', 'by',
  'question', 'answer', 'document', 'query', 'relevant', 'true', 'false',
];
