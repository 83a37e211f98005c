import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { GrerankError } from '../errors.js';
import type { Rng } from '../util/rng.js';
import type { RerankBatch } from './batch.js';
import { chooseTarget, type EncodeSpec, type PairEncoder } from './encode.js';
import type { Example } from './examples.js';
import type { TokenizeTask } from './tokenize-worker.js';

/**
 * Tokenisation off the training thread: a piscina pool of worker threads, each holding its own
 * copy of the tokenizers, running exactly encodeBatch (src/data/encode.ts) and transferring the
 * batch's typed arrays back. A trainer prefetches by asking for batch t+1 before it runs step t:
 *
 *     let next = pool.encode(dataset.getMany(idx0), idx0, spec, kind, rng);
 *     for (...) { const batch = await next; next = pool.encode(...t+1...); await trainStep(batch); }
 *
 * The target answer of each example is chosen here, in the caller's thread, with the caller's
 * generator (chooseTarget, as encodeBatch does), so the draws and their order do not depend on
 * how many threads there are; only the fields tokenisation needs (and the first nPassages
 * passages) are sent to the worker.
 */

export interface TokenizePoolOptions {
  /** The reader's tokenizer.json (or the folder holding it). */
  reader: string;
  /** The reranker's tokenizer.json for (query, passage) pairs; default: the reader's. */
  pair?: string;
  /** Worker threads (default 1). */
  threads?: number;
}

/** The worker script beside this module: compiled .js, or the .ts source run through tsx (tests). */
function workerFile(): { filename: string; execArgv?: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return { filename: new URL('./tokenize-worker.ts', import.meta.url).href, execArgv: ['--import', 'tsx'] };
  const js = new URL('./tokenize-worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(js))) throw new GrerankError(`${fileURLToPath(js)}: missing (build with tsc -p .)`);
  return { filename: js.href };
}

export class TokenizePool {
  private readonly piscina: Piscina;
  private readonly reader: string;
  private readonly pair: string;
  private closed = false;

  constructor(opts: TokenizePoolOptions) {
    for (const p of [opts.reader, opts.pair]) if (p !== undefined && !existsSync(p)) throw new GrerankError(`${p}: no such tokenizer file or directory`);
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new GrerankError(`TokenizePool: threads must be a positive integer, got ${threads}`);
    this.reader = opts.reader;
    this.pair = opts.pair ?? opts.reader;
    const { filename, execArgv } = workerFile();
    this.piscina = new Piscina({ filename, execArgv, minThreads: threads, maxThreads: threads, idleTimeout: 60_000 });
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  /** Batches waiting for a thread. */
  get queued(): number {
    return this.piscina.queueSize;
  }

  /**
   * Tokenises `examples` into a RerankBatch, identical to
   * `encodeBatch(examples, indices, readerTok, { kind: pairKind, tokenizer: pairTok }, spec, rng)`
   * in this thread. Many calls may be in flight at once; each resolves to its own batch.
   */
  encode(examples: readonly Example[], indices: readonly number[], spec: EncodeSpec, pairKind: PairEncoder['kind'], rng?: Rng): Promise<RerankBatch> {
    if (this.closed) return Promise.reject(new GrerankError('TokenizePool: closed'));
    // Targets are drawn now, in order, exactly as encodeBatch draws them.
    const slim = examples.map((ex) => ({
      id: ex.id,
      question: ex.question,
      target: chooseTarget(ex, rng),
      answers: ex.answers,
      ctxs: ex.ctxs.slice(0, spec.nPassages).map((c) => ({ title: c.title, text: c.text })),
    }));
    const task: TokenizeTask = { reader: this.reader, pair: this.pair, pairKind, spec: { ...spec }, examples: slim, indices: [...indices] };
    return (this.piscina.run(task) as Promise<RerankBatch>).catch((e: unknown) => {
      throw new GrerankError(String((e as Error)?.message ?? e));
    });
  }

  /** Waits for the batches in flight, then stops the threads. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
