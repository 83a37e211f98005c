import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateExample } from '../src/data/examples.js';
import { grerank, removeDir, tempDir } from './helpers/cli.js';

const work = tempDir('grerank-synth-');
afterAll(() => removeDir(work));

const SPLITS = ['train', 'dev', 'test'] as const;
const FILES = ['train.jsonl', 'dev.jsonl', 'test.jsonl', 'vocab.txt', 'stats.json'];

interface Ctx {
  title: string;
  text: string;
  gold: boolean;
  has_answer: boolean;
  indirect: boolean;
}
interface Rec {
  id: string;
  question: string;
  target: string;
  answers: string[];
  type: 'bridge' | 'comparison';
  subtype: string;
  hops: number;
  entities: string[];
  bridge: string[];
  ctxs: Ctx[];
}

/** Lower-cased words (letters and digits); the test's own, independent of the generator. */
const words = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/** Case-insensitive whole-word match of a (multi-word) name in a text. */
function mentions(text: string, name: string): boolean {
  const t = words(text);
  const n = words(name);
  outer: for (let i = 0; i + n.length <= t.length; i++) {
    for (let j = 0; j < n.length; j++) if (t[i + j] !== n[j]) continue outer;
    return true;
  }
  return false;
}

function overlap(question: string, c: Ctx): number {
  const q = new Set(words(question));
  return new Set(words(`${c.title} ${c.text}`).filter((w) => q.has(w))).size;
}

function run(dir: string, args: string[]): { code: number; stderr: string } {
  const r = grerank(['synth', '--out', dir, ...args]);
  if (r.code !== 0) throw new Error(`grerank synth exited ${r.code}: ${r.stderr}`);
  return r;
}

function read(dir: string, split: string): Rec[] {
  return readFileSync(join(dir, `${split}.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as Rec);
}

const SMALL = ['--train', '300', '--dev', '60', '--test', '60', '--candidates', '12'];

describe('grerank synth: determinism and output', () => {
  it('is byte-identical for the same seed and differs for another seed', () => {
    const a = join(work, 'a');
    const b = join(work, 'b');
    const c = join(work, 'c');
    run(a, ['--seed', '5', ...SMALL]);
    run(b, ['--seed', '5', ...SMALL]);
    run(c, ['--seed', '6', ...SMALL]);
    for (const f of FILES) {
      expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
    }
    for (const f of ['train.jsonl', 'dev.jsonl', 'test.jsonl']) {
      expect(readFileSync(join(c, f)).equals(readFileSync(join(a, f))), f).toBe(false);
    }
    // Nothing but the five files, no temporary leftovers beside or inside.
    expect(readdirSync(a).sort()).toEqual([...FILES].sort());
    expect(readdirSync(work).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('writes into an existing directory, replacing earlier files atomically', () => {
    const dir = join(work, 'existing');
    mkdirSync(dir);
    run(dir, ['--seed', '1', ...SMALL]);
    const first = readFileSync(join(dir, 'train.jsonl'));
    run(dir, ['--seed', '2', ...SMALL]);
    expect(readFileSync(join(dir, 'train.jsonl')).equals(first)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual([...FILES].sort());
  });

  it('rejects bad options with one line and exit code 1', () => {
    for (const args of [['--candidates', '3'], ['--train', '-1'], ['--seed', 'x'], ['--train', '0', '--dev', '0', '--test', '0']]) {
      const dir = join(work, 'bad');
      const r = grerank(['synth', '--out', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^error: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(dir)).toBe(false);
    }
  });
});

describe('grerank synth: the default benchmark', () => {
  const dir = join(work, 'default');
  let stderr = '';
  const data = {} as Record<(typeof SPLITS)[number], Rec[]>;
  let all: Rec[] = [];
  let stats: any;
  beforeAll(() => {
    stderr = run(dir, []).stderr;
    for (const s of SPLITS) data[s] = read(dir, s);
    all = SPLITS.flatMap((s) => data[s]);
    stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8'));
  });

  it('has the requested sizes and a summary on stderr', () => {
    expect(data.train).toHaveLength(2000);
    expect(data.dev).toHaveLength(200);
    expect(data.test).toHaveLength(200);
    expect(stats.splits.train.questions).toBe(2000);
    expect(stats.candidates).toBe(20);
    expect(stderr).toMatch(/train\s+2000/);
    expect(stderr).toMatch(/vocabulary: \d+ words/);
    for (const s of SPLITS) {
      const types = new Set(data[s].map((r) => r.type));
      expect(types).toEqual(new Set(['bridge', 'comparison']));
    }
    expect(new Set(data.train.map((r) => r.subtype)).size).toBeGreaterThanOrEqual(15);
    expect(data.train.some((r) => r.type === 'bridge' && r.hops === 3)).toBe(true);
    expect(new Set(data.train.map((r) => r.id)).size).toBe(2000);
  });

  it('every record passes validateExample and has exactly N candidates', () => {
    for (const r of all) {
      const ex = validateExample(r, r.id);
      expect(ex.ctxs).toHaveLength(20);
      expect(r.answers).toEqual([r.target]);
    }
  });

  it('the answer appears in every has_answer passage and in no other passage; labels are consistent', () => {
    for (const r of all) {
      const golds = r.ctxs.filter((c) => c.gold);
      expect(golds, r.id).toHaveLength(r.hops);
      for (const c of r.ctxs) {
        const inText = mentions(c.text, r.target);
        expect(c.has_answer, `${r.id}: ${c.text}`).toBe(inText);
        if (!c.gold) expect(inText || mentions(c.title, r.target), `${r.id}: distractor ${c.text}`).toBe(false);
        expect(c.indirect).toBe(c.gold && !c.has_answer);
      }
      if (r.target === 'yes' || r.target === 'no') expect(r.ctxs.some((c) => c.has_answer)).toBe(false);
      else expect(golds.filter((c) => c.has_answer), r.id).toHaveLength(1);
    }
  });

  it('bridge questions: the indirect gold passages carry the chain through the bridge entities', () => {
    for (const r of all.filter((x) => x.type === 'bridge')) {
      const indirect = r.ctxs.filter((c) => c.indirect);
      const answer = r.ctxs.find((c) => c.has_answer)!;
      expect(r.bridge, r.id).toHaveLength(r.hops - 1);
      expect(indirect, r.id).toHaveLength(r.hops - 1);
      // Exactly one indirect gold passage links the question entity to the (first) bridge entity ...
      expect(indirect.filter((c) => mentions(c.text, r.entities[0]!) && mentions(c.text, r.bridge[0]!)), r.id).toHaveLength(1);
      if (r.hops === 2) expect(mentions(indirect[0]!.text, r.bridge[0]!)).toBe(true);
      // ... every indirect gold passage mentions a bridge entity and none the answer ...
      for (const c of indirect) expect(r.bridge.some((b) => mentions(c.text, b)), `${r.id}: ${c.text}`).toBe(true);
      // ... and the answer passage is about the last bridge entity.
      expect(mentions(answer.text, r.bridge[r.bridge.length - 1]!), `${r.id}: ${answer.text}`).toBe(true);
    }
  });

  it('comparison questions: both compared entities have a gold passage', () => {
    for (const r of all.filter((x) => x.type === 'comparison')) {
      expect(r.entities).toHaveLength(2);
      for (const e of r.entities) expect(r.ctxs.filter((c) => c.gold && mentions(c.text, e)), r.id).toHaveLength(1);
      if (r.target !== 'yes' && r.target !== 'no') expect(r.entities).toContain(r.target);
    }
    const yesNo = all.filter((r) => r.target === 'yes' || r.target === 'no');
    const yes = yesNo.filter((r) => r.target === 'yes').length;
    expect(yes / yesNo.length).toBeGreaterThan(0.35);
    expect(yes / yesNo.length).toBeLessThan(0.65);
  });

  it('distractors share entities and wording with the question; lexical overlap does not single out the indirect gold', () => {
    let indirectSum = 0;
    let indirectN = 0;
    let distractorSum = 0;
    let distractorN = 0;
    let topDistractorSum = 0;
    let indirectAbove = 0;
    let questions = 0;
    let sharing = 0;
    for (const r of data.train) {
      const names = [...r.entities, ...r.bridge];
      const distractors = r.ctxs.filter((c) => !c.gold);
      const indirect = r.ctxs.filter((c) => c.indirect);
      const dOv = distractors.map((c) => overlap(r.question, c));
      distractorSum += dOv.reduce((a, b) => a + b, 0);
      distractorN += dOv.length;
      const top = Math.max(...dOv);
      for (const c of distractors) if (names.some((n) => words(n).some((w) => words(`${c.title} ${c.text}`).includes(w)))) sharing++;
      if (indirect.length === 0) continue;
      questions++;
      topDistractorSum += top;
      const iOv = indirect.map((c) => overlap(r.question, c));
      indirectSum += iOv.reduce((a, b) => a + b, 0);
      indirectN += iOv.length;
      if (Math.max(...iOv) > top) indirectAbove++;
    }
    const meanIndirect = indirectSum / indirectN;
    const meanTop = topDistractorSum / questions;
    // Distractors do share question words, and most share a name word with the question's or the bridge's entities.
    expect(distractorSum / distractorN).toBeGreaterThan(1.5);
    expect(sharing / distractorN).toBeGreaterThan(0.5);
    // On average some distractor overlaps the question more than the indirect gold passage does,
    // and the indirect gold passage is the top passage by overlap in a minority of questions.
    expect(meanTop).toBeGreaterThan(meanIndirect);
    expect(indirectAbove / questions).toBeLessThan(0.35);
    // The generator's own statistics agree.
    expect(stats.splits.train.overlap.top_distractor).toBeGreaterThan(stats.splits.train.overlap.indirect_gold);
    expect(stats.splits.train.overlap.lexical_recall_at_5.answer).toBeLessThan(0.5);
  });

  it('splits ask about disjoint entities of one world', () => {
    const ents = Object.fromEntries(SPLITS.map((s) => [s, new Set(data[s].flatMap((r) => r.entities))])) as Record<string, Set<string>>;
    for (const [a, b] of [['train', 'dev'], ['train', 'test'], ['dev', 'test']] as const) {
      const shared = [...ents[a]!].filter((e) => ents[b]!.has(e));
      expect(shared, `${a}/${b}`).toEqual([]);
    }
    // The world is shared: test passages mention entities that train questions ask about.
    const trainEnts = [...ents.train!];
    expect(data.test.some((r) => r.ctxs.some((c) => trainEnts.some((e) => c.title === e)))).toBe(true);
  });

  it('texts are short, vocab.txt lists every word used, and stats.json counts match', () => {
    const vocab = readFileSync(join(dir, 'vocab.txt'), 'utf8').split('\n').filter((l) => l);
    expect(new Set(vocab).size).toBe(vocab.length);
    expect(vocab.length).toBe(stats.vocabulary.words);
    expect(vocab.length).toBeGreaterThan(200);
    expect(vocab.length).toBeLessThan(1500);
    const set = new Set(vocab);
    const token = /[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]/gu;
    const missing = new Set<string>();
    const used = new Set<string>();
    const qLen: number[] = [];
    const pLen: number[] = [];
    for (const r of all) {
      qLen.push(words(r.question).length);
      for (const t of [r.question, r.target, ...r.ctxs.flatMap((c) => [c.title, c.text])]) {
        for (const w of t.match(token) ?? []) {
          used.add(w);
          if (!set.has(w)) missing.add(w);
        }
      }
      for (const c of r.ctxs) pLen.push(words(c.text).length);
    }
    expect([...missing]).toEqual([]);
    expect(used.size).toBe(vocab.length);
    expect(Math.min(...qLen)).toBeGreaterThanOrEqual(6);
    expect(Math.max(...qLen)).toBeLessThanOrEqual(16);
    expect(Math.min(...pLen)).toBeGreaterThanOrEqual(8);
    expect(Math.max(...pLen)).toBeLessThanOrEqual(25);
    for (const s of SPLITS) {
      const st = stats.splits[s];
      expect(st.questions).toBe(data[s].length);
      expect(st.gold).toBe(data[s].reduce((a, r) => a + r.ctxs.filter((c) => c.gold).length, 0));
      expect(st.indirect).toBe(data[s].reduce((a, r) => a + r.ctxs.filter((c) => c.indirect).length, 0));
      expect(st.has_answer).toBe(data[s].reduce((a, r) => a + r.ctxs.filter((c) => c.has_answer).length, 0));
      expect(st.by_type.bridge + st.by_type.comparison).toBe(st.questions);
    }
  });
});
