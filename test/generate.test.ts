import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { loadStateDict } from '../src/io/checkpoint.js';
import { FidReader, passageBias } from '../src/models/fid.js';
import { greedyDecode } from '../src/models/generate.js';
import { LEGACY_CROSS_BIAS, T5Model } from '../src/models/t5.js';
import { initT5StateDict, t5Config } from '../src/models/t5-init.js';
import { REPO, toTensor } from './helpers/shared.js';
import { randomBatch, TINY_T5 } from './helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});

describe('greedy decoding', () => {
  it('produces, at every step, the argmax of the teacher-forced logits of its own prefix', () => {
    // A randomly initialised reader with a small vocabulary, so that outputs vary by row.
    const cfg = t5Config({ vocabSize: 64, dModel: 32, dKv: 8, dFf: 64, numLayers: 2, numHeads: 4 });
    const reader = new FidReader(T5Model.fromStateDict(cfg, initT5StateDict(cfg, 3)));
    const batch = randomBatch(5, 3, 4, 6, 3);
    const ids = tf.tensor3d(batch.passageIds.map((x) => x % 64), [3, 4, 6], 'int32');
    const enc = reader.encodePassages(ids, tf.ones([3, 4, 6], 'int32') as tf.Tensor3D);
    const out = greedyDecode(reader.t5, enc, { maxLength: 8 });
    expect(out).toHaveLength(3);
    for (const [i, row] of out.entries()) {
      if (row.length === 0) continue;
      const decIn = tf.tensor2d([[0, ...row.slice(0, -1)]], [1, row.length], 'int32');
      const one = { ...enc, b: 1, mask: tf.slice(enc.mask, [i, 0], [1, -1]) as tf.Tensor2D, kv: enc.kv.map((x) => ({ k: tf.slice(x.k, [i, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D, v: tf.slice(x.v, [i, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D })) };
      const logits = reader.t5.lmLogits(reader.t5.decode(decIn, one.kv, reader.t5.crossBias(one.mask, row.length)));
      expect(Array.from(tf.argMax(logits, -1).dataSync())).toEqual(row);
    }
    expect(out.some((r) => r.length > 1)).toBe(true);
  });

  it('matches transformers 3.0.2 generate() on a legacy FiD checkpoint', async () => {
    const g = JSON.parse(readFileSync(join(REPO, 'test/fixtures/legacy-fid/golden.json'), 'utf8'));
    const sd = await loadStateDict(TINY_T5);
    sd.tensors.set(LEGACY_CROSS_BIAS, { dtype: 'float32', shape: g.legacy_weight.shape, data: Float32Array.from(g.legacy_weight.data) });
    const reader = new FidReader(T5Model.fromStateDict((await T5Model.load(TINY_T5)).config, sd));
    const enc = reader.encodePassages(toTensor(g.inputs.input_ids) as tf.Tensor3D, toTensor(g.inputs.attention_mask) as tf.Tensor3D);
    const out = greedyDecode(reader.t5, enc, { maxLength: g.greedy.steps });
    const want: number[][] = [];
    for (let b = 0; b < 2; b++) want.push(g.greedy.tokens.data.slice(b * 7 + 1, (b + 1) * 7));
    expect(out).toEqual(want);
  });

  it('restricts the reader to the passages a bias selects', () => {
    const cfg = t5Config({ vocabSize: 64, dModel: 32, dKv: 8, dFf: 64, numLayers: 2, numHeads: 4 });
    const reader = new FidReader(T5Model.fromStateDict(cfg, initT5StateDict(cfg, 4)));
    const batch = randomBatch(6, 1, 4, 6, 3);
    const ids = Array.from(batch.passageIds, (x) => x % 64);
    const encAll = reader.encodePassages(tf.tensor3d(ids, [1, 4, 6], 'int32'), tf.ones([1, 4, 6], 'int32') as tf.Tensor3D);
    const onlyFirst = passageBias(tf.tensor2d([[0, -1e9, -1e9, -1e9]]), 6);
    const restricted = greedyDecode(reader.t5, encAll, { maxLength: 5, passageBias: onlyFirst });
    const encOne = reader.encodePassages(tf.tensor3d(ids.slice(0, 6), [1, 1, 6], 'int32'), tf.ones([1, 1, 6], 'int32') as tf.Tensor3D);
    expect(restricted).toEqual(greedyDecode(reader.t5, encOne, { maxLength: 5 }));
  });
});
