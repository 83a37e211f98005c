/**
 * A T5-shaped tokenizer.json small enough for the tiny checkpoints (vocabulary 512): Unigram with
 * <pad>=0, </s>=1, <unk>=2, whole words from `words` and letter fallbacks, "$A </s>" on encode.
 * Loaded through the Hugging Face tokenizers library like any real tokenizer.json.
 */
export function t5TestTokenizerJson(words: readonly string[]): string {
  const specials = ['<pad>', '</s>', '<unk>'];
  const pieces: Array<[string, number]> = specials.map((s) => [s, 0]);
  const seen = new Set<string>(specials);
  const add = (p: string, score: number) => {
    if (!seen.has(p) && pieces.length < 500) {
      seen.add(p);
      pieces.push([p, score]);
    }
  };
  add('▁', -8);
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789?:.,') add(c, -10);
  for (const w of words) add(`▁${w.toLowerCase()}`, -5);
  const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
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
