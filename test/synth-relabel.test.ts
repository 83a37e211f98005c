import { describe, expect, it } from 'vitest';
import { hasAnswer } from '../src/data/answers.js';
import { generateSynth, relabelEntities, type SynthExample } from '../src/data/synth.js';
import { Rng } from '../src/util/rng.js';

describe('relabelEntities: examples with their entities renamed', () => {
  const synth = generateSynth({ seed: 3, train: 80, dev: 0, test: 0, candidates: 12 });
  const pools = synth.names;
  const poolOf = new Map<string, string>();
  for (const [name, words] of Object.entries(pools)) for (const w of words) poolOf.set(w, name);
  const words = (t: string) => t.match(/[\p{L}\p{N}]+/gu) ?? [];
  /** The text with every name word replaced by its pool's name: what renaming must keep. */
  const shape = (t: string) => t.replace(/[\p{L}\p{N}]+/gu, (w) => (poolOf.has(w) ? `<${poolOf.get(w)}>` : w));
  const texts = (ex: SynthExample) => [ex.question, ex.target, ...ex.answers, ...ex.ctxs.flatMap((c) => [c.title, c.text])];

  it('the pools are disjoint, hold every capitalised name word of the texts, and no lower-case template word', () => {
    const all = Object.values(pools).flat();
    expect(new Set(all).size).toBe(all.length);
    expect(all.every((w) => /^\p{Lu}/u.test(w))).toBe(true);
    // Titles are entity names: all name words, but for a company's industry suffix (its last word).
    const suffixes = new Set<string>();
    for (const ex of synth.splits.train) for (const c of ex.ctxs) {
      const w = words(c.title);
      expect(w.slice(0, -1).every((x) => poolOf.has(x))).toBe(true);
      if (!poolOf.has(w.at(-1)!)) suffixes.add(w.at(-1)!);
    }
    expect(suffixes.size).toBeGreaterThan(0);
    expect(suffixes.size).toBeLessThanOrEqual(8);
  });

  it('renames one-to-one within each pool, keeps every template word, and keeps the labels true', () => {
    const rng = new Rng(7);
    let renamed = 0;
    for (const ex of synth.splits.train) {
      const r = relabelEntities(ex, pools, rng);
      // Same shape: only name words changed, each into a word of its own pool.
      expect(texts(r).map(shape)).toEqual(texts(ex).map(shape));
      // One consistent bijection for the whole example.
      const fwd = new Map<string, string>();
      const back = new Map<string, string>();
      texts(ex).forEach((t, i) => {
        const a = words(t), b = words(texts(r)[i]!);
        a.forEach((w, j) => {
          if (!poolOf.has(w)) return;
          expect(fwd.get(w) ?? b[j]).toBe(b[j]);
          expect(back.get(b[j]!) ?? w).toBe(w);
          fwd.set(w, b[j]!);
          back.set(b[j]!, w);
          if (w !== b[j]) renamed++;
        });
      });
      // has_answer by DPR's rule on the renamed texts is the flag the example carries.
      for (const c of r.ctxs) expect(hasAnswer(r.answers, c.text)).toBe(c.has_answer);
      expect(r.ctxs.map((c) => [c.gold, c.indirect])).toEqual(ex.ctxs.map((c) => [c.gold, c.indirect]));
      expect(r.answers).toContain(r.target);
      if (ex.type === 'bridge') expect(r.ctxs.filter((c) => c.indirect).some((c) => r.bridge.some((b) => `${c.title} ${c.text}`.includes(b)))).toBe(true);
    }
    expect(renamed).toBeGreaterThan(1000);
  });

  it('draws new names on every call, deterministically for a seed', () => {
    const ex = synth.splits.train[0]!;
    const a = relabelEntities(ex, pools, new Rng(1)), b = relabelEntities(ex, pools, new Rng(1)), c = relabelEntities(ex, pools, new Rng(2));
    expect(a).toEqual(b);
    expect(c.question).not.toBe(a.question);
    expect(a.question).not.toBe(ex.question);
  });
});
