import { GrerankError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { encodePairs, XLMR_SPECIAL_IDS } from '../models/xlmr.js';
import type { Rng } from '../util/rng.js';
import { labelRows, padRows, rankT5Text, readerText, type RerankBatch } from './batch.js';
import type { Example } from './examples.js';

/** Sizes of one batch's tensors. FiD's defaults: 20 passages of 250 tokens. */
export interface EncodeSpec {
  /** Candidate passages per question (the first n of ctxs). */
  nPassages: number;
  /** Reader tokens per passage (FiD's text_maxlength). */
  passageMaxLength: number;
  /** Reranker tokens per (query, passage) pair. */
  pairMaxLength: number;
  /** Target tokens, `</s>` included (FiD's answer_maxlength). */
  answerMaxLength: number;
}

export const DEFAULT_ENCODE_SPEC: EncodeSpec = { nPassages: 20, passageMaxLength: 250, pairMaxLength: 512, answerMaxLength: 32 };

/** How a reranker wants its (query, passage) pairs tokenised. */
export interface PairEncoder {
  readonly kind: 'rankt5' | 'cross-encoder';
  readonly tokenizer: TextTokenizer;
}

/** The answer trained on: `target` when present, else one of `answers` (seeded choice, as FiD samples). */
export function chooseTarget(ex: Example, rng?: Rng): string {
  if (ex.target !== undefined) return ex.target;
  return ex.answers[rng ? rng.int(ex.answers.length) : 0]!;
}

/**
 * Tokenises examples into one RerankBatch: the reader's "question: .. title: .. context: .."
 * rows, the reranker's pairs, and the target labels. Every example needs at least nPassages
 * candidates (the error names the example otherwise).
 */
export async function encodeBatch(
  examples: readonly Example[],
  indices: readonly number[],
  readerTok: TextTokenizer,
  pairs: PairEncoder,
  spec: EncodeSpec,
  rng?: Rng,
): Promise<RerankBatch> {
  const n = spec.nPassages;
  const padId = readerTok.padId ?? 0;
  const eosId = readerTok.eosId ?? 1;
  const readerTexts: string[] = [];
  const targets: string[] = [];
  for (const ex of examples) {
    if (ex.ctxs.length < n) throw new GrerankError(`example ${ex.id}: ${ex.ctxs.length} passages, but --n-passages is ${n}`);
    for (const c of ex.ctxs.slice(0, n)) readerTexts.push(readerText(ex.question, c.title, c.text));
    targets.push(chooseTarget(ex, rng));
  }
  const [readerIds, targetIds] = await Promise.all([readerTok.encodeBatch(readerTexts), readerTok.encodeBatch(targets)]);
  const passages = padRows(readerIds, spec.passageMaxLength, padId, eosId);
  const labels = labelRows(targetIds, spec.answerMaxLength, eosId);

  let pairIds: Int32Array;
  let pairMask: Int32Array;
  let pairLen: number;
  if (pairs.kind === 'rankt5') {
    const texts = examples.flatMap((ex) => ex.ctxs.slice(0, n).map((c) => rankT5Text(ex.question, c.title, c.text)));
    const ids = await pairs.tokenizer.encodeBatch(texts);
    pairLen = Math.min(spec.pairMaxLength, Math.max(...ids.map((r) => r.length)));
    ({ ids: pairIds, mask: pairMask } = padRows(ids, pairLen, pairs.tokenizer.padId ?? 0, pairs.tokenizer.eosId ?? 1));
  } else {
    const plain = { addSpecialTokens: false };
    const queries = await pairs.tokenizer.encodeBatch(examples.map((ex) => ex.question), plain);
    const docs = await pairs.tokenizer.encodeBatch(
      examples.flatMap((ex) => ex.ctxs.slice(0, n).map((c) => (c.title ? `${c.title} ${c.text}` : c.text))),
      plain,
    );
    const special = {
      bos: pairs.tokenizer.bosId ?? XLMR_SPECIAL_IDS.bos,
      eos: pairs.tokenizer.eosId ?? XLMR_SPECIAL_IDS.eos,
      pad: pairs.tokenizer.padId ?? XLMR_SPECIAL_IDS.pad,
    };
    const enc = encodePairs(
      docs.map((_, i) => queries[Math.floor(i / n)]!),
      docs,
      spec.pairMaxLength,
      special,
    );
    ({ inputIds: pairIds, attentionMask: pairMask, length: pairLen } = enc);
  }
  return {
    b: examples.length,
    n,
    pairIds,
    pairMask,
    pairLen,
    passageIds: passages.ids,
    passageMask: passages.mask,
    passageLen: spec.passageMaxLength,
    labels,
    targetLen: spec.answerMaxLength,
    index: Int32Array.from(indices),
  };
}
