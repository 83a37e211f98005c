import { Piscina } from 'piscina';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import type { RerankBatch } from './batch.js';
import { encodeBatch, type EncodeSpec, type PairEncoder } from './encode.js';
import type { Example } from './examples.js';

/**
 * The worker side of TokenizePool (src/data/pool.ts): each thread loads its tokenizer.json files
 * once, runs encodeBatch on the examples it is sent, and moves the batch's typed arrays back to
 * the caller (transferred, not copied).
 */

export interface TokenizeTask {
  /** tokenizer.json (or its folder) of the reader. */
  reader: string;
  /** tokenizer.json of the reranker's pairs. */
  pair: string;
  pairKind: PairEncoder['kind'];
  spec: EncodeSpec;
  /** Examples with `target` already chosen by the caller (so its seeded generator stays in one place). */
  examples: Example[];
  indices: number[];
}

const tokenizers = new Map<string, TextTokenizer>();

function tokenizer(path: string): TextTokenizer {
  let tok = tokenizers.get(path);
  if (!tok) {
    tok = loadTokenizer(path);
    tokenizers.set(path, tok);
  }
  return tok;
}

/** The typed arrays of a batch, as one movable value: piscina transfers their buffers. */
export function movableBatch(batch: RerankBatch): unknown {
  const buffers = new Set<ArrayBuffer>();
  for (const a of [batch.pairIds, batch.pairMask, batch.passageIds, batch.passageMask, batch.labels, batch.index]) buffers.add(a.buffer as ArrayBuffer);
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return [...buffers];
    },
    get [Piscina.valueSymbol]() {
      return batch;
    },
  } as never);
}

export default async function encodeTask(task: TokenizeTask): Promise<unknown> {
  const readerTok = tokenizer(task.reader);
  const pairTok = task.pair === task.reader ? readerTok : tokenizer(task.pair);
  const batch = await encodeBatch(task.examples, task.indices, readerTok, { kind: task.pairKind, tokenizer: pairTok }, task.spec);
  return movableBatch(batch);
}
