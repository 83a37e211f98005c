import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RerankBatch } from '../../src/data/batch.js';
import { Rng } from '../../src/util/rng.js';
import { copyModelDir, removeDir, tempDir } from './cli.js';
import { CHECKPOINTS } from './shared.js';
import { t5TestTokenizerJson } from './tokenizers.js';

export const TINY_T5 = join(CHECKPOINTS, 't5-fid-tiny');

/** The words of the tiny QA data below (add 'person' where the tokenizer should know it). */
export const TINY_WORDS: readonly string[] = 'question title context query document who directed film born city the was in by where of'.split(' ');

/**
 * A temporary copy of the tiny T5 checkpoint (safetensors only, no pytorch_model.bin) with a
 * word-level tokenizer.json over `words` (see t5TestTokenizerJson; the order of the words sets
 * the token ids). The caller removes it (removeDir).
 */
export function tinyT5Model(words: readonly string[]): string {
  const model = copyModelDir(TINY_T5, (f) => f !== 'pytorch_model.bin');
  writeFileSync(join(model, 'tokenizer.json'), t5TestTokenizerJson(words));
  return model;
}

/** The gold / has_answer flags of candidate `j` of question `i`. */
export type TinyLabels = (i: number, j: number) => { gold: boolean; has_answer: boolean };

/** Candidate i % 5 of question i is the one gold passage and the one with the answer. */
export const oneGold: TinyLabels = (i, j) => ({ gold: j === i % 5, has_answer: j === i % 5 });

export interface TinyQaOptions {
  /** Candidates per question (default 5). */
  passages?: number;
  /** The answers of question `i` (default [`person ${i}`]). */
  answers?: (i: number) => string[];
  /** Gold / has_answer flags on every candidate; none when omitted. */
  labels?: TinyLabels;
}

/**
 * `count` synthetic questions as JSON lines (each line ends in '\n'): question i is
 * `who directed film ${i}?` with `passages` candidates, candidate j titled `film ${i * passages + j}`
 * and saying it `was directed by person ${(i + j) % count}`.
 */
export function tinyQaLines(count: number, opts: TinyQaOptions = {}): string {
  const { passages = 5, answers = (i: number) => [`person ${i}`], labels } = opts;
  return questionLines(count, (i) => ({
    answers: answers(i),
    ctxs: Array.from({ length: passages }, (_, j) => ({
      title: `film ${i * passages + j}`,
      text: `film ${i * passages + j} was directed by person ${(i + j) % count}`,
      ...(labels ? labels(i, j) : {}),
    })),
  }));
}

/** JSON lines of `{ id: q${i}, question: who directed film ${i}?, ...rest(i) }`, each ending in '\n'. */
function questionLines(count: number, rest: (i: number) => { answers: unknown[]; ctxs: unknown[] }): string {
  return Array.from({ length: count }, (_, i) => JSON.stringify({ id: `q${i}`, question: `who directed film ${i}?`, ...rest(i) }) + '\n').join('');
}

/** Writes tinyQaLines(count, opts) to `file`. */
export function writeTinyQa(file: string, count: number, opts: TinyQaOptions = {}): void {
  writeFileSync(file, tinyQaLines(count, opts));
}

/** The one-word answers of oneWordQaLines (all words of TINY_WORDS). */
export const ONE_WORD_ANSWERS: readonly string[] = ['city', 'born', 'title', 'query', 'document'];

/**
 * `count` questions (default 16) whose answers are single words of ONE_WORD_ANSWERS, so every
 * example has the same number of target tokens (the distributed tests rely on it: the reader's
 * token-mean NLL over 2B examples is then the mean of the two B-example halves). Candidates
 * mention person (i * 3 + j) % 11 and an answer word; the tokenizer should know 'person'.
 */
export function oneWordQaLines(count = 16): string {
  const A = ONE_WORD_ANSWERS;
  return questionLines(count, (i) => ({
    answers: [A[i % A.length]],
    ctxs: Array.from({ length: 5 }, (_, j) => ({ title: `film ${(i + j) % 7}`, text: `film ${j} was directed by person ${(i * 3 + j) % 11} in ${A[(i + j) % 5]}` })),
  }));
}

/**
 * A batch of random token ids for the tiny T5 checkpoints (vocabulary 512): `b` queries with
 * `n` passages of `l` tokens, pairs of a 4-token query and the passage, a `t`-token target.
 */
export function randomBatch(seed: number, b = 2, n = 8, l = 8, t = 4): RerankBatch {
  const rng = new Rng(seed);
  const pl = l + 4;
  const passageIds = new Int32Array(b * n * l).map(() => 2 + rng.int(500));
  const pairIds = new Int32Array(b * n * pl);
  for (let i = 0; i < b * n; i++) {
    for (let j = 0; j < pl; j++) pairIds[i * pl + j] = j < 4 ? 2 + Math.floor(i / n) * 7 + j : passageIds[i * l + j - 4]!;
  }
  const labels = new Int32Array(b * t).map(() => 2 + rng.int(500));
  return {
    b,
    n,
    pairIds,
    pairMask: new Int32Array(b * n * pl).fill(1),
    pairLen: pl,
    passageIds,
    passageMask: new Int32Array(b * n * l).fill(1),
    passageLen: l,
    labels,
    targetLen: t,
    index: Int32Array.from({ length: b }, (_, i) => i),
  };
}

/** ‖a − b‖ / ‖b‖: how far trained parameters are from a reference run's. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-12);
}

/**
 * A tiny job for the launcher tests: a work directory, the tiny T5 as reader and reranker, 16
 * questions with one-word answers (every example has the same number of target tokens, so the
 * reader's token-mean NLL over 2B examples is the mean of the two B-example halves), and the
 * training arguments for an output directory, a step count and a per-worker batch.
 */
export function tinyTrainingJob(): { work: string; model: string; data: string; args: (out: string, steps: number, batch: number) => string[]; remove: () => void } {
  const work = tempDir();
  const model = tinyT5Model([...TINY_WORDS, 'person']);
  const data = join(work, 'train.jsonl');
  writeFileSync(data, oneWordQaLines(16));
  const args = (out: string, steps: number, batch: number) => ['--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', String(steps), '--batch-size', String(batch), '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '4', '--lr', '1e-3', '--seed', '3', '--backend', 'wasm', '--log-format', 'json'];
  return { work, model, data, args, remove: () => (removeDir(work), removeDir(model)) };
}
