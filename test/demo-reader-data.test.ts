import { describe, expect, it } from 'vitest';
import { readerTrainingLines } from '../src/demo/demo.js';
import { generateSynth, wordOverlap } from '../src/data/synth.js';

describe("the demo reader's training questions", () => {
  const train = generateSynth({ seed: 4, train: 60, dev: 0, test: 10, candidates: 20 }).splits.train;

  it('keep every gold passage, fill up to n with distractors (mostly look-alikes of the gold ones), deterministically', () => {
    const lines = readerTrainingLines(train, 6, 9).trim().split('\n').map((l) => JSON.parse(l) as (typeof train)[number]);
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
    expect(readerTrainingLines(train, 6, 9)).toBe(readerTrainingLines(train, 6, 9));
    expect(readerTrainingLines(train, 6, 10)).not.toBe(readerTrainingLines(train, 6, 9));
  });
});
