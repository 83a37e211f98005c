import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { DEMO_DEFAULTS, demoReader, type DemoOptions } from '../src/demo/demo.js';
import { removeDir, tempDir } from './helpers/cli.js';

/** The demo reader's two stages, at a toy size: what is trained, cached and reused. */
describe('the demo reader: first stage, then renamed and chain questions', () => {
  const out = tempDir('grerank-demo-reader-');
  beforeAll(() => initBackend('wasm', { quiet: true }));
  afterAll(() => removeDir(out));
  const opts = (lines: string[], renamedSteps: number): DemoOptions => ({
    ...DEMO_DEFAULTS,
    out,
    readerQuestions: 60,
    trainQuestions: 10,
    testQuestions: 5,
    readerSteps: 2,
    readerRenamedSteps: renamedSteps,
    readerBatchSize: 2,
    dModel: 16,
    log: (l) => lines.push(l),
  });
  const stamp = (dir: string) => JSON.parse(readFileSync(join(dir, 'reader.settings.json'), 'utf8')) as Record<string, unknown>;
  const lines = (file: string) => readFileSync(join(out, file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; question: string });

  it('trains both stages, reuses them when the settings match, and retrains only the second when only it changed', async () => {
    const first: string[] = [];
    const dir = await demoReader(opts(first, 2));
    expect(dir).toBe(join(out, 'reader'));
    expect(first.join('\n')).toMatch(/training a FiD reader from scratch[\s\S]*renamed entities and chain questions for 2 steps/);
    expect(stamp(dir).renamed).toEqual({ steps: 2, lr: 5e-4, chain: true });
    expect(stamp(dir).first).toEqual(stamp(join(out, 'reader-first')));
    // The second stage's questions: the first stage's, renamed, then the chain questions.
    const plain = lines('reader-train.jsonl');
    const renamed = lines('reader-train-renamed.jsonl');
    expect(renamed.length).toBeGreaterThan(plain.length);
    expect(renamed.slice(0, plain.length).map((x) => x.id)).toEqual(plain.map((x) => x.id));
    expect(renamed.filter((x, i) => i < plain.length && x.question !== plain[i]!.question).length).toBeGreaterThan(plain.length * 0.9);
    expect(renamed.slice(plain.length).every((x) => x.id.endsWith('-chain'))).toBe(true);
    const weights = (d: string) => readFileSync(join(d, 'model.safetensors'));
    expect(weights(dir).equals(weights(join(out, 'reader-first')))).toBe(false);

    const again: string[] = [];
    expect(await demoReader(opts(again, 2))).toBe(dir);
    expect(again.join('\n')).toContain(`reusing ${dir}`);
    expect(again.join('\n')).not.toMatch(/training (a FiD reader|it on)/);

    const longer: string[] = [];
    const firstWeights = weights(join(out, 'reader-first'));
    await demoReader(opts(longer, 3));
    expect(longer.join('\n')).toContain('reusing the first stage');
    expect(longer.join('\n')).toContain('for 3 steps');
    expect(longer.join('\n')).not.toContain('from scratch');
    expect(weights(join(out, 'reader-first')).equals(firstWeights)).toBe(true);
    expect(stamp(dir).renamed).toEqual({ steps: 3, lr: 5e-4, chain: true });

    // Without a second stage the first stage is the reader.
    const single: string[] = [];
    await demoReader(opts(single, 0));
    expect(single.join('\n')).toContain('from scratch');
    expect(existsSync(join(out, 'reader', 'model.safetensors'))).toBe(true);
    expect(stamp(join(out, 'reader')).renamed).toBeUndefined();
  }, 120_000);
});
