import { GrerankError } from '../errors.js';
import { readConfig } from '../io/checkpoint.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { join } from 'node:path';
import { RankT5, RANKT5_TOKEN_ID } from './rankt5.js';
import type { Reranker } from './reranker.js';
import { loadCrossEncoder } from './xlmr.js';

export interface LoadedReranker {
  reranker: Reranker;
  /** The directory's tokenizer.json (or the fallback given). */
  tokenizer: TextTokenizer;
}

/**
 * Loads a reranker from a Hugging Face directory, choosing the architecture from config.json:
 * model_type "t5" -> RankT5, "xlm-roberta" -> the BGE-style cross-encoder. Trainable by default.
 */
export async function loadReranker(dir: string, opts: { trainable?: boolean; tokenizer?: string; rankT5TokenId?: number } = {}): Promise<LoadedReranker> {
  const config = readConfig(dir);
  const tokenizer = loadTokenizer(opts.tokenizer ?? dir);
  const trainable = opts.trainable ?? true;
  switch (config.model_type) {
    case 't5':
      return { reranker: await RankT5.load(dir, { trainable, tokenId: opts.rankT5TokenId ?? RANKT5_TOKEN_ID }), tokenizer };
    case 'xlm-roberta':
      return { reranker: await loadCrossEncoder(dir, { trainable }), tokenizer };
    default:
      throw new GrerankError(`${join(dir, 'config.json')}: model_type "${String(config.model_type)}" is not a supported reranker (t5 for RankT5, xlm-roberta for BGE)`);
  }
}
