/**
 * Evaluation metrics (SPEC.md section 6): pure functions, no tensors.
 *
 * Ranking metrics take `ranked`, candidate indices best first (all candidates, or only the
 * top of the list), and `gold`, the indices of the relevant candidates. Ranks are 1-based.
 * A query with no gold candidate has no defined recall, NDCG or MRR: those functions return
 * NaN for it, and `meanDefined` averages over the queries where the metric is defined (the
 * indirect-document table needs exactly that: most NQ queries have no indirect document).
 *
 * Answer metrics follow the SQuAD / HotpotQA evaluation scripts: `normalizeAnswer` lower-cases,
 * removes ASCII punctuation (Python's `string.punctuation`), removes the words a/an/the and
 * folds whitespace.
 */

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
}

function goldSet(gold: Iterable<number>): Set<number> {
  return gold instanceof Set ? (gold as Set<number>) : new Set(gold);
}

/** 1-based ranks (within `ranked`) of the gold candidates found in it; a repeated index is a bug. */
function goldRanks(ranked: readonly number[], gold: Set<number>): number[] {
  const seen = new Set<number>();
  const ranks: number[] = [];
  ranked.forEach((c, i) => {
    if (seen.has(c)) throw new RangeError(`candidate ${c} appears twice in the ranking`);
    seen.add(c);
    if (gold.has(c)) ranks.push(i + 1);
  });
  return ranks;
}

/** |gold ∩ top-k| / |gold|; NaN when there is no gold candidate. */
export function recallAt(ranked: readonly number[], gold: Iterable<number>, k: number): number {
  checkK(k);
  const g = goldSet(gold);
  if (g.size === 0) return NaN;
  return goldRanks(ranked, g).filter((r) => r <= k).length / g.size;
}

/**
 * NDCG@k with binary gains: DCG = Σ over gold at rank r ≤ k of 1 / log2(r + 1); the ideal DCG
 * puts min(k, |gold|) gold candidates at ranks 1.. . NaN when there is no gold candidate.
 */
export function ndcgAt(ranked: readonly number[], gold: Iterable<number>, k: number): number {
  checkK(k);
  const g = goldSet(gold);
  if (g.size === 0) return NaN;
  let dcg = 0;
  for (const r of goldRanks(ranked, g)) if (r <= k) dcg += 1 / Math.log2(r + 1);
  let ideal = 0;
  for (let r = 1; r <= Math.min(k, g.size); r++) ideal += 1 / Math.log2(r + 1);
  return dcg / ideal;
}

/** 1 / rank of the first gold candidate; 0 when none is ranked; NaN when there is no gold. */
export function mrr(ranked: readonly number[], gold: Iterable<number>): number {
  const g = goldSet(gold);
  if (g.size === 0) return NaN;
  const ranks = goldRanks(ranked, g);
  return ranks.length ? 1 / ranks[0]! : 0;
}

/**
 * Candidate indices sorted by score, best first; equal scores keep index order (a stable,
 * deterministic tie-break). NaN scores rank last.
 */
export function rankByScores(scores: ArrayLike<number>): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number) => (Number.isNaN(scores[i]!) ? -Infinity : scores[i]!);
  return idx.sort((a, b) => key(b) - key(a) || a - b);
}

/** Mean over the defined (non-NaN) values, with how many were defined; mean is NaN if none. */
export function meanDefined(values: Iterable<number>): { mean: number; n: number; undefinedCount: number } {
  let sum = 0;
  let n = 0;
  let undef = 0;
  for (const v of values) {
    if (Number.isNaN(v)) undef++;
    else {
      sum += v;
      n++;
    }
  }
  return { mean: n ? sum / n : NaN, n, undefinedCount: undef };
}

// ---------------------------------------------------------------------------------------------
// Answer metrics

/** Python's `string.punctuation`: the 32 ASCII punctuation characters (nothing beyond ASCII). */
const ASCII_PUNCT = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/**
 * `re.sub(r'\b(a|an|the)\b', ' ', text)` with Python's Unicode word boundaries: a word
 * character is a letter, a number or '_' (str.isalnum), so "éthe" keeps its "the".
 */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
/** The characters Python's `str.split()` splits on (str.isspace). */
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** SQuAD normalisation: lower-case, strip punctuation, drop articles, fold whitespace. */
export function normalizeAnswer(s: string): string {
  const noPunct = s.toLowerCase().replace(ASCII_PUNCT, '');
  return normTokens(noPunct.replace(ARTICLES, ' ')).join(' ');
}

function normTokens(s: string): string[] {
  return s.split(PY_SPACE).filter((t) => t.length > 0);
}

function maxOver(answers: readonly string[], f: (a: string) => number): number {
  let best = 0;
  for (const a of answers) best = Math.max(best, f(a));
  return best;
}

/** 1 when the normalised prediction equals some normalised answer, else 0. */
export function exactMatch(prediction: string, answers: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return maxOver(answers, (a) => (normalizeAnswer(a) === p ? 1 : 0));
}

/**
 * 1 when some normalised answer is a substring of the normalised prediction, else 0. An
 * answer that normalises to the empty string (e.g. "the") counts only for an empty
 * prediction; as a plain substring it would match every prediction.
 */
export function subExactMatch(prediction: string, answers: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return maxOver(answers, (a) => {
    const n = normalizeAnswer(a);
    return (n === '' ? p === '' : p.includes(n)) ? 1 : 0;
  });
}

const SPECIAL = new Set(['yes', 'no', 'noanswer']);

/** Token F1 of one prediction against one answer, HotpotQA's rule (yes/no/noanswer mismatches score 0). */
export function f1Single(prediction: string, answer: string): number {
  const p = normalizeAnswer(prediction);
  const g = normalizeAnswer(answer);
  if ((SPECIAL.has(p) || SPECIAL.has(g)) && p !== g) return 0;
  const pt = normTokens(p);
  const gt = normTokens(g);
  const counts = new Map<string, number>();
  for (const t of gt) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pt) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / pt.length;
  const recall = same / gt.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Token F1, max over the answers. */
export function f1(prediction: string, answers: readonly string[]): number {
  return maxOver(answers, (a) => f1Single(prediction, a));
}
