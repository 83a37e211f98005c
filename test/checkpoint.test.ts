import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { GrerankError } from '../src/errors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadReranker } from '../src/models/load.js';
import { rawToTensor } from '../src/models/params.js';
import { configDifferences, COMPLETE_MARKER, EXIT_PREEMPTED, FORMAT_VERSION, resolveResume, saveCheckpoint, type CheckpointState } from '../src/train/checkpoint.js';
import { grerank, removeDir, tempDir } from './helpers/cli.js';
import { TINY_WORDS, tinyT5Model, writeTinyQa } from './helpers/tiny.js';

const work = tempDir();
const model = tinyT5Model(TINY_WORDS);
const data = join(work, 'train.jsonl');
writeTinyQa(data, 3, { answers: (i) => [`person ${i}`, `director ${i}`] });
beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});
afterAll(() => {
  removeDir(work);
  removeDir(model);
});

/** 3 examples in batches of 2: 6 steps cross two epoch boundaries, one of them mid-batch. */
function train(out: string, extra: string[] = [], env?: Record<string, string>) {
  return grerank(
    ['train', '--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', '6', '--batch-size', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--lr', '1e-3', '--backend', 'wasm', ...extra],
    { env },
  );
}

const latest = (out: string) => readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim();
const complete = (out: string) => readdirSync(join(out, 'checkpoints')).filter((n) => existsSync(join(out, 'checkpoints', n, COMPLETE_MARKER))).sort();

describe('training checkpoints', () => {
  const straight = join(work, 'straight');
  const split = join(work, 'split');

  it('a run stopped by SIGUSR1, killed twice mid-save, and resumed ends bit-identical to an uninterrupted one', () => {
    const a = train(straight);
    expect(a.code, a.stderr).toBe(0);
    expect(latest(straight)).toBe('step-000006');

    // SIGUSR1 after step 3: finish the step, save, exit 75.
    const b = train(split, ['--save-every', '2', '--keep', '2'], { GRERANK_TEST_SIGNAL_AT: '3:SIGUSR1' });
    expect(b.code, b.stderr).toBe(EXIT_PREEMPTED);
    expect(b.stderr).toContain('SIGUSR1');
    expect(latest(split)).toBe('step-000003');
    expect(complete(split)).toEqual(['step-000002', 'step-000003']);
    expect(existsSync(join(split, 'reranker'))).toBe(false);
    const state = JSON.parse(readFileSync(join(split, 'checkpoints', 'step-000003', 'state.json'), 'utf8')) as CheckpointState;
    expect(state.step).toBe(3);
    expect(state.rng.data).toEqual({ epoch: 1, cursor: 2 });
    expect(state.reason).toBe('SIGUSR1');

    // kill -9 while the temporary directory is half written (step 4's save), then after the
    // rename but before `latest` moved: step 3 stays the usable latest each time.
    for (const stage of ['weights', 'rename', 'latest']) {
      const k = train(split, ['--save-every', '1', '--keep', '2', '--resume', 'latest'], { GRERANK_CHECKPOINT_FAULT: `${stage}:4` });
      expect(k.code, `${stage}: ${k.stderr}`).toBe(-1);
      expect(latest(split)).toBe('step-000003');
      expect(existsSync(join(split, 'checkpoints', 'step-000003', COMPLETE_MARKER))).toBe(true);
    }

    // Resume for the remaining 3 steps; the log format does not affect training and may differ.
    const c = train(split, ['--save-every', '2', '--keep', '2', '--resume', 'latest', '--log-format', 'json', '--log-every', '1']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toContain('resumed from');
    expect(c.stderr.split('\n').filter((l) => l.startsWith('{'))).toHaveLength(3);
    expect(latest(split)).toBe('step-000006');
    expect(complete(split)).toEqual(['step-000004', 'step-000006']);
    expect(readdirSync(join(split, 'checkpoints')).filter((n) => n.startsWith('.tmp'))).toEqual([]);

    const bytesA = readFileSync(join(straight, 'reranker', 'model.safetensors'));
    const bytesC = readFileSync(join(split, 'reranker', 'model.safetensors'));
    expect(bytesC.equals(bytesA)).toBe(true);
    // The checkpoints agree too: weights and AdamW moments.
    for (const f of ['reranker/model.safetensors', 'optimizer.safetensors']) {
      expect(readFileSync(join(split, 'checkpoints', 'step-000006', f)).equals(readFileSync(join(straight, 'checkpoints', 'step-000006', f))), f).toBe(true);
    }
    // And training really moved the weights.
    expect(bytesA.equals(readFileSync(join(model, 'model.safetensors')))).toBe(false);
  });

  it('refuses to resume with a config that changes training, naming the keys', () => {
    const r = train(split, ['--resume', join(split, 'checkpoints', 'step-000004'), '--lr', '2e-3', '--k', '3']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('[grerank]'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*step-000004: cannot resume: the training config differs in gumbel\.k, lr$/);
    const missing = train(join(work, 'nothing'), ['--resume', 'latest']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no checkpoint to resume from');
  });

  it('exports a checkpoint as a Hugging Face directory that scores like the checkpoint weights', async () => {
    const ckpt = join(split, 'checkpoints', 'step-000004');
    const out = join(work, 'exported');
    const r = grerank(['export', '--checkpoint', ckpt, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(join(out, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')));

    const exported = await loadReranker(out, { trainable: false, rankT5TokenId: 10 });
    // The checkpoint's weights put into the original model.
    const base = await loadReranker(model, { trainable: false, rankT5TokenId: 10 });
    const weights = readSafetensors(join(ckpt, 'reranker', 'model.safetensors'));
    for (const [name, p] of base.reranker.params.params) base.reranker.params.set(name, p.layout, rawToTensor(weights.get(name)!, p.layout));
    const original = await loadReranker(model, { trainable: false, rankT5TokenId: 10 });
    try {
      const ids = tf.tensor2d([[5, 6, 7, 8, 1, 0], [9, 10, 11, 12, 13, 1], [4, 3, 2, 1, 0, 0]], [3, 6], 'int32');
      const mask = tf.tensor2d([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], [3, 6], 'int32');
      const s1 = Array.from(exported.reranker.score(ids, mask).dataSync());
      const s2 = Array.from(base.reranker.score(ids, mask).dataSync());
      const s0 = Array.from(original.reranker.score(ids, mask).dataSync());
      expect(s1).toEqual(s2);
      expect(s1).not.toEqual(s0);
    } finally {
      exported.reranker.dispose();
      base.reranker.dispose();
      original.reranker.dispose();
    }
  });

  it('Algorithm 2 (weight table): SIGTERM after step 2 and resume equals 4 steps in one go', () => {
    const args = (out: string) => ['train', '--method', 'weights', '--reader', model, '--data', data, '--out', out, '--steps', '4', '--batch-size', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--answer-maxlength', '6', '--lr', '0.1', '--backend', 'wasm'];
    const one = join(work, 'w-one');
    const two = join(work, 'w-two');
    expect(grerank(args(one)).code).toBe(0);
    const s = grerank(args(two), { env: { GRERANK_TEST_SIGNAL_AT: '2:SIGTERM' } });
    expect(s.code, s.stderr).toBe(EXIT_PREEMPTED);
    expect(latest(two)).toBe('step-000002');
    const r = grerank([...args(two), '--resume', 'latest']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(two, 'weights.json'), 'utf8')).toBe(readFileSync(join(one, 'weights.json'), 'utf8'));
    expect(readFileSync(join(two, 'checkpoints', 'step-000004', 'weights.safetensors')).equals(readFileSync(join(one, 'checkpoints', 'step-000004', 'weights.safetensors')))).toBe(true);
    const e = grerank(['export', '--checkpoint', two, '--out', join(work, 'w-export')]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('not a reranker');
  });

  it('refuses to save non-finite weights and leaves the previous checkpoint alone', () => {
    const out = join(work, 'nan');
    const state = (step: number): CheckpointState => ({
      format: FORMAT_VERSION,
      step,
      optimizerStep: step,
      skippedSteps: 0,
      schedule: { lr: 1, warmupSteps: 0, totalSteps: 10, kind: 'linear' },
      rng: { data: { epoch: 0, cursor: step }, gumbel: [1, 2, 3, 4], target: [5, 6, 7, 8] },
      variables: ['weights'],
      kind: 'weights',
      reason: 'interval',
      savedAt: '',
    });
    const contents = (step: number, x: number) => ({
      state: state(step),
      config: { a: 1 },
      weights: { dtype: 'float32' as const, shape: [1, 2], data: new Float32Array([1, x]) },
      optimizer: { step, m: [new Float32Array(2)], v: [new Float32Array(2)] },
      variableShapes: [[1, 2]],
    });
    saveCheckpoint(out, contents(1, 2), 3);
    expect(() => saveCheckpoint(out, contents(2, NaN), 3)).toThrow(GrerankError);
    expect(() => saveCheckpoint(out, contents(2, Infinity), 3)).toThrow(/refusing to save checkpoint: step 2: weight table has a non-finite value/);
    expect(latest(out)).toBe('step-000001');
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(['latest', 'step-000001']);
  });

  it('compares configs key by key, ignoring what does not affect training', () => {
    expect(configDifferences({ lr: 1, out: 'a', logEvery: 1, encode: { n: 5 } }, { lr: 1, out: 'b', logEvery: 9, encode: { n: 5 } })).toEqual([]);
    expect(configDifferences({ lr: 1, encode: { n: 5 }, limit: 3 }, { lr: 2, encode: { n: 6 } })).toEqual(['encode.n', 'limit', 'lr']);
  });
});

describe('--resume auto', () => {
  it('is a fresh start without checkpoints and the latest complete one with them', () => {
    const out = tempDir();
    try {
      expect(resolveResume('auto', out)).toBeUndefined();
      expect(() => resolveResume('latest', out)).toThrow(/no checkpoint to resume from/);
      const dir = join(out, 'checkpoints', 'step-000004');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'state.json'), '{}');
      writeFileSync(join(out, 'checkpoints', 'latest'), 'step-000004\n');
      // `latest` naming an incomplete checkpoint is an error, not a silent fresh start.
      expect(() => resolveResume('auto', out)).toThrow(/incomplete checkpoint/);
      writeFileSync(join(dir, COMPLETE_MARKER), '');
      expect(resolveResume('auto', out)).toBe(dir);
    } finally {
      removeDir(out);
    }
  });
});
