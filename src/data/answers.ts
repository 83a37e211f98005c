/**
 * DPR's answer-containment rule ("has_answer"), as in `dpr/data/qa_validation.py` with
 * `match_type="string"` and `dpr/utils/tokenizers.py` SimpleTokenizer:
 *
 * - both the passage text and each answer are NFD-normalised (`unicodedata.normalize("NFD")`);
 * - both are tokenised by SimpleTokenizer: the regex `([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])`, i.e.
 *   maximal runs of letters, numbers and combining marks, or any single character that is not
 *   a separator (spaces) or "other" (controls, format characters, unassigned, private use);
 * - tokens are lower-cased (`words(uncased=True)`, Python `str.lower`);
 * - the passage has the answer when some answer's token list occurs as a contiguous
 *   subsequence of the passage's token list.
 *
 * One deliberate difference: an answer with no tokens at all (empty or only spaces/controls)
 * matches nothing here; in DPR the empty list matches every passage.
 */

const TOKEN = /[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]/gu;

/** SimpleTokenizer tokens of `text` (no normalisation, original case). */
export function dprTokens(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

/** The tokens DPR compares: NFD-normalised, tokenised, lower-cased. */
export function dprWords(text: string): string[] {
  return dprTokens(text.normalize('NFD')).map((t) => t.toLowerCase());
}

/** Index of the first occurrence of `needle` in `hay` as a contiguous run, or -1. */
function indexOfRun(hay: readonly string[], needle: readonly string[]): number {
  const n = needle.length;
  if (n === 0 || n > hay.length) return -1;
  const first = needle[0]!;
  outer: for (let i = 0; i + n <= hay.length; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < n; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Checks many passages against one question's answers: the answers are tokenised once.
 * `matches(text)` is DPR's has_answer(answers, text).
 */
export class AnswerMatcher {
  private readonly answers: string[][];

  constructor(answers: readonly string[]) {
    this.answers = answers.map(dprWords).filter((w) => w.length > 0);
  }

  /** True when no answer has any token (nothing can match). */
  get empty(): boolean {
    return this.answers.length === 0;
  }

  matches(text: string): boolean {
    if (this.answers.length === 0) return false;
    const words = dprWords(text);
    return this.answers.some((a) => indexOfRun(words, a) !== -1);
  }
}

/** DPR has_answer: does `text` contain any of `answers` (token subsequence, uncased, NFD)? */
export function hasAnswer(answers: readonly string[], text: string): boolean {
  return new AnswerMatcher(answers).matches(text);
}
