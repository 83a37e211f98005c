import { describe, expect, it } from 'vitest';
import { AnswerMatcher, dprTokens, dprWords, hasAnswer } from '../src/data/answers.js';
import { exactMatch, f1, f1Single, meanDefined, mrr, ndcgAt, normalizeAnswer, rankByScores, recallAt, subExactMatch } from '../src/eval/metrics.js';

const L2_3 = Math.log2(3); // 1.5849625007
const L2_5 = Math.log2(5); // 2.3219280949
const L2_6 = Math.log2(6); // 2.5849625007

describe('ranking metrics', () => {
  // Five candidates ranked 10, 11, 12, 13, 14; gold = {11, 13}, i.e. at ranks 2 and 4.
  const ranked = [10, 11, 12, 13, 14];
  const gold = [11, 13];

  it('Recall@k = |gold ∩ top-k| / |gold|', () => {
    expect(recallAt(ranked, gold, 5)).toBe(1); // both in the top 5
    expect(recallAt(ranked, gold, 3)).toBe(0.5); // only 11 (rank 2) in the top 3
    expect(recallAt(ranked, gold, 1)).toBe(0);
    expect(recallAt(ranked, new Set(gold), 4)).toBe(1);
    expect(recallAt(ranked, gold, 50)).toBe(1); // k beyond the list
  });

  it('NDCG@5 for gold at ranks 2 and 4 of 5', () => {
    // DCG  = 1/log2(2+1) + 1/log2(4+1) = 0.6309297536 + 0.4306765581 = 1.0616063117
    // IDCG = 1/log2(1+1) + 1/log2(2+1) = 1 + 0.6309297536              = 1.6309297536
    // NDCG = 1.0616063117 / 1.6309297536                                 = 0.6509209...
    const expected = (1 / L2_3 + 1 / L2_5) / (1 + 1 / L2_3);
    expect(ndcgAt(ranked, gold, 5)).toBeCloseTo(0.6509209, 6);
    expect(ndcgAt(ranked, gold, 5)).toBeCloseTo(expected, 12);
    // NDCG@3: only rank 2 counts; the ideal still has min(3, 2) = 2 items: 0.6309297536 / 1.6309297536 = 0.386852...
    expect(ndcgAt(ranked, gold, 3)).toBeCloseTo(0.3868528, 6);
    // NDCG@1: no gold at rank 1.
    expect(ndcgAt(ranked, gold, 1)).toBe(0);
  });

  it('NDCG ideal DCG runs over min(k, |gold|) items', () => {
    // Three gold (0, 4, 9), ranked at 1 and 5 and not at all; k = 5.
    // DCG = 1 + 1/log2(6) = 1.3868528; IDCG (3 items) = 1 + 0.6309298 + 0.5 = 2.1309298; NDCG = 0.6508205
    expect(ndcgAt([0, 1, 2, 3, 4], [0, 4, 9], 5)).toBeCloseTo((1 + 1 / L2_6) / (1 + 1 / L2_3 + 0.5), 12);
    expect(ndcgAt([0, 1, 2, 3, 4], [0, 4, 9], 5)).toBeCloseTo(0.6508205, 6);
    // k = 2 with three gold at ranks 1, 2: the ideal has 2 items, so a perfect top 2 scores 1.
    expect(ndcgAt([7, 8, 9, 1], [7, 8, 9], 2)).toBe(1);
    // Perfect ranking scores 1 at every k.
    for (const k of [1, 2, 3, 5]) expect(ndcgAt([3, 1, 0, 2], [3, 1], k)).toBeCloseTo(1, 12);
  });

  it('MRR = 1 / rank of the first gold', () => {
    expect(mrr(ranked, gold)).toBe(0.5);
    expect(mrr(ranked, [10])).toBe(1);
    expect(mrr(ranked, [14, 13])).toBe(0.25);
    expect(mrr([1, 2, 3], [7])).toBe(0); // gold never ranked
  });

  it('no gold: the metrics are undefined (NaN) and meanDefined skips them', () => {
    expect(recallAt(ranked, [], 5)).toBeNaN();
    expect(ndcgAt(ranked, [], 5)).toBeNaN();
    expect(mrr(ranked, [])).toBeNaN();
    expect(meanDefined([1, NaN, 0.5])).toEqual({ mean: 0.75, n: 2, undefinedCount: 1 });
    expect(meanDefined([NaN]).mean).toBeNaN();
  });

  it('a partial ranking (top of the list only) counts unranked gold as missed', () => {
    expect(recallAt([4, 2], [2, 9], 5)).toBe(0.5);
    expect(ndcgAt([4, 2], [2, 9], 5)).toBeCloseTo(1 / L2_3 / (1 + 1 / L2_3), 12);
  });

  it('rejects bad k and repeated candidates', () => {
    expect(() => recallAt(ranked, gold, 0)).toThrow(RangeError);
    expect(() => ndcgAt(ranked, gold, 1.5)).toThrow(RangeError);
    expect(() => mrr([1, 2, 1], [2])).toThrow(/twice/);
  });

  it('rankByScores: best first, ties by index, NaN last', () => {
    expect(rankByScores([0.1, 0.5, 0.5, -1, NaN])).toEqual([1, 2, 0, 3, 4]);
    expect(rankByScores(new Float32Array([3, 1, 2]))).toEqual([0, 2, 1]);
    expect(rankByScores([])).toEqual([]);
  });
});

describe('SQuAD answer normalisation', () => {
  it('lower-cases, strips punctuation and articles, folds whitespace', () => {
    // "The  Cat's   hat!" -> "the  cat's   hat!" -> "the  cats   hat" -> "   cats   hat" -> "cats hat"
    expect(normalizeAnswer("The  Cat's   hat!")).toBe('cats hat');
    expect(normalizeAnswer('An apple a day')).toBe('apple day');
    expect(normalizeAnswer('theatre another')).toBe('theatre another'); // articles only as whole words
    expect(normalizeAnswer('the')).toBe('');
    expect(normalizeAnswer('  \t\n ')).toBe('');
    expect(normalizeAnswer('U.S.A.')).toBe('usa');
    expect(normalizeAnswer('a_the')).toBe('athe'); // '_' is punctuation, removed before the articles
  });

  it('unicode: only ASCII punctuation goes, word boundaries are Unicode-aware', () => {
    // The em dash is not in string.punctuation, so it stays a token.
    expect(normalizeAnswer('Björk — the singer')).toBe('björk — singer');
    // "éthe": é is a word character for Python's \b, so "the" is not a separate word.
    expect(normalizeAnswer('Éthe')).toBe('éthe');
    expect(normalizeAnswer('Zürich')).toBe('zürich');
    // Python's str.split() also splits on no-break and ideographic spaces.
    expect(normalizeAnswer('New\u00a0York\u3000City')).toBe('new york city');
  });
});

describe('answer metrics', () => {
  it('exact match: max over answers', () => {
    expect(exactMatch('Paris.', ['London', 'paris'])).toBe(1);
    expect(exactMatch('the Paris', ['Paris'])).toBe(1);
    expect(exactMatch('Paris France', ['Paris'])).toBe(0);
    expect(exactMatch('', ['Paris'])).toBe(0);
    expect(exactMatch('', ['the'])).toBe(1); // both normalise to ""
    expect(exactMatch('anything', [])).toBe(0);
    // No Unicode normalisation in SQuAD's script: NFC and NFD spellings differ.
    expect(exactMatch('Zu\u0308rich', ['Zürich'])).toBe(0);
  });

  it('SubEM: a normalised answer inside the normalised prediction', () => {
    expect(subExactMatch('It is in Paris, France.', ['paris'])).toBe(1);
    expect(subExactMatch('It is in Paris, France.', ['Lyon', 'France'])).toBe(1);
    expect(subExactMatch('It is in Paris', ['Lyon'])).toBe(0);
    expect(subExactMatch('Parisian', ['Paris'])).toBe(1); // a substring, not a token match
    // An answer normalising to "" matches only an empty prediction.
    expect(subExactMatch('anything', ['the'])).toBe(0);
    expect(subExactMatch('', ['a'])).toBe(1);
    expect(subExactMatch('', ['Paris'])).toBe(0);
  });

  it('token F1 (hand-worked)', () => {
    // pred "the cat sat on the mat" -> [cat, sat, on, mat]; gold "a cat on a mat" -> [cat, on, mat]
    // common 3; P = 3/4, R = 3/3; F1 = 2 * 0.75 * 1 / 1.75 = 0.857142857
    expect(f1Single('the cat sat on the mat', 'a cat on a mat')).toBeCloseTo(6 / 7, 12);
    // Repeated tokens: pred {x:2, y:1}, gold {x:1, y:2}: common x1 + y1 = 2; P = R = 2/3; F1 = 2/3
    expect(f1Single('x x y', 'x y y')).toBeCloseTo(2 / 3, 12);
    expect(f1('new york city', ['York', 'New York City'])).toBe(1);
    // max over answers: "york" -> P 1/3, R 1 -> 0.5
    expect(f1('new york city', ['York'])).toBeCloseTo(0.5, 12);
    expect(f1('', ['Paris'])).toBe(0);
    expect(f1('', [''])).toBe(0); // HotpotQA: no common token scores 0 even when both are empty
    expect(f1('Zürich airport', ['zürich'])).toBeCloseTo((2 * 0.5 * 1) / 1.5, 12);
  });

  it("HotpotQA's yes/no/noanswer rule", () => {
    expect(f1('yes', ['no'])).toBe(0);
    expect(f1('Yes.', ['yes'])).toBe(1);
    // Gold "yes", prediction "yes it is": plain token F1 would be 2 * (1/3 * 1) / (4/3) = 0.5; HotpotQA gives 0.
    expect(f1('yes it is', ['yes'])).toBe(0);
    expect(f1('no answer', ['noanswer'])).toBe(0);
    expect(f1('noanswer', ['noanswer'])).toBe(1);
    expect(f1('no', ['no', 'No way'])).toBe(1);
  });
});

describe("DPR has_answer (SimpleTokenizer, NFD, uncased, token subsequence)", () => {
  it('tokenises alphanumeric runs and single non-space symbols', () => {
    expect(dprTokens("U.S. Army's 1st-division, (ok)")).toEqual(['U', '.', 'S', '.', 'Army', "'", 's', '1st', '-', 'division', ',', '(', 'ok', ')']);
    expect(dprTokens('1940–1942')).toEqual(['1940', '–', '1942']);
    expect(dprTokens('a😀b')).toEqual(['a', '😀', 'b']); // one code point, one token
    // No-break space (Zs) and zero-width space (Cf) separate tokens; tabs and newlines (Cc) too.
    expect(dprTokens('New\u00a0York\u200bCity\tNY\n')).toEqual(['New', 'York', 'City', 'NY']);
    expect(dprTokens('')).toEqual([]);
  });

  it('NFD keeps combining marks inside the word; uncased', () => {
    expect(dprWords('Röntgen')).toEqual(['ro\u0308ntgen']);
    expect(dprWords('RÖNTGEN')).toEqual(['ro\u0308ntgen']);
    // İ -> NFD I + U+0307 -> lower i + U+0307 (as Python does)
    expect(dprWords('İstanbul')).toEqual(['i\u0307stanbul']);
  });

  it('hand-worked matches', () => {
    const text = 'The first Nobel Prize in Physics was awarded in 1901 to Wilhelm Conrad R\u00f6ntgen, of Germany.';
    expect(hasAnswer(['Wilhelm Conrad Röntgen'], text)).toBe(true);
    expect(hasAnswer(['wilhelm conrad ro\u0308ntgen'], text)).toBe(true); // NFD + lower case answer
    expect(hasAnswer(['Wilhelm Conrad Rontgen'], text)).toBe(false); // accents are not stripped
    expect(hasAnswer(['Conrad Wilhelm'], text)).toBe(false); // order matters
    expect(hasAnswer(['Germany.'], text)).toBe(true); // "germany" "." is a token subsequence
    expect(hasAnswer(['Röntgen of Germany'], text)).toBe(false); // the "," in between is a token
    expect(hasAnswer(['Röntgen, of Germany'], text)).toBe(true);
    expect(hasAnswer(['190'], text)).toBe(false); // tokens, not substrings
    expect(hasAnswer(['Prize'], 'prizes')).toBe(false);
    expect(hasAnswer(['U.S'], 'the U.S. army')).toBe(true);
    expect(hasAnswer(['US'], 'the U.S. army')).toBe(false);
    expect(hasAnswer(['July 5 , 2018'], 'released on July 5, 2018 in Japan')).toBe(true); // DPR's tokenised NQ answers
    expect(hasAnswer(['1940'], 'between 1940–1942')).toBe(true);
    expect(hasAnswer(['istanbul'], 'İstanbul')).toBe(false); // the dot above stays
    expect(hasAnswer(['İstanbul'], 'İSTANBUL')).toBe(true);
    expect(hasAnswer(['no', 'Linda Davis'], 'a duet with LINDA  DAVIS')).toBe(true); // any answer
  });

  it('an answer without tokens matches nothing (DPR would match everything)', () => {
    expect(hasAnswer([''], 'anything')).toBe(false);
    expect(hasAnswer(['  \u200b'], 'anything')).toBe(false);
    expect(new AnswerMatcher(['', ' ']).empty).toBe(true);
    expect(hasAnswer([], 'anything')).toBe(false);
  });
});
