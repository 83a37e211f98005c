import * as tf from '@tensorflow/tfjs-core';
import { encodeBatch, type PairEncoder } from '../data/encode.js';
import { readExamples, type Example, type Passage } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { disposeEncoding, FidReader } from '../models/fid.js';
import { greedyDecode } from '../models/generate.js';
import { loadReranker } from '../models/load.js';
import { RANKT5_TOKEN_ID } from '../models/rankt5.js';
import type { Reranker } from '../models/reranker.js';
import { XLMR_SPECIAL_IDS } from '../models/xlmr.js';
import { encodeReaderPassages } from '../train/reader.js';
import { Rng } from '../util/rng.js';
import { tidyHost } from '../util/tidy.js';
import { exactMatch, f1, meanDefined, mrr, ndcgAt, rankByScores, recallAt, subExactMatch } from './metrics.js';
import { formatMetricTable, type MethodMetrics } from './table.js';

/**
 * Evaluation (SPEC.md section 6): rank every question's candidates (a reranker's scores, the
 * weights Algorithm 2 learned, or a baseline order), take the hard top-k, and score the ranking
 * against the gold labels (Recall@k, NDCG@k, MRR), against the indirectly relevant passages
 * only (gold && !has_answer, the paper's Table 2), and optionally in the generator setting: the
 * reader answers from the top-k passages alone (greedy, at most 50 tokens) -> EM, SubEM, F1.
 */

/** Which queries are ranked: training queries (mining) or test queries (reranker). A label only. */
export const EVAL_SETTINGS = ['mining', 'reranker'] as const;
export type EvalSetting = (typeof EVAL_SETTINGS)[number];

/** Rankings that need no model: the candidates' retrieval order, or a seeded random order. */
export const BASELINES = ['retriever-order', 'random'] as const;
export type Baseline = (typeof BASELINES)[number];

export type RankerSource =
  | { kind: 'reranker'; dir: string; rankT5TokenId?: number }
  /** Algorithm 2's output of `grerank train --method weights`: [{id, weights, ...}]. */
  | { kind: 'weights'; file: string }
  | { kind: 'baseline'; name: Baseline };

export interface EvalOptions {
  data: string;
  ranker: RankerSource;
  /** The FiD reader directory (needed for, and only used by, `generate`). */
  reader?: string;
  /** Passages kept (the hard top-k). */
  k: number;
  setting: EvalSetting;
  /** Also run the generator setting. */
  generate: boolean;
  /** Questions per forward pass (scoring and generation). */
  batchSize: number;
  limit?: number;
  /** Candidates per question: the first n of ctxs (default: all of them; weights: as many as learned). */
  nPassages?: number;
  /** Reranker tokens per (query, passage) pair. */
  pairMaxLength: number;
  /** Reader tokens per passage. */
  passageMaxLength: number;
  /** Greedy decoding length limit (the paper: 50). */
  maxAnswerTokens: number;
  /** Seed of the random baseline. */
  seed: number;
  /** The method's name in the table (default: derived from the ranker). */
  name?: string;
}

export const EVAL_DEFAULTS = {
  k: 5,
  setting: 'reranker' as EvalSetting,
  generate: false,
  batchSize: 4,
  pairMaxLength: 512,
  passageMaxLength: 250,
  maxAnswerTokens: 50,
  seed: 0,
};

/** The metric names (table rows and JSON keys) for a given k. */
export function metricNames(k: number) {
  return {
    recall: `R@${k}`,
    ndcg: `NDCG@${k}`,
    mrr: 'MRR',
    indirectRecall: `indirect R@${k}`,
    indirectNdcg: `indirect NDCG@${k}`,
    indirectMrr: 'indirect MRR',
    em: 'EM',
    subem: 'SubEM',
    f1: 'F1',
  } as const;
}

/** Counts shown under the metrics. */
export const COUNT_NAMES = { questions: 'questions', gold: 'with gold', indirect: 'with indirect' } as const;

export interface QuestionResult {
  id: string;
  /** Candidates ranked. */
  candidates: number;
  /** Indices (into ctxs) of the gold and of the indirectly relevant passages. */
  gold: number[];
  indirect: number[];
  /** Candidate indices, best first. */
  ranking: number[];
  /** The ranker's scores per candidate (absent for baselines). */
  scores?: number[];
  /** The reader's answer from the top-k passages (generator setting). */
  prediction?: string;
  /** This question's metrics (null where undefined). */
  metrics: Record<string, number | null>;
}

export interface EvalResult {
  method: string;
  setting: EvalSetting;
  data: string;
  ranker: RankerSource;
  reader?: string;
  k: number;
  generate: boolean;
  /** Means over the questions where each metric is defined; null where none is. Fractions in [0, 1]. */
  metrics: Record<string, number | null>;
  counts: Record<string, number>;
  seconds: number;
  questions: QuestionResult[];
}

export interface EvalProgress {
  done: number;
  total: number;
  /** Running means of the headline metrics. */
  running: Record<string, number>;
}

const nullable = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** The method's default name: the reranker directory, the weights file, or the baseline. */
export function methodName(r: RankerSource): string {
  switch (r.kind) {
    case 'reranker':
      return r.dir.replace(/\/+$/, '').split('/').slice(-2).join('/');
    case 'weights':
      return `weights:${r.file.split('/').pop()}`;
    case 'baseline':
      return r.name;
  }
}

/**
 * Gold / indirect labels of one passage. Indirect: the `indirect` flag when present, else
 * gold && has_answer === false (a passage without has_answer is never counted as indirect).
 */
function labelsOf(p: Passage): { gold: boolean; indirect: boolean } {
  const gold = p.gold === true;
  const indirect = typeof p.indirect === 'boolean' ? p.indirect && gold : gold && p.has_answer === false;
  return { gold, indirect };
}

/** Fails with one line when no passage of the file carries a gold flag. */
export function checkLabels(examples: readonly Example[], file: string): void {
  if (!examples.some((ex) => ex.ctxs.some((c) => typeof c.gold === 'boolean'))) {
    throw new GrerankError(`${file}: no relevance labels (no passage has a "gold" flag); convert the raw data with \`grerank prepare\`, which adds gold, has_answer and indirect`);
  }
}

interface WeightsEntry {
  id: string;
  weights: number[];
}

function readWeights(file: string): Map<string, number[]> {
  const raw = readJsonFile(file);
  if (!Array.isArray(raw)) throw new GrerankError(`${file}: expected a JSON array of {id, weights} (the weights.json of \`grerank train --method weights\`)`);
  const out = new Map<string, number[]>();
  raw.forEach((e, i) => {
    const entry = e as Partial<WeightsEntry> | null;
    if (!entry || typeof entry !== 'object' || entry.id === undefined || !Array.isArray(entry.weights) || !entry.weights.every((w) => typeof w === 'number')) {
      throw new GrerankError(`${file}: record ${i} must be {"id": ..., "weights": [numbers]}`);
    }
    out.set(String(entry.id), entry.weights);
  });
  return out;
}

/** Retrieval order: by `retrieval_rank` when every candidate has one (prepare shuffles candidates), else file order. */
function retrieverOrder(ctxs: readonly Passage[]): number[] {
  const idx = ctxs.map((_, i) => i);
  if (!ctxs.every((c) => typeof c.retrieval_rank === 'number')) return idx;
  return idx.sort((a, b) => (ctxs[a]!.retrieval_rank as number) - (ctxs[b]!.retrieval_rank as number) || a - b);
}

/** Pair rows of several encodeBatch calls as one [rows, maxLen] batch. */
function concatRows(parts: ReadonlyArray<{ ids: Int32Array; mask: Int32Array; len: number }>, padId: number): { ids: Int32Array; mask: Int32Array; rows: number; len: number } {
  const len = Math.max(...parts.map((p) => p.len));
  const rows = parts.reduce((s, p) => s + p.ids.length / p.len, 0);
  const ids = new Int32Array(rows * len).fill(padId);
  const mask = new Int32Array(rows * len);
  let r = 0;
  for (const p of parts) {
    const count = p.ids.length / p.len;
    for (let i = 0; i < count; i++, r++) {
      ids.set(p.ids.subarray(i * p.len, (i + 1) * p.len), r * len);
      mask.set(p.mask.subarray(i * p.len, (i + 1) * p.len), r * len);
    }
  }
  return { ids, mask, rows, len };
}

/** Scores of every candidate of each question, in one forward pass of the reranker (no gradient). */
async function scoreBatch(reranker: Reranker, pairs: PairEncoder, items: ReadonlyArray<{ ex: Example; n: number }>, pairMaxLength: number): Promise<number[][]> {
  const parts = [];
  for (const { ex, n } of items) {
    // encodeBatch tokenises pairs exactly as training does; the reader rows it also makes are unused (length 1).
    const b = await encodeBatch([ex], [0], pairs.tokenizer, pairs, { nPassages: n, passageMaxLength: 1, pairMaxLength, answerMaxLength: 1 });
    parts.push({ ids: b.pairIds, mask: b.pairMask, len: b.pairLen });
  }
  const padId = pairs.tokenizer.padId ?? (pairs.kind === 'rankt5' ? 0 : XLMR_SPECIAL_IDS.pad);
  const all = concatRows(parts, padId);
  const flat = tidyHost(() => Array.from(reranker.score(tf.tensor2d(all.ids, [all.rows, all.len], 'int32'), tf.tensor2d(all.mask, [all.rows, all.len], 'int32')).dataSync()));
  const out: number[][] = [];
  let o = 0;
  for (const { n } of items) {
    out.push(flat.slice(o, o + n));
    o += n;
  }
  return out;
}

/** Greedy answers of the reader from each question's given passages (in the given order). */
async function answerBatch(reader: FidReader, tok: TextTokenizer, items: ReadonlyArray<{ question: string; passages: Passage[] }>, k: number, len: number, maxLength: number): Promise<string[]> {
  const { ids, mask } = await encodeReaderPassages(items, tok, k, len);
  const b = items.length;
  const idsT = tf.tensor3d(ids, [b, k, len], 'int32');
  const maskT = tf.tensor3d(mask, [b, k, len], 'int32');
  const enc = reader.encodePassages(idsT, maskT);
  tf.dispose([idsT, maskT]);
  try {
    const rows = greedyDecode(reader.t5, enc, { maxLength });
    return Promise.all(rows.map((r) => tok.decode(r, true)));
  } finally {
    disposeEncoding(enc);
  }
}

function checkOptions(o: EvalOptions, models?: EvalModels): void {
  if (!Number.isInteger(o.k) || o.k < 1) throw new GrerankError(`--k must be a positive integer, got ${o.k}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new GrerankError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  if (o.nPassages !== undefined && (!Number.isInteger(o.nPassages) || o.nPassages < 1)) throw new GrerankError(`--n-passages must be a positive integer, got ${o.nPassages}`);
  if (!(EVAL_SETTINGS as readonly string[]).includes(o.setting)) throw new GrerankError(`--setting must be one of ${EVAL_SETTINGS.join(', ')}, got "${o.setting}"`);
  if (o.ranker.kind === 'baseline' && !(BASELINES as readonly string[]).includes(o.ranker.name)) {
    throw new GrerankError(`--baseline must be one of ${BASELINES.join(', ')}, got "${o.ranker.name}"`);
  }
  if (o.generate && !o.reader && !models?.reader) throw new GrerankError('--generate needs --reader DIR (the FiD reader that answers from the top-k passages)');
}

/**
 * Models already in memory (e.g. the reranker being trained): used instead of loading
 * `opts.ranker.dir` / `opts.reader` from disk, and not disposed by the evaluation.
 */
export interface EvalModels {
  reranker?: { reranker: Reranker; tokenizer: TextTokenizer };
  reader?: { reader: FidReader; tokenizer: TextTokenizer };
}

/**
 * Evaluates in-memory models (see {@link EvalModels}); `opts.ranker` then only names the method
 * (kind "reranker" with any label as dir). No gradient, no training RNG, no tensors left behind.
 */
export function evaluateLoaded(opts: EvalOptions, models: EvalModels, onProgress?: (p: EvalProgress) => void): Promise<EvalResult> {
  return evaluate(opts, onProgress, models);
}

/**
 * Evaluates one ranking method on a labelled file. Nothing is trained and no noise is drawn:
 * the ranking is the sort of the scores (ties keep candidate order) and the reader sees the
 * hard top-k.
 */
export async function evaluate(opts: EvalOptions, onProgress?: (p: EvalProgress) => void, models?: EvalModels): Promise<EvalResult> {
  checkOptions(opts, models);
  const t0 = performance.now();
  const names = metricNames(opts.k);
  const { examples } = await readExamples(opts.data, { limit: opts.limit });
  if (examples.length === 0) throw new GrerankError(`${opts.data}: no examples`);
  checkLabels(examples, opts.data);

  // Candidates per question, and the fixed scores of Algorithm 2.
  let weights: Map<string, number[]> | undefined;
  if (opts.ranker.kind === 'weights') weights = readWeights(opts.ranker.file);
  const counts = examples.map((ex) => {
    let n = Math.min(ex.ctxs.length, opts.nPassages ?? Infinity);
    if (weights) {
      const w = weights.get(ex.id);
      const file = (opts.ranker as { file: string }).file;
      if (!w) throw new GrerankError(`${file}: no weights for question "${ex.id}" of ${opts.data} (Algorithm 2 ranks the questions it was trained on)`);
      if (opts.nPassages === undefined) n = w.length;
      if (w.length !== n || n > ex.ctxs.length) {
        throw new GrerankError(`${file}: question "${ex.id}" has ${w.length} weights but ${n > ex.ctxs.length ? `only ${ex.ctxs.length} candidates` : `--n-passages is ${n}`}`);
      }
    }
    return n;
  });

  let reranker: Reranker | undefined;
  let pairs: PairEncoder | undefined;
  let reader: FidReader | undefined;
  let readerTok: TextTokenizer | undefined;
  const rng = new Rng(opts.seed);
  const results: QuestionResult[] = [];
  try {
    if (opts.ranker.kind === 'reranker' && models?.reranker) {
      reranker = models.reranker.reranker;
      pairs = { kind: reranker.kind, tokenizer: models.reranker.tokenizer };
    } else if (opts.ranker.kind === 'reranker') {
      const loaded = await loadReranker(opts.ranker.dir, { trainable: false, rankT5TokenId: opts.ranker.rankT5TokenId ?? RANKT5_TOKEN_ID });
      reranker = loaded.reranker;
      pairs = { kind: reranker.kind, tokenizer: loaded.tokenizer };
    }
    if (opts.generate && models?.reader) {
      reader = models.reader.reader;
      readerTok = models.reader.tokenizer;
    } else if (opts.generate) {
      readerTok = loadTokenizer(opts.reader!);
      reader = await FidReader.load(opts.reader!);
    }
    for (let start = 0; start < examples.length; start += opts.batchSize) {
      const batch = examples.slice(start, start + opts.batchSize).map((ex, j) => ({ ex, n: counts[start + j]! }));
      let scores: (number[] | undefined)[];
      if (reranker) scores = await scoreBatch(reranker, pairs!, batch, opts.pairMaxLength);
      else if (weights) scores = batch.map(({ ex }) => weights!.get(ex.id)!);
      else scores = batch.map(() => undefined);
      const rows: QuestionResult[] = batch.map(({ ex, n }, j) => {
        const ctxs = ex.ctxs.slice(0, n);
        const s = scores[j];
        let ranking: number[];
        if (s) ranking = rankByScores(s);
        else if ((opts.ranker as { name: Baseline }).name === 'random') ranking = rng.shuffle(ctxs.map((_, i) => i));
        else ranking = retrieverOrder(ctxs);
        const gold: number[] = [];
        const indirect: number[] = [];
        ctxs.forEach((c, i) => {
          const l = labelsOf(c);
          if (l.gold) gold.push(i);
          if (l.indirect) indirect.push(i);
        });
        const metrics: Record<string, number | null> = {
          [names.recall]: nullable(recallAt(ranking, gold, opts.k)),
          [names.ndcg]: nullable(ndcgAt(ranking, gold, opts.k)),
          [names.mrr]: nullable(mrr(ranking, gold)),
          [names.indirectRecall]: nullable(recallAt(ranking, indirect, opts.k)),
          [names.indirectNdcg]: nullable(ndcgAt(ranking, indirect, opts.k)),
          [names.indirectMrr]: nullable(mrr(ranking, indirect)),
        };
        return { id: ex.id, candidates: n, gold, indirect, ranking, ...(s ? { scores: [...s] } : {}), metrics };
      });
      if (reader) {
        const items = batch.map(({ ex }, j) => ({ question: ex.question, passages: rows[j]!.ranking.slice(0, opts.k).map((i) => ex.ctxs[i]!) }));
        const preds = await answerBatch(reader, readerTok!, items, opts.k, opts.passageMaxLength, opts.maxAnswerTokens);
        rows.forEach((r, j) => {
          const answers = batch[j]!.ex.answers;
          r.prediction = preds[j]!;
          r.metrics[names.em] = exactMatch(preds[j]!, answers);
          r.metrics[names.subem] = subExactMatch(preds[j]!, answers);
          r.metrics[names.f1] = f1(preds[j]!, answers);
        });
      }
      results.push(...rows);
      if (onProgress) {
        const running: Record<string, number> = { [names.recall]: mean(results, names.recall) };
        if (reader) running[names.em] = mean(results, names.em);
        onProgress({ done: results.length, total: examples.length, running });
      }
    }
  } finally {
    if (reranker !== models?.reranker?.reranker) reranker?.dispose();
    if (reader !== models?.reader?.reader) reader?.dispose();
  }

  const keys = [names.recall, names.ndcg, names.mrr, names.indirectRecall, names.indirectNdcg, names.indirectMrr, ...(opts.generate ? [names.em, names.subem, names.f1] : [])];
  const metrics: Record<string, number | null> = {};
  for (const key of keys) metrics[key] = nullable(mean(results, key));
  return {
    method: opts.name ?? methodName(opts.ranker),
    setting: opts.setting,
    data: opts.data,
    ranker: opts.ranker,
    ...(opts.generate && opts.reader ? { reader: opts.reader } : {}),
    k: opts.k,
    generate: opts.generate,
    metrics,
    counts: {
      [COUNT_NAMES.questions]: results.length,
      [COUNT_NAMES.gold]: results.filter((r) => r.gold.length > 0).length,
      [COUNT_NAMES.indirect]: results.filter((r) => r.indirect.length > 0).length,
    },
    seconds: (performance.now() - t0) / 1000,
    questions: results,
  };
}

function mean(rows: readonly QuestionResult[], key: string): number {
  return meanDefined(rows.map((r) => r.metrics[key] ?? NaN)).mean;
}

/** The table `grerank eval` prints: metrics as rows, one column per result (percentages). */
export function formatResults(results: readonly EvalResult[], opts: { digits?: number } = {}): string {
  const methods: MethodMetrics[] = results.map((r) => ({ name: r.method, metrics: r.metrics, counts: r.counts }));
  const settings = [...new Set(results.map((r) => `${r.setting} setting, ${r.data}, top-${r.k}`))];
  return formatMetricTable(methods, { digits: opts.digits, title: settings.join('; ') });
}
