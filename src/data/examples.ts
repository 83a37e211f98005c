import { closeSync, openSync, readSync } from 'node:fs';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { readLines } from './lines.js';

/** One candidate passage, with the relevance labels evaluation uses. */
export interface Passage {
  title: string;
  text: string;
  /** Gold / supporting passage. */
  gold?: boolean;
  /** Contains an answer string (DPR has_answer). */
  has_answer?: boolean;
  [extra: string]: unknown;
}

/** One example of the training format (SPEC.md section 5). */
export interface Example {
  id: string;
  question: string;
  target?: string;
  answers: string[];
  ctxs: Passage[];
}

/**
 * Checks one record of the training format and returns it typed; errors name the file, the
 * record (line for JSON lines, index for arrays) and the field.
 */
export function validateExample(raw: unknown, where: string): Example {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new GrerankError(`${where}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  if (typeof r.question !== 'string' || !r.question.trim()) throw new GrerankError(`${where}: field "question" is missing or empty`);
  const answers = r.answers ?? (typeof r.target === 'string' ? [r.target] : undefined);
  if (!Array.isArray(answers) || answers.length === 0 || !answers.every((a) => typeof a === 'string')) {
    throw new GrerankError(`${where}: field "answers" must be a non-empty list of strings`);
  }
  if (r.target !== undefined && typeof r.target !== 'string') throw new GrerankError(`${where}: field "target" must be a string`);
  if (!Array.isArray(r.ctxs) || r.ctxs.length === 0) throw new GrerankError(`${where}: field "ctxs" must be a non-empty list of passages`);
  r.ctxs.forEach((c, i) => {
    if (!c || typeof c !== 'object') throw new GrerankError(`${where}: ctxs[${i}] must be an object`);
    const p = c as Record<string, unknown>;
    if (typeof p.text !== 'string') throw new GrerankError(`${where}: ctxs[${i}].text is missing`);
    if (p.title !== undefined && typeof p.title !== 'string') throw new GrerankError(`${where}: ctxs[${i}].title must be a string`);
  });
  return {
    id: r.id === undefined ? '' : String(r.id),
    question: r.question,
    target: r.target as string | undefined,
    answers: answers as string[],
    ctxs: (r.ctxs as Record<string, unknown>[]).map((p) => ({ ...p, title: (p.title as string | undefined) ?? '', text: p.text as string })),
  };
}

/** True when the file's first non-space byte is '[' (a JSON array) rather than '{' (JSON lines). */
function isJsonArray(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new GrerankError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    for (let i = 0; i < n; i++) {
      const ch = buf[i]!;
      if (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09 || ch === 0xef || ch === 0xbb || ch === 0xbf) continue;
      return ch === 0x5b;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads every example of a training-format file: JSON lines (streamed line by line) or a JSON
 * array. Invalid records are errors, or skipped and counted with `skipInvalid`.
 */
export async function readExamples(file: string, opts: { skipInvalid?: boolean; limit?: number } = {}): Promise<{ examples: Example[]; skipped: number }> {
  const examples: Example[] = [];
  let skipped = 0;
  const take = (raw: unknown, where: string) => {
    try {
      const ex = validateExample(raw, where);
      if (!ex.id) ex.id = String(examples.length + skipped);
      examples.push(ex);
    } catch (e) {
      if (!opts.skipInvalid || !(e instanceof GrerankError)) throw e;
      skipped++;
    }
  };
  if (isJsonArray(file)) {
    const all = readJsonFile(file);
    if (!Array.isArray(all)) throw new GrerankError(`${file}: expected a JSON array of examples`);
    for (let i = 0; i < all.length && examples.length < (opts.limit ?? Infinity); i++) take(all[i], `${file}: record ${i}`);
    return { examples, skipped };
  }
  for await (const [lineNo, line] of readLines(file)) {
    if (!line.trim()) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (e) {
      if (opts.skipInvalid) {
        skipped++;
        continue;
      }
      throw new GrerankError(`${file}:${lineNo}: invalid JSON (${(e as Error).message})`);
    }
    take(raw, `${file}:${lineNo}`);
    if (examples.length >= (opts.limit ?? Infinity)) break;
  }
  return { examples, skipped };
}
