import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { encodeBatch } from '../src/data/encode.js';
import { readExamples } from '../src/data/examples.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { GumbelObjective } from '../src/methods/gumbel.js';
import { RerankerScorer } from '../src/methods/scorer.js';
import { loadReranker } from '../src/models/load.js';
import { jointForwardBackward, JointTrainer } from '../src/train/joint.js';
import { loadTrainableReader } from '../src/train/reader.js';
import { Rng } from '../src/util/rng.js';
import { grerank, removeDir, tempDir } from './helpers/cli.js';
import { TINY_WORDS, tinyT5Model, writeTinyQa } from './helpers/tiny.js';

const work = tempDir();
const model = tinyT5Model(TINY_WORDS);
const data = join(work, 'train.jsonl');
// Gold (and has_answer) where the candidate names the question's own person.
writeTinyQa(data, 3, { labels: (i, j) => ({ gold: (i + j) % 3 === i, has_answer: (i + j) % 3 === i }) });
beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});
afterAll(() => {
  removeDir(work);
  removeDir(model);
});

const COMMON = ['--reader', model, '--data', data, '--batch-size', '2', '--n-passages', '5', '--text-maxlength', '24', '--answer-maxlength', '6', '--backend', 'wasm'];
const Q = 'encoder.block.0.layer.0.SelfAttention.q.weight';
const original = () => readSafetensors(join(model, 'model.safetensors'));

describe('joint training of reader and reranker (--train both)', () => {
  it('one loss lowers on a fixed batch and moves both parameter sets', async () => {
    const { examples } = await readExamples(data);
    const reader = await loadTrainableReader({ reader: model, initSeed: 0 });
    const loaded = await loadReranker(model, { rankT5TokenId: 10 });
    const scorer = new RerankerScorer(loaded.reranker);
    const spec = { nPassages: 5, passageMaxLength: 24, pairMaxLength: 32, answerMaxLength: 6 };
    const batch = await encodeBatch(examples.slice(0, 2), [0, 1], reader.tokenizer, { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer }, spec, new Rng(3));
    const gumbel = { k: 2, tau: 0.5, kappa: 1 };
    // The loss under one fixed noise draw (gradients discarded).
    const fixedLoss = (): number => {
      const r = jointForwardBackward(scorer, new GumbelObjective(gumbel, new Rng(99)), reader.reader, batch);
      tf.dispose([...r.rerankerGrads, ...r.readerGrads]);
      return r.loss;
    };
    const snap = () => ({ rr: loaded.reranker.params.toRaw().get(Q)!.data.slice(), rd: reader.reader.t5.params.toRaw().get(Q)!.data.slice() });
    try {
      const s0 = snap();
      const l0 = fixedLoss();
      const trainer = new JointTrainer(scorer, reader.reader, new GumbelObjective(gumbel, new Rng(17)), {
        schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 30, kind: 'constant' },
        readerLr: 1e-3,
        clipNorm: 1,
      });
      const before = tf.memory().numTensors;
      const losses: number[] = [];
      for (let i = 0; i < 30; i++) losses.push(trainer.trainStep(batch).loss);
      expect(tf.memory().numTensors).toBe(before);
      trainer.dispose();
      const l1 = fixedLoss();
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(l1).toBeLessThan(l0 * 0.8);
      const s1 = snap();
      expect(s1.rr).not.toEqual(s0.rr);
      expect(s1.rd).not.toEqual(s0.rd);
    } finally {
      reader.reader.dispose();
      loaded.reranker.dispose();
    }
  });

  it('grerank train --train both writes a trained reranker and a trained reader', () => {
    const out = join(work, 'both');
    const r = grerank(['train', '--train', 'both', ...COMMON, '--reranker', model, '--rankt5-token-id', '10', '--out', out, '--steps', '3', '--k', '2', '--pair-maxlength', '32', '--lr', '1e-3', '--reader-lr', '1e-3', '--log-format', 'json', '--log-every', '1', '--eval-every', '2', '--eval-data', data]);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'eval').map((e) => e.step)).toEqual([2, 3]);
    expect(readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(events.filter((e) => e.event === 'train')).toHaveLength(3);
    expect(events.filter((e) => e.event === 'train').every((e) => Number.isFinite(e.loss) && e.reader_lr > 0)).toBe(true);
    const o = original();
    for (const dir of ['reranker', 'reader']) {
      const saved = readSafetensors(join(out, dir, 'model.safetensors'));
      expect([...saved.keys()].sort(), dir).toEqual([...o.keys()].sort());
      expect(saved.get(Q)!.data, dir).not.toEqual(o.get(Q)!.data);
      expect(existsSync(join(out, dir, 'config.json'))).toBe(true);
      expect(existsSync(join(out, dir, 'tokenizer.json'))).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8'))).toMatchObject({ train: 'both', readerLr: 1e-3 });
    const bad = grerank(['train', '--train', 'both', ...COMMON, '--reranker', model, '--out', out, '--resume', 'latest']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('error: --resume is not supported with --train both');
    const bad2 = grerank(['train', '--train', 'both', '--method', 'emdr', ...COMMON, '--reranker', model, '--out', join(work, 'b2'), '--steps', '1']);
    expect(bad2.code).toBe(1);
    expect(bad2.stderr).toContain('error: --train both trains with the Gumbel objective only');
  });

  it('grerank train --train reader equals grerank train-reader and writes OUT/reader', () => {
    const out = join(work, 'reader-run');
    const r = grerank(['train', '--train', 'reader', ...COMMON, '--out', out, '--steps', '3', '--reader-lr', '1e-3']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'reader', 'config.json'))).toBe(true);
    expect(existsSync(join(out, 'reader', 'tokenizer.json'))).toBe(true);
    const saved = readFileSync(join(out, 'reader', 'model.safetensors'));
    expect(readSafetensors(join(out, 'reader', 'model.safetensors')).get(Q)!.data).not.toEqual(original().get(Q)!.data);
    const ref = join(work, 'train-reader');
    const t = grerank(['train-reader', ...COMMON, '--out', ref, '--steps', '3', '--lr', '1e-3']);
    expect(t.code, t.stderr).toBe(0);
    expect(saved.equals(readFileSync(join(ref, 'model.safetensors')))).toBe(true);
  });
});
