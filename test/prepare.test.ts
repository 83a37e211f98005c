import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateExample, type Example } from '../src/data/examples.js';
import { firstInvalidUtf8, readRecords, type RawRecord } from '../src/data/prepare/source.js';
import { joinSentences } from '../src/data/prepare/sources.js';
import { grerank, removeDir, tempDir } from './helpers/cli.js';
import { SHARED } from './helpers/shared.js';

const DATA = join(SHARED, 'datasets');
const HOTPOT_DEV = join(DATA, 'hotpotqa/hotpot_dev_distractor_v1.first53.json');
const HOTPOT_TRAIN = join(DATA, 'hotpotqa/hipporag_hotpotqa_train_100.json');
const WIKI2 = join(DATA, '2wikimultihopqa/migres_2wikimultihopqa_official_fields_64.jsonl');
const MUSIQUE_DEV = join(DATA, 'musique/migres_musique_ans_200.jsonl');
const MUSIQUE_TRAIN = join(DATA, 'musique/hipporag_musique_ans_train_100.json');
const NQ_OPEN = join(DATA, 'nq/NQ-open.dev.first200.jsonl');
const NQ_DPR = join(DATA, 'nq/dpr_nq_dev_psgs_w100.haystack_sample5.json');
const NQ_ORACLE = join(DATA, 'nq/lost_in_the_middle_nq-open-oracle.first200.jsonl');
const TQA = join(DATA, 'triviaqa/triviaqa_sample.json');

const work = tempDir('grerank-prepare-');
afterAll(() => removeDir(work));

let n = 0;
/** Runs `grerank prepare` into a fresh file; returns the exit code, stderr and output path. */
function prep(from: string, input: string, extra: string[] = [], out = join(work, `out-${n++}.jsonl`)) {
  const r = grerank(['prepare', '--from', from, '--in', input, '--out', out, ...extra]);
  return { ...r, out };
}

/** The output records, each checked with validateExample (the trainer's reader). */
function readOut(file: string): Array<Example & { ctxs: Array<Record<string, any>> }> {
  const lines = readFileSync(file, 'utf8').split('\n');
  expect(lines.pop()).toBe(''); // ends with a newline
  return lines.map((l, i) => {
    const raw = JSON.parse(l);
    validateExample(raw, `${file}:${i + 1}`);
    for (const c of raw.ctxs) {
      expect(typeof c.gold).toBe('boolean');
      expect(typeof c.has_answer).toBe('boolean');
      expect(c.indirect).toBe(c.gold && !c.has_answer);
    }
    return raw;
  });
}

function ok(r: { code: number; stderr: string }): void {
  if (r.code !== 0) throw new Error(`grerank prepare exited ${r.code}: ${r.stderr}`);
}

const readJsonl = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const titlesOf = (ctxs: Array<Record<string, any>>, pred: (c: any) => boolean = () => true) => ctxs.filter(pred).map((c) => c.title).sort();

describe('prepare --from hotpotqa', () => {
  const raw = JSON.parse(readFileSync(HOTPOT_DEV, 'utf8')) as any[];

  it('dev distractor (compact JSON array): gold = supporting_facts titles, text = joined sentences', () => {
    const r = prep('hotpotqa', HOTPOT_DEV);
    ok(r);
    const out = readOut(r.out);
    expect(out).toHaveLength(53);
    // The first record, read by eye: "Were Scott Derrickson and Ed Wood of the same nationality?" -> yes,
    // supporting facts [["Scott Derrickson", 0], ["Ed Wood", 0]].
    const first = out[0]!;
    expect(first.id).toBe('5a8b57f25542995d1e6f1371');
    expect(first.answers).toEqual(['yes']);
    expect(first.target).toBe('yes');
    expect(titlesOf(first.ctxs, (c) => c.gold)).toEqual(['Ed Wood', 'Scott Derrickson']);
    // "yes" is a judgement: no passage "has" it, so both gold passages are indirect.
    expect(first.ctxs.filter((c) => c.has_answer)).toHaveLength(0);
    expect(titlesOf(first.ctxs, (c) => c.indirect)).toEqual(['Ed Wood', 'Scott Derrickson']);
    const scott = first.ctxs.find((c) => c.title === 'Scott Derrickson')!;
    expect(scott.text).toBe(
      'Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer. He lives in Los Angeles, California. He is best known for directing horror films such as "Sinister", "The Exorcism of Emily Rose", and "Deliver Us From Evil", as well as the 2016 Marvel Cinematic Universe installment, "Doctor Strange."',
    );
    // Every record: same id/question/answer, the same passages, gold exactly the supporting titles.
    raw.forEach((rec, i) => {
      const ex = out[i]!;
      expect(ex.id).toBe(rec._id);
      expect(ex.question).toBe(rec.question);
      expect(ex.answers).toEqual([rec.answer]);
      expect(titlesOf(ex.ctxs)).toEqual(rec.context.map((c: any) => c[0]).sort());
      const supporting = new Set(rec.supporting_facts.map((f: any) => f[0]));
      expect(titlesOf(ex.ctxs, (c) => c.gold)).toEqual(rec.context.map((c: any) => c[0]).filter((t: string) => supporting.has(t)).sort());
      for (const c of ex.ctxs) expect(c.text).toBe(joinSentences(rec.context.find((x: any) => x[0] === c.title)[1]));
    });
    // The record with only two paragraphs (PROVENANCE.md).
    expect(out.find((e) => e.id === '5abd259d55429924427fcf1a')!.ctxs).toHaveLength(2);
    expect(r.stderr).toMatch(/examples written\s+53\n/);
    expect(r.stderr).toMatch(/candidates\/question\s+min 2, mean 9\.85, max 10/);
  });

  it('a has_answer fact checked by eye: record 1 (answer "Chief of Protocol")', () => {
    const out = readOut(prep('hotpotqa', HOTPOT_DEV).out);
    const rec = raw[1];
    expect(rec.answer).toBe('Chief of Protocol');
    const ex = out[1]!;
    // Only passages whose text contains "chief of protocol" as words have the answer.
    for (const c of ex.ctxs) expect(c.has_answer).toBe(/\bchief of protocol\b/i.test(c.text));
    expect(ex.ctxs.some((c) => c.has_answer)).toBe(true);
  });

  it('train (HippoRAG, pretty-printed array with reordered keys)', () => {
    const r = prep('hotpotqa', HOTPOT_TRAIN);
    ok(r);
    const out = readOut(r.out);
    const rawTrain = JSON.parse(readFileSync(HOTPOT_TRAIN, 'utf8')) as any[];
    expect(out).toHaveLength(100);
    rawTrain.forEach((rec, i) => {
      expect(out[i]!.id).toBe(rec._id);
      const supporting = new Set(rec.supporting_facts.map((f: any) => f[0]));
      expect(titlesOf(out[i]!.ctxs, (c) => c.gold)).toEqual(rec.context.map((c: any) => c[0]).filter((t: string) => supporting.has(t)).sort());
    });
    // The first train record's supporting facts are "Alû" (a \u escape in the file) and "Lilu (mythology)".
    expect(titlesOf(out[0]!.ctxs, (c) => c.gold)).toEqual(['Alû', 'Lilu (mythology)']);
  });
});

describe('prepare --from 2wiki', () => {
  it('JSON lines with the official fields: gold = supporting titles, sentences joined with spaces', () => {
    const r = prep('2wiki', WIKI2);
    ok(r);
    const out = readOut(r.out);
    const raw = readJsonl(WIKI2);
    expect(out).toHaveLength(64);
    // First record: "Which film came out earlier, Enemmy or Samson And His Mighty Challenge?"
    expect(out[0]!.id).toBe('02ae4663095611ebbdaeac1f6bf848b6');
    expect(out[0]!.target).toBe('Samson And His Mighty Challenge');
    expect(titlesOf(out[0]!.ctxs, (c) => c.gold)).toEqual(['Enemmy', 'Samson and His Mighty Challenge']);
    // 2Wiki sentences have no leading space: joined with one.
    expect(out[0]!.ctxs.find((c) => c.title === 'Enemmy')!.text).toBe(
      'Enemmy is a 2013 Indian Hindi- language action thriller film directed by Ashu Trikha- the title being intentionally misspelt using the 6 main characters initials. The film stars Mithun Chakraborty, Sunil Shetty, Mahakshay Chakraborty, Kay Kay Menon, Johnny Lever, Zakir Hussain and Yuvika Chaudhary.',
    );
    raw.forEach((rec, i) => {
      const supporting = new Set(rec.supporting_facts.map((f: any) => f[0]));
      expect(out[i]!.ctxs).toHaveLength(10);
      expect(titlesOf(out[i]!.ctxs, (c) => c.gold)).toEqual(rec.context.map((c: any) => c[0]).filter((t: string) => supporting.has(t)).sort());
      expect(out[i]!.answers).toEqual([rec.answer]);
    });
  });
});

describe('prepare --from musique', () => {
  for (const [name, file, count] of [
    ['dev (JSON lines)', MUSIQUE_DEV, 200],
    ['train (HippoRAG JSON array)', MUSIQUE_TRAIN, 100],
  ] as const) {
    it(`${name}: 20 candidates, is_supporting paragraphs are gold, answers = answer + aliases`, () => {
      const r = prep('musique', file);
      ok(r);
      const out = readOut(r.out);
      const raw = file.endsWith('.jsonl') ? readJsonl(file) : (JSON.parse(readFileSync(file, 'utf8')) as any[]);
      expect(out).toHaveLength(count);
      raw.forEach((rec, i) => {
        const ex = out[i]!;
        expect(ex.id).toBe(rec.id);
        expect(ex.ctxs).toHaveLength(20);
        expect(ex.answers).toEqual([...new Set([rec.answer, ...rec.answer_aliases])]);
        expect(ex.target).toBe(rec.answer);
        const gold = ex.ctxs.filter((c) => c.gold).map((c) => c.idx).sort((a, b) => a - b);
        expect(gold).toEqual(rec.paragraphs.filter((p: any) => p.is_supporting).map((p: any) => p.idx));
        for (const c of ex.ctxs) expect(c.text).toBe(rec.paragraphs.find((p: any) => p.idx === c.idx).paragraph_text);
      });
      expect(r.stderr).toMatch(/candidates\/question\s+min 20, mean 20\.00, max 20/);
    });
  }

  it('the first dev record, read by eye: "Stanley" is in the courthouse paragraph, not in the township one', () => {
    const ex = readOut(prep('musique', MUSIQUE_DEV, ['--limit', '1']).out)[0]!;
    expect(ex.id).toBe('2hop__574419_270105');
    const courthouse = ex.ctxs.find((c) => c.title === 'Mountrail County Courthouse')!;
    const township = ex.ctxs.find((c) => c.title === 'Van Hook Township, Mountrail County, North Dakota')!;
    expect([courthouse.gold, courthouse.has_answer, courthouse.indirect]).toEqual([true, true, false]);
    expect([township.gold, township.has_answer, township.indirect]).toEqual([true, false, true]);
  });

  it('pads short records to --n-candidates with paragraphs of other questions, seeded', () => {
    // 30 real records cut to their supporting paragraphs plus the first non-supporting ones (7 in all).
    const raw = readJsonl(MUSIQUE_DEV).slice(0, 30);
    const short = raw.map((rec) => {
      const sup = rec.paragraphs.filter((p: any) => p.is_supporting);
      const rest = rec.paragraphs.filter((p: any) => !p.is_supporting).slice(0, 7 - sup.length);
      return { ...rec, paragraphs: [...sup, ...rest] };
    });
    const file = join(work, 'musique-short.jsonl');
    writeFileSync(file, short.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const r = prep('musique', file, ['--seed', '3']);
    ok(r);
    const out = readOut(r.out);
    const textOwner = new Map<string, number>();
    short.forEach((rec, i) => rec.paragraphs.forEach((p: any) => textOwner.set(p.paragraph_text, i)));
    out.forEach((ex, i) => {
      expect(ex.ctxs).toHaveLength(20);
      const padded = ex.ctxs.filter((c) => c.padded);
      expect(padded).toHaveLength(20 - short[i]!.paragraphs.length);
      const texts = ex.ctxs.map((c) => c.text);
      expect(new Set(texts).size).toBe(20); // no repeats
      for (const c of padded) {
        expect(c.gold).toBe(false);
        expect(c.indirect).toBe(false);
        const owner = textOwner.get(c.text);
        expect(owner).toBeDefined(); // a real paragraph of the file ...
        expect(owner).not.toBe(i); // ... of another question
        expect(short[i]!.paragraphs.some((p: any) => p.paragraph_text === c.text)).toBe(false);
      }
      // The question's own gold paragraphs are all there.
      expect(ex.ctxs.filter((c) => c.gold)).toHaveLength(short[i]!.paragraphs.filter((p: any) => p.is_supporting).length);
    });
    expect(r.stderr).toMatch(/padded passages\s+390; questions still short of the target count: 0/);
    // Same seed, same bytes.
    expect(readFileSync(prep('musique', file, ['--seed', '3']).out)).toEqual(readFileSync(r.out));

    // One question alone cannot be padded: reported, not invented.
    const one = join(work, 'musique-one.jsonl');
    writeFileSync(one, JSON.stringify(short[0]) + '\n');
    const r1 = prep('musique', one);
    ok(r1);
    expect(readOut(r1.out)[0]!.ctxs).toHaveLength(7);
    expect(r1.stderr).toMatch(/questions still short of the target count: 1/);
  });
});

describe('prepare --from dpr (DPR retriever training file)', () => {
  it('positive_ctxs are gold, then hard negatives fill up to 20; repeated passages dropped', () => {
    const r = prep('dpr', NQ_DPR);
    ok(r);
    const out = readOut(r.out);
    const raw = JSON.parse(readFileSync(NQ_DPR, 'utf8')) as any[];
    expect(out).toHaveLength(5);
    raw.forEach((rec, i) => {
      const ex = out[i]!;
      expect(ex.question).toBe(rec.question);
      expect(ex.answers).toEqual(rec.answers);
      expect(ex.ctxs).toHaveLength(20);
      const ids = ex.ctxs.map((c) => c.id);
      expect(new Set(ids).size).toBe(20);
      const positives = [...new Set(rec.positive_ctxs.map((p: any) => p.passage_id))].sort();
      expect(ex.ctxs.filter((c) => c.gold).map((c) => c.id).sort()).toEqual(positives);
      for (const c of ex.ctxs) expect(c.dpr_kind).toBe(c.gold ? 'positive' : 'hard_negative');
    });
    // First record, read by eye: "who sings does he love me with reba" -> Linda Davis; passage 11828866
    // is listed twice among the positives (score 1000 and 13.39) and kept once.
    expect(out[0]!.ctxs.filter((c) => c.id === '11828866')).toHaveLength(1);
    expect(out[0]!.ctxs.find((c) => c.id === '11828866')!.has_answer).toBe(true);
    expect(r.stderr).toMatch(/repeated DPR passages dropped: 4/);
  });
});

describe('prepare --from fid (NQ / TriviaQA)', () => {
  it('lost-in-the-middle oracle: gold = isgold, and DPR has_answer agrees with the raw hasanswer', () => {
    const r = prep('fid', NQ_ORACLE);
    ok(r);
    const out = readOut(r.out);
    const raw = readJsonl(NQ_ORACLE);
    expect(out).toHaveLength(200);
    let compared = 0;
    raw.forEach((rec, i) => {
      const ex = out[i]!;
      expect(ex.answers).toEqual(rec.answers);
      expect(ex.ctxs).toHaveLength(rec.ctxs.length);
      ex.ctxs.forEach((c) => {
        const src = rec.ctxs[c.retrieval_rank];
        expect(c.title).toBe(src.title);
        expect(c.gold).toBe(src.isgold);
        expect(c.raw_has_answer).toBe(src.hasanswer);
        // Documented: no disagreement on this file (docs/data.md).
        expect(c.has_answer).toBe(src.hasanswer);
        compared++;
      });
    });
    expect(compared).toBe(200);
    expect(r.stderr).toMatch(/raw has_answer labels 200, disagreeing with DPR's rule: 0/);
    // "who got the first nobel prize in physics" -> "Wilhelm Conrad Röntgen" (\u00f6 in the file).
    expect(out[0]!.target).toBe('Wilhelm Conrad Röntgen');
  });

  it('--pad brings the one-passage oracle records to --n-candidates', () => {
    const r = prep('fid', NQ_ORACLE, ['--pad', '--n-candidates', '5', '--limit', '20']);
    ok(r);
    const out = readOut(r.out);
    expect(out).toHaveLength(20);
    for (const ex of out) {
      expect(ex.ctxs).toHaveLength(5);
      expect(ex.ctxs.filter((c) => c.padded)).toHaveLength(4);
      expect(ex.ctxs.filter((c) => c.gold)).toHaveLength(1);
    }
  });

  it('raw NQ-open and raw TriviaQA have no passages: one-line error naming record and field', () => {
    for (const [file, line] of [
      [NQ_OPEN, 1],
      [TQA, 3],
    ] as const) {
      const r = prep('fid', file);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`error: ${file}: record 0 (line ${line}`);
      expect(r.stderr).toContain('field "ctxs" is missing');
      expect(existsSync(r.out)).toBe(false);
    }
    const r = prep('fid', NQ_OPEN, ['--skip-invalid']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/skipped\s+200\n\s+no contexts: 200/);
    expect(r.stderr).toContain('no example could be converted (200 skipped)');
    expect(existsSync(r.out)).toBe(false);
  });

  it("TriviaQA's {Data: [...]} layout is streamed and mapped as FiD does (answers = Aliases, target = Value)", () => {
    const raw = JSON.parse(readFileSync(TQA, 'utf8'));
    raw.Data[0].ctxs = [
      { id: '1', title: 'Sunset Boulevard (musical)', text: 'Sunset Boulevard is a musical with music by Andrew Lloyd Webber.', score: '80.1' },
      { id: '2', title: 'Whistle Down the Wind', text: 'Whistle Down the Wind is a musical by Andrew Lloyd Webber.', score: '79.5' },
    ];
    const file = join(work, 'tqa-with-ctxs.json');
    writeFileSync(file, JSON.stringify(raw, null, 2));
    const r = prep('fid', file);
    ok(r);
    const [ex] = readOut(r.out);
    expect(ex!.id).toBe('tc_33');
    expect(ex!.question).toBe('Which Lloyd Webber musical premiered in the US on 10th December 1993?');
    expect(ex!.answers).toEqual(raw.Data[0].Answer.Aliases);
    expect(ex!.target).toBe('Sunset Boulevard');
    // No gold labels in the file: gold falls back to has_answer.
    const byId = Object.fromEntries(ex!.ctxs.map((c) => [c.id, c]));
    expect([byId['1'].gold, byId['1'].has_answer, byId['2'].gold, byId['2'].has_answer]).toEqual([true, true, false, false]);
    expect(byId['1'].score).toBe('80.1');
  });
});

describe('determinism', () => {
  it('same seed, same bytes; another seed, another order of the same passages; --limit is a prefix', () => {
    const a = prep('musique', MUSIQUE_DEV, ['--seed', '7']);
    const b = prep('musique', MUSIQUE_DEV, ['--seed', '7']);
    const c = prep('musique', MUSIQUE_DEV, ['--seed', '8']);
    const d = prep('musique', MUSIQUE_DEV, ['--seed', '7', '--limit', '10']);
    for (const r of [a, b, c, d]) ok(r);
    const bytesA = readFileSync(a.out);
    expect(readFileSync(b.out).equals(bytesA)).toBe(true);
    expect(readFileSync(c.out).equals(bytesA)).toBe(false);
    const outA = readOut(a.out);
    const outC = readOut(c.out);
    let differentOrder = 0;
    outA.forEach((ex, i) => {
      const order = ex.ctxs.map((x) => x.idx).join(',');
      const other = outC[i]!.ctxs.map((x) => x.idx).join(',');
      if (order !== other) differentOrder++;
      expect(titlesOf(outC[i]!.ctxs)).toEqual(titlesOf(ex.ctxs));
    });
    expect(differentOrder).toBeGreaterThan(190);
    const prefix = readFileSync(d.out, 'utf8');
    expect(bytesA.toString('utf8').startsWith(prefix)).toBe(true);
    expect(prefix.split('\n')).toHaveLength(11);
    // Gold is spread over positions, not stuck at the front.
    const goldPositions = new Set(outA.flatMap((ex) => ex.ctxs.map((x, j) => (x.gold ? j : -1)).filter((j) => j >= 0)));
    expect(goldPositions.size).toBeGreaterThan(15);
  });

  it('hotpotqa and dpr are deterministic too', () => {
    for (const [from, file] of [
      ['hotpotqa', HOTPOT_DEV],
      ['dpr', NQ_DPR],
    ] as const) {
      const a = prep(from, file);
      const b = prep(from, file);
      expect(readFileSync(a.out).equals(readFileSync(b.out))).toBe(true);
    }
  });
});

describe('bad input', () => {
  const hotpotBytes = readFileSync(HOTPOT_DEV);
  const raw = JSON.parse(hotpotBytes.toString('utf8')) as any[];
  // Byte offset where record 30 starts in the compact file: a cut 1000 bytes later lands inside it.
  const start30 = hotpotBytes.indexOf(Buffer.from(`{"_id":"${raw[30]._id}"`));

  it('a truncated JSON array: error names the record; --skip-invalid keeps the whole records before it', () => {
    const file = join(work, 'hotpot-truncated.json');
    writeFileSync(file, hotpotBytes.subarray(0, start30 + 1000));
    const out = join(work, 'keep.jsonl');
    writeFileSync(out, 'already here\n');
    const r = prep('hotpotqa', file, [], out);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${file}: record 30 (line 1, byte ${start30}): truncated record (end of file inside it)\n`);
    // The existing output is untouched and no temporary file is left behind.
    expect(readFileSync(out, 'utf8')).toBe('already here\n');
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const s = prep('hotpotqa', file, ['--skip-invalid'], out);
    ok(s);
    expect(readOut(out)).toHaveLength(30);
    expect(s.stderr).toMatch(/records read\s+31\n\s+examples written\s+30\n\s+skipped\s+1\n\s+truncated: 1 \(first: .*record 30/);
  });

  it('a JSON array cut right after a record: that record counts, the missing "]" is reported', () => {
    const file = join(work, 'hotpot-unclosed.json');
    writeFileSync(file, hotpotBytes.subarray(0, start30 - 1)); // up to the end of record 29, before the ","
    const r = prep('hotpotqa', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/record 30 \(line 1, byte \d+\): truncated file \(end of file before the closing "\]"\)/);
    const s = prep('hotpotqa', file, ['--skip-invalid']);
    ok(s);
    expect(readOut(s.out)).toHaveLength(30);
  });

  it('a non-UTF-8 byte, a missing question, missing answers, empty contexts, invalid JSON in JSON lines', () => {
    const lines = readFileSync(MUSIQUE_DEV, 'utf8').split('\n').filter(Boolean).slice(0, 8);
    const recs = lines.map((l) => JSON.parse(l));
    delete recs[1].question;
    recs[3].answer = '';
    recs[4].paragraphs = [];
    const text = recs.map((x, i) => (i === 5 ? lines[5]!.slice(0, 200) + '}' : JSON.stringify(x)));
    const buf = Buffer.from(text.join('\n') + '\n', 'utf8');
    // Replace one byte of record 2 (line 3) by 0xff.
    const line3 = buf.indexOf(Buffer.from(text[2]!.slice(0, 40)));
    buf[line3 + 30] = 0xff;
    const file = join(work, 'musique-bad.jsonl');
    writeFileSync(file, buf);

    const r = prep('musique', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${file}: record 1 (line 2): field "question" is missing or empty\n`);

    const s = prep('musique', file, ['--skip-invalid']);
    ok(s);
    const out = readOut(s.out);
    expect(out.map((e) => e.id)).toEqual([recs[0].id, recs[6].id, recs[7].id]);
    expect(s.stderr).toMatch(/skipped\s+5\n/);
    expect(s.stderr).toContain(`missing question: 1 (first: ${file}: record 1 (line 2): field "question" is missing or empty)`);
    expect(s.stderr).toContain(`not valid UTF-8: 1 (first: ${file}: record 2 (line 3): not valid UTF-8 (byte 0xff at offset 30 of the record))`);
    expect(s.stderr).toContain(`missing answers: 1 (first: ${file}: record 3 (line 4): field "answer" is missing or empty)`);
    expect(s.stderr).toContain(`no contexts: 1 (first: ${file}: record 4 (line 5): field "paragraphs" is missing or empty)`);
    expect(s.stderr).toMatch(new RegExp(`invalid JSON: 1 \\(first: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: record 5 \\(line 6\\): invalid JSON`));
  });

  it('a non-UTF-8 byte inside a JSON array record', () => {
    const buf = Buffer.from(hotpotBytes);
    buf[start30 + 50] = 0xc3; // a lead byte followed by ASCII: invalid
    const file = join(work, 'hotpot-bad-utf8.json');
    writeFileSync(file, buf);
    const r = prep('hotpotqa', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${file}: record 30 (line 1, byte ${start30}): not valid UTF-8 (byte 0xc3 at offset 50 of the record)\n`);
    const s = prep('hotpotqa', file, ['--skip-invalid']);
    ok(s);
    expect(readOut(s.out)).toHaveLength(52);
  });

  it('a missing question in a JSON array, and files that are not JSON at all', () => {
    const bad = raw.slice(0, 3).map((x) => ({ ...x }));
    delete bad[1].question;
    const file = join(work, 'hotpot-noq.json');
    writeFileSync(file, JSON.stringify(bad));
    const r = prep('hotpotqa', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*hotpot-noq\.json: record 1 \(line 1, byte \d+\): field "question" is missing or empty\n$/);
    const s = prep('hotpotqa', file, ['--skip-invalid']);
    ok(s);
    expect(readOut(s.out)).toHaveLength(2);

    const junk = join(work, 'junk.txt');
    writeFileSync(junk, 'hello\n');
    const j = prep('hotpotqa', junk);
    expect(j.code).toBe(1);
    expect(j.stderr).toMatch(/^error: .*junk\.txt: expected a JSON array or JSON lines/);
    const missing = prep('hotpotqa', join(work, 'nope.json'));
    expect(missing.stderr).toMatch(/no such file/);
    expect(prep('nq', HOTPOT_DEV).code).not.toBe(0);
  });
});

describe('the streaming readers (records split across reads)', () => {
  async function collect(file: string, chunkSize: number): Promise<{ layout: string; recs: RawRecord[] }> {
    const { layout, records } = readRecords(file, undefined, chunkSize);
    const recs: RawRecord[] = [];
    for await (const r of records) recs.push(r);
    return { layout, recs };
  }
  const tricky = [
    { question: 'quotes " and \\ backslashes \\" and ] } [ { , inside strings', answers: ['\u00e9\n'], ctxs: [{ title: '', text: 'x' }] },
    { question: 'unicode 😀 Röntgen —', answers: ['a'], nested: [[[]], {}, { a: [1, 2, { b: '],' }] }] },
    { question: 'last', answers: ['z'], n: -1.5e3, t: true, f: null },
  ];
  const hotpot = JSON.parse(readFileSync(HOTPOT_DEV, 'utf8')) as any[];

  for (const chunkSize of [1, 2, 3, 7, 64, 4096]) {
    it(`JSON array, pretty array, TriviaQA wrapper and JSON lines give the same records with ${chunkSize}-byte reads`, async () => {
      const files = {
        array: join(work, `s-array-${chunkSize}.json`),
        pretty: join(work, `s-pretty-${chunkSize}.json`),
        wrapped: join(work, `s-wrapped-${chunkSize}.json`),
        jsonl: join(work, `s-lines-${chunkSize}.jsonl`),
      };
      writeFileSync(files.array, '\ufeff' + JSON.stringify(tricky));
      writeFileSync(files.pretty, JSON.stringify(tricky, null, 4) + '\n');
      writeFileSync(files.wrapped, JSON.stringify({ Version: 1, 'Da\\"ta': [[1]], Data: tricky, Domain: ['x'] }, null, 2));
      writeFileSync(files.jsonl, tricky.map((t) => JSON.stringify(t)).join('\r\n') + '\r\n\r\n');
      const layouts: Record<string, string> = { array: 'array', pretty: 'array', wrapped: 'wrapped', jsonl: 'jsonl' };
      for (const [kind, file] of Object.entries(files)) {
        const { layout, recs } = await collect(file, chunkSize);
        expect(layout, kind).toBe(layouts[kind]);
        expect(recs.map((r) => r.error?.message), kind).toEqual([undefined, undefined, undefined]);
        expect(recs.map((r) => r.value), kind).toEqual(tricky);
        expect(recs.map((r) => r.index)).toEqual([0, 1, 2]);
      }
      // Line numbers where records start.
      expect((await collect(files.jsonl, chunkSize)).recs.map((r) => r.line)).toEqual([1, 2, 3]);
      expect((await collect(files.pretty, chunkSize)).recs.map((r) => r.line)).toEqual([2, 14, 35]); // the lines of the records' opening braces
    });
  }

  it('the real HotpotQA file read in 1000-byte pieces equals JSON.parse of the whole', async () => {
    const { recs } = await collect(HOTPOT_DEV, 1000);
    expect(recs.map((r) => r.value)).toEqual(hotpot);
  });

  it('firstInvalidUtf8', () => {
    expect(firstInvalidUtf8(Buffer.from('aé😀€', 'utf8'))).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xff]))).toBe(1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc3]))).toBe(1); // cut multi-byte sequence
    expect(firstInvalidUtf8(Buffer.from([0xc0, 0x80]))).toBe(0); // overlong
    expect(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
    expect(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // above U+10FFFF
  });
});
