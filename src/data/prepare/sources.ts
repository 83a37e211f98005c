import { RecordError } from './source.js';

/**
 * One converter per raw format: a parsed raw record in, the question, answers and candidate
 * passages out (before has_answer, padding and shuffling, which are the same for every source).
 * Every rejection is a RecordError with a short reason and a message naming the record and
 * the field.
 */

export const SOURCES = ['hotpotqa', '2wiki', 'musique', 'fid', 'dpr'] as const;
export type Source = (typeof SOURCES)[number];

export interface Candidate {
  title: string;
  text: string;
  /**
   * Gold / supporting. `undefined` means the source carries no label for this passage and the
   * computed has_answer stands in (FiD/DPR retrieval lists without has_answer).
   */
  gold: boolean | undefined;
  /** Fields kept from the raw passage (ids, scores, positions), written after the labels. */
  extra: Record<string, unknown>;
}

export interface Converted {
  id: string;
  question: string;
  answers: string[];
  target: string;
  candidates: Candidate[];
  /** Per-record facts for the summary. */
  notes: {
    /** supporting_facts titles with no paragraph of that title in the context. */
    supportingMissing?: number;
    /** Retrieved passages dropped beyond --n-candidates (FiD/DPR lists). */
    cut?: number;
    /** Repeated DPR passages dropped (same passage_id, or same title and text). */
    duplicates?: number;
  };
}

export type Converter = (raw: unknown, where: string, index: number, nCandidates: number) => Converted;

function asObject(raw: unknown, where: string): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new RecordError('not an object', `${where}: expected a JSON object, found ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)?.slice(0, 40)}`);
  return raw as Record<string, unknown>;
}

function question(r: Record<string, unknown>, field: string, where: string): string {
  const q = r[field];
  if (typeof q !== 'string' || !q.trim()) throw new RecordError('missing question', `${where}: field "${field}" is missing or empty`);
  return q;
}

/** Non-blank strings, exact duplicates removed, order kept; a non-string entry is an error. */
function answerList(values: unknown[], field: string, where: string): string[] {
  const out: string[] = [];
  values.forEach((v, i) => {
    if (typeof v !== 'string') throw new RecordError('missing answers', `${where}: field "${field}"[${i}] is not a string`);
    if (v.trim() && !out.includes(v)) out.push(v);
  });
  if (out.length === 0) throw new RecordError('missing answers', `${where}: field "${field}" has no non-empty answer`);
  return out;
}

function idOf(v: unknown, index: number): string {
  return typeof v === 'string' && v ? v : typeof v === 'number' ? String(v) : String(index);
}

/** Joins sentences with one space where neither side already has whitespace (HotpotQA keeps leading spaces, 2Wiki does not). */
export function joinSentences(sentences: readonly string[]): string {
  let out = '';
  for (const s of sentences) {
    if (!s) continue;
    if (out && !/\s$/.test(out) && !/^\s/.test(s)) out += ' ';
    out += s;
  }
  return out.trim();
}

// ---------------------------------------------------------------------------------------------
// HotpotQA distractor and 2WikiMultihopQA: {_id, question, answer, supporting_facts, context}

function multihop(raw: unknown, where: string, index: number): Converted {
  const r = asObject(raw, where);
  const q = question(r, 'question', where);
  if (typeof r.answer !== 'string' || !r.answer.trim()) throw new RecordError('missing answers', `${where}: field "answer" is missing or empty`);
  const answers = [r.answer];
  if (!Array.isArray(r.context) || r.context.length === 0) throw new RecordError('no contexts', `${where}: field "context" is missing or empty`);
  if (!Array.isArray(r.supporting_facts)) throw new RecordError('bad supporting_facts', `${where}: field "supporting_facts" is missing or not a list`);
  const supporting = new Set<string>();
  r.supporting_facts.forEach((f, i) => {
    if (!Array.isArray(f) || typeof f[0] !== 'string') throw new RecordError('bad supporting_facts', `${where}: supporting_facts[${i}] must be [title, sentence_id]`);
    supporting.add(f[0]);
  });
  const titles = new Set<string>();
  const candidates = r.context.map((c, i): Candidate => {
    if (!Array.isArray(c) || typeof c[0] !== 'string' || !Array.isArray(c[1]) || !c[1].every((s) => typeof s === 'string')) {
      throw new RecordError('bad context', `${where}: context[${i}] must be [title, [sentences]]`);
    }
    titles.add(c[0]);
    return { title: c[0], text: joinSentences(c[1] as string[]), gold: supporting.has(c[0]), extra: {} };
  });
  let missing = 0;
  for (const t of supporting) if (!titles.has(t)) missing++;
  return { id: idOf(r._id, index), question: q, answers, target: answers[0]!, candidates, notes: { supportingMissing: missing } };
}

// ---------------------------------------------------------------------------------------------
// MuSiQue: {id, question, answer, answer_aliases, paragraphs: [{idx, title, paragraph_text, is_supporting}]}

function musique(raw: unknown, where: string, index: number): Converted {
  const r = asObject(raw, where);
  const q = question(r, 'question', where);
  if (typeof r.answer !== 'string' || !r.answer.trim()) throw new RecordError('missing answers', `${where}: field "answer" is missing or empty`);
  const aliases = r.answer_aliases === undefined ? [] : r.answer_aliases;
  if (!Array.isArray(aliases)) throw new RecordError('missing answers', `${where}: field "answer_aliases" must be a list`);
  aliases.forEach((a, i) => {
    if (typeof a !== 'string') throw new RecordError('missing answers', `${where}: field "answer_aliases"[${i}] is not a string`);
  });
  const answers = answerList([r.answer, ...aliases], 'answer', where);
  if (!Array.isArray(r.paragraphs) || r.paragraphs.length === 0) throw new RecordError('no contexts', `${where}: field "paragraphs" is missing or empty`);
  const candidates = r.paragraphs.map((p, i): Candidate => {
    if (!p || typeof p !== 'object') throw new RecordError('bad context', `${where}: paragraphs[${i}] must be an object`);
    const o = p as Record<string, unknown>;
    if (typeof o.paragraph_text !== 'string') throw new RecordError('bad context', `${where}: paragraphs[${i}].paragraph_text is missing`);
    if (o.title !== undefined && typeof o.title !== 'string') throw new RecordError('bad context', `${where}: paragraphs[${i}].title must be a string`);
    if (o.is_supporting !== undefined && typeof o.is_supporting !== 'boolean') throw new RecordError('bad context', `${where}: paragraphs[${i}].is_supporting must be true or false`);
    return { title: (o.title as string | undefined) ?? '', text: o.paragraph_text, gold: o.is_supporting === true, extra: { idx: typeof o.idx === 'number' ? o.idx : i } };
  });
  return { id: idOf(r.id, index), question: q, answers, target: answers[0]!, candidates, notes: {} };
}

// ---------------------------------------------------------------------------------------------
// FiD / DPR retrieval lists: {id?, question, answers, target?, ctxs: [{id?, title, text, score?, has_answer|hasanswer?, isgold?}]}
// Also read: NQ-open's `answer` list (FiD renames it to answers) and raw TriviaQA records
// ({Question, QuestionId, Answer: {Aliases, Value}}), which FiD maps the same way.

const GOLD_FIELDS = ['gold', 'isgold', 'is_gold', 'is_supporting'] as const;
const HAS_ANSWER_FIELDS = ['has_answer', 'hasanswer'] as const;

function passage(c: unknown, field: string, i: number, where: string): { title: string; text: string; o: Record<string, unknown> } {
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new RecordError('bad context', `${where}: ${field}[${i}] must be an object`);
  const o = c as Record<string, unknown>;
  if (typeof o.text !== 'string') throw new RecordError('bad context', `${where}: ${field}[${i}].text is missing`);
  if (o.title !== undefined && o.title !== null && typeof o.title !== 'string') throw new RecordError('bad context', `${where}: ${field}[${i}].title must be a string`);
  return { title: (o.title as string | null | undefined) ?? '', text: o.text, o };
}

function openDomainHeader(r: Record<string, unknown>, where: string, index: number): { id: string; question: string; answers: string[]; target: string; tqa: boolean } {
  const tqa = r.question === undefined && r.Question !== undefined;
  const q = question(r, tqa ? 'Question' : 'question', where);
  let answers: string[];
  let target: string | undefined;
  if (tqa) {
    const a = r.Answer as Record<string, unknown> | undefined;
    if (!a || typeof a !== 'object' || !Array.isArray(a.Aliases)) throw new RecordError('missing answers', `${where}: field "Answer.Aliases" is missing`);
    answers = answerList(a.Aliases, 'Answer.Aliases', where);
    if (typeof a.Value === 'string' && a.Value.trim()) target = a.Value === a.Value.toUpperCase() && a.Value !== a.Value.toLowerCase() ? titleCase(a.Value) : a.Value;
  } else {
    const field = r.answers !== undefined ? 'answers' : r.answer !== undefined ? 'answer' : 'answers';
    const v = r[field];
    if (v === undefined) throw new RecordError('missing answers', `${where}: field "answers" is missing`);
    answers = answerList(Array.isArray(v) ? v : [v], field, where);
  }
  if (typeof r.target === 'string' && r.target.trim()) target = r.target;
  return { id: idOf(r.id ?? r.QuestionId, index), question: q, answers, target: target ?? answers[0]!, tqa };
}

/** Python's str.title(): upper-case the first letter of each run of letters, lower-case the rest. */
function titleCase(s: string): string {
  return s.toLowerCase().replace(/(^|[^\p{L}])(\p{L})/gu, (_, pre: string, ch: string) => pre + ch.toUpperCase());
}

function fid(raw: unknown, where: string, index: number, n: number): Converted {
  const r = asObject(raw, where);
  const head = openDomainHeader(r, where, index);
  if (!Array.isArray(r.ctxs) || r.ctxs.length === 0) {
    let hint = '';
    if (r.positive_ctxs !== undefined) hint = ' (a DPR retriever training record: use --from dpr)';
    else if (head.tqa) hint = " (a raw TriviaQA record has no passages: retrieve them first, e.g. FiD's TQA files)";
    else if (r.ctxs === undefined) hint = " (raw NQ-open / TriviaQA questions have no passages: retrieve them first, e.g. FiD's NQ/TQA files)";
    throw new RecordError('no contexts', `${where}: field "ctxs" is missing or empty${hint}`);
  }
  const all = r.ctxs;
  const kept = all.slice(0, n);
  const candidates = kept.map((c, i): Candidate => {
    const { title, text, o } = passage(c, 'ctxs', i, where);
    let gold: boolean | undefined;
    for (const f of GOLD_FIELDS) if (typeof o[f] === 'boolean') gold ??= o[f] as boolean;
    let rawHas: boolean | undefined;
    for (const f of HAS_ANSWER_FIELDS) if (typeof o[f] === 'boolean') rawHas ??= o[f] as boolean;
    gold ??= rawHas;
    const extra: Record<string, unknown> = {};
    if (o.id !== undefined) extra.id = o.id;
    if (o.score !== undefined) extra.score = o.score;
    extra.retrieval_rank = i;
    if (rawHas !== undefined) extra.raw_has_answer = rawHas;
    return { title, text, gold, extra };
  });
  return { id: head.id, question: head.question, answers: head.answers, target: head.target, candidates, notes: { cut: all.length - kept.length } };
}

// DPR retriever training files: {question, answers, positive_ctxs, hard_negative_ctxs, negative_ctxs}.
// A DPR retriever-results file ({question, answers, ctxs: [{..., has_answer}]}) is read as `fid`.

function dpr(raw: unknown, where: string, index: number, n: number): Converted {
  const r = asObject(raw, where);
  if (r.positive_ctxs === undefined && r.ctxs !== undefined) return fid(raw, where, index, n);
  const head = openDomainHeader(r, where, index);
  const lists = [
    ['positive_ctxs', 'positive'],
    ['hard_negative_ctxs', 'hard_negative'],
    ['negative_ctxs', 'negative'],
  ] as const;
  let total = 0;
  for (const [field] of lists) {
    const v = r[field];
    if (v !== undefined && !Array.isArray(v)) throw new RecordError('bad context', `${where}: field "${field}" must be a list`);
    total += Array.isArray(v) ? v.length : 0;
  }
  if (total === 0) throw new RecordError('no contexts', `${where}: fields "positive_ctxs", "hard_negative_ctxs" and "negative_ctxs" are all missing or empty`);
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  let duplicates = 0;
  let cut = 0;
  for (const [field, kind] of lists) {
    ((r[field] as unknown[] | undefined) ?? []).forEach((c, i) => {
      const { title, text, o } = passage(c, field, i, where);
      const key = o.passage_id !== undefined ? `id:${String(o.passage_id)}` : `tt:${title}\u0000${text}`;
      if (seen.has(key)) {
        duplicates++;
        return;
      }
      seen.add(key);
      if (candidates.length >= n) {
        cut++;
        return;
      }
      const extra: Record<string, unknown> = { dpr_kind: kind };
      if (o.passage_id !== undefined) extra.id = o.passage_id;
      if (o.score !== undefined) extra.score = o.score;
      candidates.push({ title, text, gold: kind === 'positive', extra });
    });
  }
  return { id: head.id, question: head.question, answers: head.answers, target: head.target, candidates, notes: { cut, duplicates } };
}

export const CONVERTERS: Record<Source, Converter> = {
  hotpotqa: multihop,
  '2wiki': multihop,
  musique,
  fid,
  dpr,
};
