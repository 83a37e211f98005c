import { createWriteStream, existsSync, renameSync, statSync, unlinkSync, type WriteStream } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { GrerankError } from '../../errors.js';
import { normalizeAnswer } from '../../eval/metrics.js';
import { Progress } from '../../obs/progress.js';
import { Rng } from '../../util/rng.js';
import { AnswerMatcher } from '../answers.js';
import { fileSize, readRecords, RecordError, type Layout } from './source.js';
import { CONVERTERS, type Candidate, type Source } from './sources.js';

/**
 * `grerank prepare`: raw dataset file in, training-format JSON lines out (SPEC.md section 5):
 * `{id, question, target, answers, ctxs: [{title, text, gold, has_answer, indirect, ...}]}`.
 * The rules per source are in sources.ts and docs/data.md; the steps shared by all sources:
 *
 * 1. has_answer: DPR's rule (answers.ts) on the passage text, over the answers that are not
 *    "yes"/"no" (HotpotQA/2Wiki comparison answers are judgements, not spans in a passage).
 * 2. indirect = gold && !has_answer (paper, Appendix E).
 * 3. Padding (MuSiQue always, other sources with `pad`): up to `nCandidates` with random
 *    paragraphs of other questions, drawn from a seeded reservoir sample of the whole file
 *    (a first pass), never a paragraph of the question itself or a repeat; gold false.
 * 4. The candidates are shuffled, so position does not leak gold.
 *
 * Randomness is per record (seed and record index), so the output depends only on the seed
 * and the input: the same seed gives the same bytes, and `limit` gives a prefix of the full
 * output. Output goes to a temporary file beside the target, renamed at the end.
 */

export interface PrepareOptions {
  from: Source;
  input: string;
  output: string;
  seed: number;
  nCandidates: number;
  skipInvalid: boolean;
  limit?: number;
  /** Pad every source, not only MuSiQue. */
  pad?: boolean;
  /** Where progress lines go (default stderr); null for none. */
  progress?: NodeJS.WriteStream | null;
}

export interface SkipReason {
  count: number;
  /** The message of the first record skipped for this reason. */
  first: string;
}

export interface PrepareSummary {
  from: Source;
  input: string;
  output: string;
  layout: Layout;
  seed: number;
  recordsRead: number;
  written: number;
  skipped: number;
  skipReasons: Record<string, SkipReason>;
  candidates: { min: number; mean: number; max: number; total: number };
  gold: number;
  noGold: number;
  hasAnswer: number;
  indirect: number;
  withIndirect: number;
  yesNo: number;
  padded: number;
  /** Questions that padding could not bring to nCandidates (too few other questions). */
  shortOfN: number;
  supportingMissing: number;
  cut: number;
  duplicates: number;
  /** Passages with a raw has_answer/hasanswer label, and how many disagree with DPR's rule. */
  rawHasAnswer: { compared: number; disagree: number; firstDisagreement?: string };
  seconds: number;
}

/** No record of the input could be converted: nothing was written; the summary says why. */
export class NothingWrittenError extends GrerankError {
  constructor(
    message: string,
    readonly summary: PrepareSummary,
  ) {
    super(message);
  }
}

/** Paragraphs kept for padding: enough variety, bounded memory (~20 MB of text at most). */
const POOL_SIZE = 20_000;

interface PoolEntry {
  record: number;
  title: string;
  text: string;
}

function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(b >>> 0, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The generator for one record: depends on the seed and the record's index only. */
export function recordRng(seed: number, index: number): Rng {
  return new Rng(mix32(seed >>> 0, index));
}

const passageKey = (title: string, text: string) => `${title}\u0000${text}`;

function isYesNo(a: string): boolean {
  const n = normalizeAnswer(a);
  return n === 'yes' || n === 'no';
}

/** Reports progress (MB read, records/s) for inputs that take more than a couple of seconds. */
function progressReporter(label: string, size: number, stream: NodeJS.WriteStream | null | undefined) {
  const start = performance.now();
  let last = start;
  let shown = false;
  const totalMb = Math.max(1, Math.ceil(size / 1e6));
  // Created now so that its elapsed time and ETA count from the start; it prints only on update.
  const bar = stream === null ? undefined : new Progress(`${label} (MB)`, totalMb, { stream: stream ?? process.stderr });
  return (bytes: number, records: number, force = false) => {
    if (!bar) return;
    const now = performance.now();
    if (!force && (now - last < 2000 || now - start < 2000)) return;
    if (force && !shown) return;
    last = now;
    shown = true;
    bar.update(Math.min(totalMb, Math.floor(bytes / 1e6)), { records, 'records/s': Math.round(records / ((now - start) / 1000)) });
  };
}

/** A write stream with back-pressure and its error surfaced on the next write or close. */
class Output {
  private readonly stream: WriteStream;
  private error: Error | null = null;

  constructor(readonly file: string) {
    this.stream = createWriteStream(file, { flags: 'wx' });
    this.stream.on('error', (e) => (this.error = e));
  }

  async write(text: string): Promise<void> {
    if (this.error) throw this.error;
    if (!this.stream.write(text)) {
      await new Promise<void>((res, rej) => {
        const onDrain = () => {
          this.stream.off('error', onError);
          res();
        };
        const onError = (e: Error) => {
          this.stream.off('drain', onDrain);
          rej(e);
        };
        this.stream.once('drain', onDrain);
        this.stream.once('error', onError);
      });
    }
  }

  async close(): Promise<void> {
    if (this.error) throw this.error;
    await new Promise<void>((res, rej) => this.stream.end((e?: Error | null) => (e ? rej(e) : res())));
    if (this.error) throw this.error;
  }

  destroy(): void {
    this.stream.destroy();
  }
}

export async function prepare(opts: PrepareOptions): Promise<PrepareSummary> {
  const t0 = performance.now();
  const { input, output, from, nCandidates } = opts;
  const convert = CONVERTERS[from];
  if (!convert) throw new GrerankError(`--from "${from}" is not a known source`);
  if (!Number.isInteger(nCandidates) || nCandidates < 1) throw new GrerankError(`--n-candidates must be a positive integer, got ${nCandidates}`);
  const size = fileSize(input);
  if (resolve(input) === resolve(output)) throw new GrerankError(`${output}: --out is the input file`);
  const outDir = dirname(resolve(output));
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) throw new GrerankError(`${output}: directory ${outDir} does not exist`);
  if (existsSync(output) && statSync(output).isDirectory()) throw new GrerankError(`${output}: is a directory`);
  const pad = from === 'musique' || opts.pad === true;

  // Pass 1 (padding only): a seeded reservoir sample of all paragraphs of valid records.
  const pool: PoolEntry[] = [];
  if (pad) {
    const rng = new Rng(mix32(opts.seed >>> 0, 0xfeedbeef));
    let seen = 0;
    let count = 0;
    let bytes = 0;
    const report = progressReporter('prepare: padding pool', size, opts.progress);
    const { records } = readRecords(input, (b) => (bytes = b));
    for await (const rec of records) {
      report(bytes, ++count);
      if (rec.error) continue;
      let cands: Candidate[];
      try {
        cands = convert(rec.value, rec.where, rec.index, nCandidates).candidates;
      } catch (e) {
        if (e instanceof RecordError) continue;
        throw e;
      }
      for (const c of cands) {
        const entry = { record: rec.index, title: c.title, text: c.text };
        if (pool.length < POOL_SIZE) pool.push(entry);
        else {
          const j = Math.floor(rng.uniform() * (seen + 1));
          if (j < POOL_SIZE) pool[j] = entry;
        }
        seen++;
      }
    }
    report(bytes, count, true);
  }

  const s: PrepareSummary = {
    from,
    input,
    output,
    layout: 'array',
    seed: opts.seed,
    recordsRead: 0,
    written: 0,
    skipped: 0,
    skipReasons: {},
    candidates: { min: Infinity, mean: 0, max: 0, total: 0 },
    gold: 0,
    noGold: 0,
    hasAnswer: 0,
    indirect: 0,
    withIndirect: 0,
    yesNo: 0,
    padded: 0,
    shortOfN: 0,
    supportingMissing: 0,
    cut: 0,
    duplicates: 0,
    rawHasAnswer: { compared: 0, disagree: 0 },
    seconds: 0,
  };

  const skip = (e: RecordError) => {
    if (!opts.skipInvalid) throw e;
    s.skipped++;
    const r = (s.skipReasons[e.reason] ??= { count: 0, first: e.message });
    r.count++;
  };

  // Pass 2: convert and write.
  const tmp = resolve(outDir, `.${basename(output)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  const out = new Output(tmp);
  let done = false;
  const onSignal = () => {
    out.destroy();
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let bytes = 0;
    const report = progressReporter('prepare', size, opts.progress);
    const { layout, records } = readRecords(input, (b) => (bytes = b));
    s.layout = layout;
    for await (const rec of records) {
      s.recordsRead++;
      report(bytes, s.recordsRead);
      if (rec.error) {
        skip(rec.error);
        continue;
      }
      let ex;
      try {
        ex = convert(rec.value, rec.where, rec.index, nCandidates);
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        skip(e);
        continue;
      }
      const rng = recordRng(opts.seed, rec.index);
      const spans = ex.answers.filter((a) => !isYesNo(a));
      if (spans.length < ex.answers.length) s.yesNo++;
      const matcher = new AnswerMatcher(spans);
      const ctxs: Array<Record<string, unknown>> = [];
      for (const c of ex.candidates) {
        const has = matcher.matches(c.text);
        const gold = c.gold ?? has;
        const raw = c.extra.raw_has_answer;
        if (typeof raw === 'boolean') {
          s.rawHasAnswer.compared++;
          if (raw !== has) {
            s.rawHasAnswer.disagree++;
            s.rawHasAnswer.firstDisagreement ??= `${rec.where}: passage "${c.title}" raw has_answer ${raw}, DPR rule ${has}`;
          }
        }
        ctxs.push({ title: c.title, text: c.text, gold, has_answer: has, indirect: gold && !has, ...c.extra });
      }
      if (pad && ctxs.length < nCandidates) {
        const own = new Set(ex.candidates.map((c) => passageKey(c.title, c.text)));
        const need = nCandidates - ctxs.length;
        let tries = 0;
        while (ctxs.length < nCandidates && pool.length > 0 && tries < 50 * need + 100) {
          tries++;
          const p = pool[rng.int(pool.length)]!;
          const key = passageKey(p.title, p.text);
          if (p.record === rec.index || own.has(key)) continue;
          own.add(key);
          const has = matcher.matches(p.text);
          ctxs.push({ title: p.title, text: p.text, gold: false, has_answer: has, indirect: false, padded: true });
          s.padded++;
        }
        if (ctxs.length < nCandidates) s.shortOfN++;
      }
      rng.shuffle(ctxs);
      await out.write(JSON.stringify({ id: ex.id, question: ex.question, target: ex.target, answers: ex.answers, ctxs }) + '\n');
      s.written++;
      const n = ctxs.length;
      s.candidates.min = Math.min(s.candidates.min, n);
      s.candidates.max = Math.max(s.candidates.max, n);
      s.candidates.total += n;
      const g = ctxs.filter((c) => c.gold).length;
      const ind = ctxs.filter((c) => c.indirect).length;
      s.gold += g;
      if (g === 0) s.noGold++;
      s.hasAnswer += ctxs.filter((c) => c.has_answer).length;
      s.indirect += ind;
      if (ind > 0) s.withIndirect++;
      s.supportingMissing += ex.notes.supportingMissing ?? 0;
      s.cut += ex.notes.cut ?? 0;
      s.duplicates += ex.notes.duplicates ?? 0;
      if (opts.limit !== undefined && s.written >= opts.limit) break;
    }
    report(bytes, s.recordsRead, true);
    await out.close();
    if (s.written === 0) {
      s.candidates.min = 0;
      s.seconds = (performance.now() - t0) / 1000;
      throw new NothingWrittenError(`${input}: no example could be converted (${s.skipped} skipped); ${output} was not written`, s);
    }
    renameSync(tmp, output);
    done = true;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!done) {
      out.destroy();
      try {
        unlinkSync(tmp);
      } catch {
        /* never created or already gone */
      }
    }
  }
  s.candidates.mean = s.written ? s.candidates.total / s.written : 0;
  s.seconds = (performance.now() - t0) / 1000;
  return s;
}

/** The summary printed on stderr at the end of `grerank prepare`. */
export function formatSummary(s: PrepareSummary): string {
  const lines: string[] = [];
  const pct = (a: number, b: number) => (b ? ` (${((100 * a) / b).toFixed(1)}%)` : '');
  const perQ = (a: number) => (s.written ? `, ${(a / s.written).toFixed(2)} per question` : '');
  lines.push(`prepare --from ${s.from}: ${s.input} (${s.layout === 'jsonl' ? 'JSON lines' : s.layout === 'array' ? 'JSON array' : 'JSON object with a "Data" array'}) -> ${s.output}`);
  lines.push(`  records read         ${s.recordsRead}`);
  lines.push(`  examples written     ${s.written}`);
  lines.push(`  skipped              ${s.skipped}`);
  for (const [reason, r] of Object.entries(s.skipReasons).sort((a, b) => b[1].count - a[1].count)) {
    lines.push(`    ${reason}: ${r.count} (first: ${r.first})`);
  }
  lines.push(`  candidates/question  min ${s.written ? s.candidates.min : 0}, mean ${s.candidates.mean.toFixed(2)}, max ${s.candidates.max} (${s.candidates.total} passages)`);
  lines.push(`  gold passages        ${s.gold}${perQ(s.gold)}; questions without gold: ${s.noGold}`);
  lines.push(`  has_answer passages  ${s.hasAnswer}${pct(s.hasAnswer, s.candidates.total)}`);
  lines.push(`  indirect passages    ${s.indirect} (gold without the answer); questions with one: ${s.withIndirect}`);
  if (s.yesNo) lines.push(`  yes/no answers       ${s.yesNo} question${s.yesNo === 1 ? '' : 's'} (has_answer false for every passage)`);
  if (s.from === 'musique' || s.padded || s.shortOfN) lines.push(`  padded passages      ${s.padded}; questions still short of the target count: ${s.shortOfN}`);
  if (s.supportingMissing) lines.push(`  supporting titles not in the context: ${s.supportingMissing}`);
  if (s.cut) lines.push(`  retrieved passages beyond --n-candidates dropped: ${s.cut}`);
  if (s.duplicates) lines.push(`  repeated DPR passages dropped: ${s.duplicates}`);
  if (s.rawHasAnswer.compared) {
    lines.push(`  raw has_answer labels ${s.rawHasAnswer.compared}, disagreeing with DPR's rule: ${s.rawHasAnswer.disagree}`);
    if (s.rawHasAnswer.firstDisagreement) lines.push(`    first: ${s.rawHasAnswer.firstDisagreement}`);
  }
  lines.push(`  seed ${s.seed}, ${s.seconds.toFixed(2)} s, ${Math.round(s.recordsRead / Math.max(s.seconds, 1e-3))} records/s`);
  return lines.join('\n') + '\n';
}
