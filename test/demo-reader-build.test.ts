import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { DEMO_DEFAULTS, demoReader, runDemo, type DemoOptions } from '../src/demo/demo.js';
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

  it('runs the demo on a reader given with --reader, of another shape than the demo config, and refuses one on another tokenizer', async () => {
    // A 16-d reader trained on this data's tokenizer, given to a run whose own config is 24-d:
    // the given reader is used as is (no training), and the reranker starts from its T5.
    const given = join(out, 'given-reader');
    cpSync(await demoReader(opts([], 0)), given, { recursive: true });
    const run = join(out, 'run-given');
    const lines: string[] = [];
    const o: DemoOptions = { ...opts(lines, 0), out: run, dModel: 24, reader: given, methods: ['gumbel'], rerankerSteps: 2, workers: 1, batchSize: 1, evalLimit: 3, generate: false, backend: 'wasm' };
    const r = await runDemo(o);
    expect(lines.join('\n')).toContain(`reader: using ${given} (d_model 16, 2+2 layers)`);
    expect(lines.join('\n')).not.toMatch(/training a FiD reader/);
    expect(existsSync(join(run, 'reader'))).toBe(false);
    const shape = (d: string) => (JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as { d_model: number }).d_model;
    expect(shape(join(run, 'reranker-untrained'))).toBe(16);
    expect(readFileSync(join(run, 'reranker-untrained', 'model.safetensors')).length).toBe(readFileSync(join(given, 'model.safetensors')).length);
    expect(r.results.map((x) => x.method)).toEqual(['retriever order', 'untrained reranker', 'G-Rerank']);
    expect(shape(join(run, 'gumbel', 'reranker'))).toBe(16);

    // A reader on another vocabulary would read other words: one line naming the file.
    const other = join(out, 'other-reader');
    cpSync(given, other, { recursive: true });
    const tok = JSON.parse(readFileSync(join(other, 'tokenizer.json'), 'utf8')) as { model: { vocab: Array<[string, number]> } };
    tok.model.vocab.push(['zzzextra', -20]);
    writeFileSync(join(other, 'tokenizer.json'), JSON.stringify(tok));
    await expect(runDemo({ ...o, reader: other })).rejects.toThrow(`--reader ${other}: its tokenizer.json is not this demo's`);
    await expect(runDemo({ ...o, reader: join(out, 'nowhere') })).rejects.toThrow(`--reader ${join(out, 'nowhere')}: no model.safetensors`);
  }, 180_000);
});
