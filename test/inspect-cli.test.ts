import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyModelDir, grerank, removeDir, tempDir } from './helpers/cli.js';
import { CHECKPOINTS, golden, maxAbsDiff } from './helpers/shared.js';

// Tolerances from ../shared/refcheck/README.md.
const HIDDEN = 1e-4;
const PROB = 2e-5;
const GRAD = 1e-5;

const work = tempDir();
afterAll(() => removeDir(work));

function inspect(model: string, task: string, input: object): any {
  const inFile = join(work, `in-${task}-${Math.random().toString(36).slice(2)}.json`);
  const outFile = inFile.replace('in-', 'out-');
  writeFileSync(inFile, JSON.stringify(input));
  const r = grerank(['inspect', '--model', model, '--task', task, '--input', inFile, '--output', outFile]);
  if (r.code !== 0) throw new Error(`grerank inspect exited ${r.code}: ${r.stderr}`);
  return JSON.parse(readFileSync(outFile, 'utf8'));
}

function close(actual: { shape: number[]; data: number[] } | number, expected: { shape: number[]; data: number[] } | number, tol: number, what: string): void {
  if (typeof actual === 'number' || typeof expected === 'number') {
    expect(Math.abs((actual as number) - (expected as number)), what).toBeLessThanOrEqual(tol);
    return;
  }
  expect(actual.shape, what).toEqual(expected.shape);
  expect(maxAbsDiff(actual.data, expected.data), what).toBeLessThanOrEqual(tol);
}

const weightFiles = {
  safetensors: (f: string) => f !== 'pytorch_model.bin',
  bin: (f: string) => f !== 'model.safetensors',
};

for (const [format, keep] of Object.entries(weightFiles)) {
  describe(`grerank inspect on ${format} weights`, () => {
    for (const name of ['t5-fid-tiny', 't5-v11-tiny']) {
      const g = golden(name);
      const dir = copyModelDir(join(CHECKPOINTS, name), keep);
      afterAll(() => removeDir(dir));

      it(`${name}: seq2seq outputs match transformers`, () => {
        const s = g.seq2seq;
        const o = inspect(dir, 'seq2seq', { input_ids: s.input_ids, attention_mask: s.attention_mask, labels: s.labels });
        close(o.encoder_last_hidden_state, s.encoder_last_hidden_state, HIDDEN, 'encoder_last_hidden_state');
        close(o.logits, s.logits, HIDDEN, 'logits');
        close(o.loss, s.loss, PROB, 'loss');
        close(o.per_token_nll, s.per_token_nll, PROB, 'per_token_nll');
        close(o.cross_attention_last_layer, s.cross_attention_last_layer, PROB, 'cross_attention_last_layer');
      });

      it(`${name}: fid with a passage mask matches, with d loss / d m`, () => {
        const f = g.fid;
        const plain = inspect(dir, 'fid', { input_ids: f.input_ids, attention_mask: f.attention_mask, labels: f.labels });
        close(plain.encoder_last_hidden_state, f.encoder_concat, HIDDEN, 'encoder_concat');
        close(plain.logits, f.logits, HIDDEN, 'logits');
        close(plain.loss, f.loss, PROB, 'loss');
        close(plain.per_token_nll, f.per_token_nll, PROB, 'per_token_nll');
        close(plain.cross_attention_last_layer, f.cross_attention_last_layer, PROB, 'cross_attention_last_layer');
        expect(plain.dloss_dm).toBeUndefined();
        const o = inspect(dir, 'fid', { input_ids: f.input_ids, attention_mask: f.attention_mask, labels: f.labels, m: g.dma.m });
        close(o.loss, g.dma.loss, PROB, 'dma loss');
        close(o.logits, g.dma.logits, HIDDEN, 'dma logits');
        close(o.dloss_dm, g.dma.dloss_dm, GRAD, 'dloss_dm');
        close(o.cross_attention_last_layer, g.dma.cross_attention_last_layer, PROB, 'dma cross_attention_last_layer');
      });

      it(`${name}: rankt5 score matches`, () => {
        const r = g.rankt5;
        const o = inspect(dir, 'rankt5', { input_ids: r.input_ids, attention_mask: r.attention_mask, token_id: r.token_id });
        close(o.score, r.score, PROB, 'score');
      });
    }

    it('xlmr-ce-tiny: cross-encoder logits match', () => {
      const g = golden('xlmr-ce-tiny');
      const dir = copyModelDir(join(CHECKPOINTS, 'xlmr-ce-tiny'), keep);
      try {
        const o = inspect(dir, 'cross-encoder', { input_ids: g.input_ids, attention_mask: g.attention_mask });
        close(o.logits, g.logits, HIDDEN, 'logits');
      } finally {
        removeDir(dir);
      }
    });
  });
}

describe('grerank inspect on bad input: one line, non-zero exit, no output file', () => {
  const model = join(CHECKPOINTS, 't5-fid-tiny');
  const g = golden('t5-fid-tiny');
  const good = { input_ids: g.seq2seq.input_ids, attention_mask: g.seq2seq.attention_mask, labels: g.seq2seq.labels };

  function fails(args: string[], inputText: string | null, pattern: RegExp): void {
    const inFile = join(work, `bad-${Math.random().toString(36).slice(2)}.json`);
    const outFile = `${inFile}.out`;
    if (inputText !== null) writeFileSync(inFile, inputText);
    const r = grerank(['inspect', ...args, '--input', inFile, '--output', outFile]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('[grerank]'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(() => readFileSync(outFile)).toThrow();
  }

  it('missing model directory', () => fails(['--model', '/nonexistent/model', '--task', 'seq2seq'], JSON.stringify(good), /\/nonexistent\/model: model directory does not exist/));
  it('missing input file', () => fails(['--model', model, '--task', 'seq2seq'], null, /bad-.*\.json: no such file/));
  it('truncated JSON', () => fails(['--model', model, '--task', 'seq2seq'], JSON.stringify(good).slice(0, 50), /bad-.*\.json.*invalid JSON/));
  it('non-UTF-8 input', () => {
    const inFile = join(work, 'latin1.json');
    writeFileSync(inFile, Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]));
    const r = grerank(['inspect', '--model', model, '--task', 'seq2seq', '--input', inFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/latin1\.json: not valid UTF-8/);
  });
  it('missing tensor', () => fails(['--model', model, '--task', 'seq2seq'], JSON.stringify({ input_ids: good.input_ids, attention_mask: good.attention_mask }), /missing tensor "labels"/));
  it('data that does not fill the shape', () =>
    fails(['--model', model, '--task', 'seq2seq'], JSON.stringify({ ...good, attention_mask: { shape: [2, 10], data: [1, 1] } }), /"attention_mask" has 2 values, but shape \[2, 10\] needs 20/));
  it('token ids outside the vocabulary', () =>
    fails(['--model', model, '--task', 'seq2seq'], JSON.stringify({ ...good, input_ids: { shape: [2, 10], data: Array(20).fill(999) } }), /"input_ids".data\[0\] = 999 is outside the model's vocabulary \[0, 512\)/));
  it('unknown task', () => fails(['--model', model, '--task', 'translate'], JSON.stringify(good), /--task "translate" is not one of/));
  it('a model directory of another architecture', () => fails(['--model', join(CHECKPOINTS, 'xlmr-ce-tiny'), '--task', 'seq2seq'], JSON.stringify(good), /config\.json: model_type is "xlm-roberta", expected "t5"/));
});
