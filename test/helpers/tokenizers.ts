import { wordTokenizerJson } from '../../src/data/vocab-tokenizer.js';

/**
 * A T5-shaped tokenizer.json small enough for the tiny checkpoints (vocabulary 512): the
 * project's word-level builder (<pad>=0, </s>=1, <unk>=2, whole words plus character fallbacks,
 * "$A </s>" on encode), loaded through the Hugging Face tokenizers library like any real one.
 */
export function t5TestTokenizerJson(words: readonly string[]): string {
  const json = wordTokenizerJson(words);
  const pieces = (JSON.parse(json) as { model: { vocab: unknown[] } }).model.vocab.length;
  if (pieces > 512) throw new Error(`test tokenizer has ${pieces} pieces, more than the tiny checkpoints' 512`);
  return json;
}
