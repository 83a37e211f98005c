import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { xlmrTestTokenizerJson } from '../src/io/tokenizer.js';
import { copyModelDir, grerank, removeDir, tempDir } from './helpers/cli.js';
import { CHECKPOINTS } from './helpers/shared.js';
import { TINY_WORDS, tinyT5Model, writeTinyQa } from './helpers/tiny.js';

const WORDS = TINY_WORDS;
const work = tempDir();
const model = tinyT5Model(WORDS);
afterAll(() => {
  removeDir(work);
  removeDir(model);
});

const dataset = (file: string, count: number): void => writeTinyQa(file, count);

describe('grerank train (single process)', () => {
  it('trains a RankT5-style reranker and writes it as a Hugging Face directory', () => {
    const data = join(work, 'train.jsonl');
    dataset(data, 4);
    const out = join(work, 'run');
    const r = grerank(['train', '--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', '4', '--batch-size', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--lr', '1e-3', '--log-every', '1', '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events).toHaveLength(4);
    expect(events.every((e) => Number.isFinite(e.loss) && e.max_weight > 0)).toBe(true);
    const saved = readSafetensors(join(out, 'reranker', 'model.safetensors'));
    const original = readSafetensors(join(model, 'model.safetensors'));
    expect([...saved.keys()].sort()).toEqual([...original.keys()].sort());
    // Trained: the weights moved, in the checkpoint's own layout.
    const q = 'encoder.block.0.layer.0.SelfAttention.q.weight';
    expect(saved.get(q)!.shape).toEqual(original.get(q)!.shape);
    expect(saved.get(q)!.data).not.toEqual(original.get(q)!.data);
    expect(existsSync(join(out, 'reranker', 'config.json'))).toBe(true);
    expect(existsSync(join(out, 'reranker', 'tokenizer.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8')).gumbel).toEqual({ k: 2, tau: 0.5, kappa: 1 });
  });

  it('trains a BGE-style XLM-R cross-encoder the same way', () => {
    const data = join(work, 'train-ce.jsonl');
    dataset(data, 2);
    const ce = copyModelDir(join(CHECKPOINTS, 'xlmr-ce-tiny'), (f) => f !== 'pytorch_model.bin');
    writeFileSync(join(ce, 'tokenizer.json'), xlmrTestTokenizerJson(WORDS));
    try {
      const out = join(work, 'run-ce');
      const r = grerank(['train', '--reader', model, '--reranker', ce, '--freeze-embeddings', '--data', data, '--out', out, '--steps', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '40', '--answer-maxlength', '6', '--lr', '1e-3']);
      expect(r.code, r.stderr).toBe(0);
      const saved = readSafetensors(join(out, 'reranker', 'model.safetensors'));
      const original = readSafetensors(join(ce, 'model.safetensors'));
      const w = 'classifier.out_proj.weight';
      expect(saved.get(w)!.shape).toEqual(original.get(w)!.shape);
      expect(saved.get(w)!.data).not.toEqual(original.get(w)!.data);
      // --freeze-embeddings: the word-embedding table is exported unchanged.
      const e = 'roberta.embeddings.word_embeddings.weight';
      expect(saved.get(e)!.data).toEqual(original.get(e)!.data);
    } finally {
      removeDir(ce);
    }
  });

  it.each(['emdr', 'pdist', 'loop', 'adist'])('trains with the %s baseline through the same command', (method) => {
    const data = join(work, `train-${method}.jsonl`);
    dataset(data, 2);
    const out = join(work, `run-${method}`);
    const r = grerank(['train', '--method', method, '--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', '2', '--n-passages', '5', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--lr', '1e-3', '--log-format', 'json', '--log-every', '1']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events).toHaveLength(2);
    expect(events.every((e) => Number.isFinite(e.loss) && e.max_weight > 0 && e.max_weight <= 1)).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8')).method).toBe(method);
  });

  it('Algorithm 2: learns per-document weights without a reranker', () => {
    const data = join(work, 'one.jsonl');
    dataset(data, 1);
    const out = join(work, 'weights');
    const r = grerank(['train', '--method', 'weights', '--reader', model, '--data', data, '--out', out, '--steps', '5', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--answer-maxlength', '6', '--lr', '0.1']);
    expect(r.code, r.stderr).toBe(0);
    const w = JSON.parse(readFileSync(join(out, 'weights.json'), 'utf8'));
    expect(w).toHaveLength(1);
    expect(w[0].weights).toHaveLength(5);
    expect(w[0].weights.some((x: number) => x !== 0)).toBe(true);
    expect([...w[0].ranking].sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('--accumulation-steps: micro-batches per update, recorded in the config; a bad value is one line', () => {
    const data = join(work, 'acc.jsonl');
    dataset(data, 4);
    const out = join(work, 'acc');
    const args = ['train', '--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', '2', '--batch-size', '1', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--log-every', '1', '--log-format', 'json'];
    const r = grerank([...args, '--accumulation-steps', '2']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events.map((e) => e.step)).toEqual([1, 2]);
    expect(JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8')).accumulationSteps).toBe(2);
    const bad = grerank([...args, '--accumulation-steps', '0']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: option '--accumulation-steps <n>' argument '0' is invalid/m);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    const reader = grerank(['train', '--train', 'reader', '--reader', model, '--data', data, '--out', join(work, 'acc-r'), '--steps', '1', '--accumulation-steps', '2']);
    expect(reader.stderr).toContain('error: --accumulation-steps applies to reranker training only (not --train reader)');
  });

  it('rejects bad data with one line naming the file, the line and the field', () => {
    const data = join(work, 'bad.jsonl');
    writeFileSync(data, JSON.stringify({ question: 'q?', answers: ['a'], ctxs: [{ title: 't', text: 'x' }] }) + '\n' + JSON.stringify({ question: 'q?', answers: [], ctxs: [] }) + '\n');
    const r = grerank(['train', '--reader', model, '--reranker', model, '--data', data, '--out', join(work, 'bad'), '--steps', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('[grerank]'))).toEqual([`error: ${data}:2: field "answers" must be a non-empty list of strings`]);
    writeFileSync(data, '{"question": "q?", "answers": ["a"], "ctxs": [{"text": "\xe9"}]}\n');
    writeFileSync(data, Buffer.concat([Buffer.from('{"question": "q'), Buffer.from([0xff]), Buffer.from('?", "answers": ["a"], "ctxs": [{"text": "x"}]}\n')]));
    const r2 = grerank(['train', '--reader', model, '--reranker', model, '--data', data, '--out', join(work, 'bad'), '--steps', '1']);
    expect(r2.stderr).toContain(`error: ${data}:1: not valid UTF-8`);
    const r3 = grerank(['train', '--reader', model, '--data', data, '--out', join(work, 'bad')]);
    expect(r3.stderr).toContain('error: --reranker is required for method gumbel');
  });
});
