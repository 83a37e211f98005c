import { unigramPieces } from '../io/tokenizer.js';

/**
 * A T5-shaped tokenizer.json for a small closed vocabulary (the synthetic benchmark's words), for
 * models the project trains from scratch: Unigram over whole lower-cased words with single
 * characters as fallback, <pad>=0, </s>=1, <unk>=2, "$A </s>" on encode (T5's post-processor),
 * and `extra` special tokens appended (e.g. RankT5's scoring token). It is loaded and run by the
 * Hugging Face tokenizers library like any real tokenizer.json.
 */
export function wordTokenizerJson(words: readonly string[], extra: readonly string[] = []): string {
  const specials = ['<pad>', '</s>', '<unk>'];
  const { pieces, add } = unigramPieces(specials);
  // Whole words score higher than their spelling in characters, so Unigram prefers them.
  add('▁', -8);
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') add(c, -10);
  for (const c of "?:.,;'-()\"!") add(c, -10);
  for (const w of words) if (w.trim()) add(`▁${w.trim().toLowerCase()}`, -5);
  for (const e of extra) add(e, 0);
  const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  const addedIds = [...specials, ...extra].map((content) => pieces.findIndex(([p]) => p === content));
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...specials, ...extra].map((content, i) => ({ id: addedIds[i], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Lowercase' },
    // Punctuation split off words, so "born?" is "born" + "?".
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Isolated' }, metaspace] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 2, vocab: pieces, byte_fallback: false },
  });
}
