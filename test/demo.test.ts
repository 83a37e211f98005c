import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, runDemo, SHIPPED_READER, type DemoOptions } from '../src/demo/demo.js';
import { removeDir, tempDir } from './helpers/cli.js';

const STEPS = 40;
/** All 200 test questions: 52 indirect passages of comparison questions, enough to compare. */
const EVAL_QUESTIONS = 200;

/**
 * A reduced `npm start`: the default benchmark and the shipped reader, two methods for a short
 * budget through the launcher with 2 CPU workers, ranking metrics on part of the test
 * questions, then the same command again (what a user does after stopping it), which must
 * reuse the finished training instead of repeating it.
 */
describe.skipIf(!existsSync(join(SHIPPED_READER, 'model.safetensors')))('the demo, reduced', () => {
  const out = tempDir();
  afterAll(() => removeDir(out));
  const opts = (lines: string[]): DemoOptions => ({
    ...DEMO_DEFAULTS,
    out,
    methods: ['gumbel', 'pdist'],
    rerankerSteps: STEPS,
    evalLimit: EVAL_QUESTIONS,
    generate: false,
    backend: 'wasm',
    log: (l) => lines.push(l),
  });

  it('trains G-Rerank and a baseline through the launcher, evaluates all, and a rerun reuses the trained rerankers', async () => {
    const lines: string[] = [];
    const r = await runDemo(opts(lines));
    expect(lines.join('\n')).toContain('using the shipped reader');
    expect(r.results.map((x) => x.method)).toEqual(['retriever order', 'untrained reranker', 'G-Rerank', 'PDist']);
    for (const x of r.results) {
      expect(x.counts.questions).toBe(EVAL_QUESTIONS);
      for (const m of ['R@5', 'NDCG@5', 'MRR', 'indirect R@5', 'bridge answer R@5', 'bridge indirect R@5', 'comparison indirect R@5']) {
        expect(x.metrics[m]).toBeGreaterThanOrEqual(0);
        expect(x.metrics[m]).toBeLessThanOrEqual(1);
      }
    }
    // G-Rerank learned from the reader's loss alone: its top-5 holds clearly more gold passages
    // than the untrained reranker's (measured at 40 steps: see docs/demo.md), and its sampling
    // distribution sharpened (the paper's Figure 4 signal).
    const [, untrained, gumbel] = r.results;
    for (const x of r.results) process.stderr.write(`[demo test] ${x.method}: ${['indirect R@5', 'bridge answer R@5', 'bridge indirect R@5', 'comparison answer R@5', 'comparison indirect R@5'].map((m) => `${m} ${x.metrics[m]}`).join(', ')}\n`);
    process.stderr.write(`[demo test] R@5 untrained ${untrained!.metrics['R@5']} G-Rerank ${gumbel!.metrics['R@5']}; indirect R@5 ${untrained!.metrics['indirect R@5']} / ${gumbel!.metrics['indirect R@5']}\n`);
    expect(gumbel!.metrics['R@5']!).toBeGreaterThan(untrained!.metrics['R@5']! + 0.1);
    // Indirectly relevant passages: on comparison questions ("Who was born first, A or B?") the
    // passage about the entity that is not the answer holds no answer, yet the reader needs it,
    // and G-Rerank learns to rank it (measured: 7.7% -> 23.1% of those 52 passages at 40 steps,
    // 53.8% at the full 150). Bridge passages are not asserted: the demo reader barely uses them
    // and every trained reranker ranks them lower than the untrained one does (docs/demo.md).
    expect(gumbel!.metrics['comparison indirect R@5']!).toBeGreaterThan(untrained!.metrics['comparison indirect R@5']! + 0.1);
    const points = JSON.parse(readFileSync(join(out, 'gumbel', 'curve.json'), 'utf8')) as Array<{ maxWeight: number }>;
    const mean = (xs: Array<{ maxWeight: number }>) => xs.reduce((a, p) => a + p.maxWeight, 0) / xs.length;
    process.stderr.write(`[demo test] max sampling weight: first 5 steps ${mean(points.slice(0, 5))}, last 5 ${mean(points.slice(-5))}\n`);
    expect(mean(points.slice(-5))).toBeGreaterThan(mean(points.slice(0, 5)) + 0.05);
    const saved = JSON.parse(readFileSync(r.resultsFile, 'utf8')) as Array<{ method: string; metrics: Record<string, number | null> }>;
    expect(saved.map((x) => x.method)).toEqual(r.results.map((x) => x.method));
    expect(readFileSync(r.curvesFile, 'utf8')).toContain('G-Rerank: max sampling weight');
    for (const m of ['gumbel', 'pdist']) {
      expect(readFileSync(join(out, m, 'checkpoints', 'latest'), 'utf8').trim()).toBe(`step-${String(STEPS).padStart(6, '0')}`);
      const curve = JSON.parse(readFileSync(join(out, m, 'curve.json'), 'utf8')) as Array<{ step: number }>;
      expect(curve.map((p) => p.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    }
    const weights = readFileSync(join(out, 'gumbel', 'reranker', 'model.safetensors'));

    // The same command again: every method resumes from its final checkpoint (no step is run
    // twice), so the weights, the curves and the table stay the same.
    const again: string[] = [];
    const r2 = await runDemo(opts(again));
    expect(again.join('\n')).toMatch(/G-Rerank: resumed from \S+step-0000(\d+) \(step (\d+)\)/);
    expect(readFileSync(join(out, 'gumbel', 'reranker', 'model.safetensors')).equals(weights)).toBe(true);
    expect(r2.table).toBe(r.table);
    const curve = JSON.parse(readFileSync(join(out, 'gumbel', 'curve.json'), 'utf8')) as Array<{ step: number }>;
    expect(curve).toHaveLength(STEPS);
  }, 600_000);
});
