import { describe, expect, it } from 'vitest';
import { readerTrainingExamples, readerTrainingLines } from '../src/demo/reader-data.js';
import { generateSynth, wordOverlap } from '../src/data/synth.js';

describe("the demo reader's training questions", () => {
  const train = generateSynth({ seed: 4, train: 60, dev: 0, test: 10, candidates: 20 }).splits.train;

  it('keep every gold passage, fill up to n with distractors (mostly look-alikes of the gold ones), deterministically', () => {
    const lines = readerTrainingLines(train, { passages: 6, seed: 9 }).trim().split('\n').map((l) => JSON.parse(l) as (typeof train)[number]);
    expect(lines).toHaveLength(train.length);
    let hardSeen = 0;
    lines.forEach((ex, i) => {
      const src = train[i]!;
      expect(ex.question).toBe(src.question);
      expect(ex.ctxs).toHaveLength(6);
      const key = (c: { title: string; text: string }) => `${c.title}|${c.text}`;
      const golds = src.ctxs.filter((c) => c.gold).map(key).sort();
      expect(ex.ctxs.filter((c) => c.gold).map(key).sort()).toEqual(golds);
      // Every passage comes from the question's own candidates, none twice.
      const own = new Set(src.ctxs.map(key));
      expect(ex.ctxs.every((c) => own.has(key(c)))).toBe(true);
      expect(new Set(ex.ctxs.map(key)).size).toBe(6);
      // The distractor most like a gold passage (most shared words) is always among them.
      const goldTexts = src.ctxs.filter((c) => c.gold).map((g) => `${g.title} ${g.text}`);
      const like = (c: { title: string; text: string }) => Math.max(...goldTexts.map((g) => wordOverlap(g, c)));
      const others = src.ctxs.filter((c) => !c.gold);
      const best = Math.max(...others.map(like));
      expect(ex.ctxs.filter((c) => !c.gold).some((c) => like(c) === best)).toBe(true);
      // And the chosen ones are more alike than the candidates on average.
      const chosen = ex.ctxs.filter((c) => !c.gold).map(like);
      hardSeen += chosen.reduce((a, b) => a + b, 0) / chosen.length - others.map(like).reduce((a, b) => a + b, 0) / others.length;
    });
    expect(hardSeen / lines.length).toBeGreaterThan(1);
    expect(readerTrainingLines(train, { passages: 6, seed: 9 })).toBe(readerTrainingLines(train, { passages: 6, seed: 9 }));
    expect(readerTrainingLines(train, { passages: 6, seed: 10 })).not.toBe(readerTrainingLines(train, { passages: 6, seed: 9 }));
  });
});

describe("the demo reader's renamed and chain questions", () => {
  const synth = generateSynth({ seed: 4, train: 300, dev: 0, test: 10, candidates: 20 });
  const train = synth.splits.train;
  const PROF: Record<string, string> = { director_birthplace: 'film director', star_birthplace: 'actor', writer_birthplace: 'writer' };

  it('chain questions: the answer passage, the bridge, and births of other people of the same profession', () => {
    const plain = readerTrainingExamples(train, { passages: 6, seed: 9 });
    const withChain = readerTrainingExamples(train, { passages: 6, seed: 9, chain: true });
    // The look-alike questions come first, unchanged.
    expect(withChain.slice(0, train.length)).toEqual(plain);
    const chain = withChain.slice(train.length);
    const birthplace = train.filter((q) => q.subtype in PROF && q.hops === 2);
    expect(chain.length).toBe(birthplace.length);
    expect(chain.length).toBeGreaterThan(20);
    chain.forEach((ex, i) => {
      const src = birthplace[i]!;
      expect(ex.question).toBe(src.question);
      expect(ex.ctxs).toHaveLength(6);
      const answer = src.ctxs.find((c) => c.gold && c.has_answer)!;
      const bridge = src.ctxs.find((c) => c.indirect)!;
      expect(ex.ctxs.filter((c) => c.gold).map((c) => c.text).sort()).toEqual([answer.text, bridge.text].sort());
      const others = ex.ctxs.filter((c) => !c.gold);
      expect(others).toHaveLength(4);
      for (const c of others) {
        // Another person's birth, of the question's profession; never the answer.
        expect(c.text).toMatch(/\b[Bb]orn\b/);
        expect(c.text).toContain(PROF[src.subtype]!);
        expect(c.text).not.toContain(src.target);
        expect(c.has_answer || c.indirect).toBe(false);
      }
      expect(new Set(ex.ctxs.map((c) => c.text)).size).toBe(6);
    });
  });

  it('renamed questions say the same with other names, one example at a time', () => {
    const base = readerTrainingExamples(train, { passages: 6, seed: 9, chain: true });
    const renamed = readerTrainingExamples(train, { passages: 6, seed: 9, chain: true, names: synth.names });
    expect(renamed).toHaveLength(base.length);
    const nameWords = new Set(Object.values(synth.names).flat());
    const shape = (t: string) => t.replace(/[\p{L}\p{N}]+/gu, (w) => (nameWords.has(w) ? '#' : w));
    let changed = 0;
    renamed.forEach((ex, i) => {
      const b = base[i]!;
      expect(shape(ex.question)).toBe(shape(b.question));
      expect(ex.ctxs.map((c) => shape(c.text))).toEqual(b.ctxs.map((c) => shape(c.text)));
      expect(ex.ctxs.map((c) => [c.gold, c.has_answer])).toEqual(b.ctxs.map((c) => [c.gold, c.has_answer]));
      if (ex.target !== b.target) changed++;
    });
    // Yes/no and year answers keep their words; names almost never map to themselves.
    expect(changed / renamed.length).toBeGreaterThan(0.8);
    // The same city is the answer of different questions under different names.
    const asked = new Map<string, Set<string>>();
    base.forEach((b, i) => (asked.get(b.target) ?? asked.set(b.target, new Set()).get(b.target)!).add(renamed[i]!.target));
    expect(Math.max(...[...asked.values()].map((s) => s.size))).toBeGreaterThan(5);
  });
});
