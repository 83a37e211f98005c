import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { GumbelObjective } from '../src/methods/gumbel.js';
import { RerankerScorer, WeightTable, type Scorer } from '../src/methods/scorer.js';
import { FidReader } from '../src/models/fid.js';
import { RankT5 } from '../src/models/rankt5.js';
import { T5Model } from '../src/models/t5.js';
import { forwardBackward, Trainer } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';
import type { RerankBatch } from '../src/data/batch.js';
import { randomBatch, TINY_T5 } from './helpers/tiny.js';

let reader: FidReader;
beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
  reader = await FidReader.load(TINY_T5);
});

const GUMBEL = { k: 2, tau: 0.5, kappa: 1.0 };

/** Loss under 8 fixed noise draws and the mean max sampling weight softmax(kappa * w): comparable before and after. */
function evaluate(scorer: Scorer, batch: RerankBatch): { loss: number; maxWeight: number } {
  const obj = new GumbelObjective(GUMBEL, new Rng(99));
  let loss = 0;
  let maxWeight = 0;
  for (let i = 0; i < 8; i++) {
    const r = forwardBackward(scorer, obj, reader, batch);
    tf.dispose(r.grads);
    loss += r.loss / 8;
    let mw = 0;
    for (let q = 0; q < batch.b; q++) mw += Math.max(...r.weights!.slice(q * batch.n, (q + 1) * batch.n)) / batch.b;
    maxWeight += mw / 8;
  }
  return { loss, maxWeight };
}

describe('G-Rerank training step on tiny checkpoints', () => {
  it('lowers the reader loss and raises the max sampling weight (the paper\'s Figure 4 signal), without leaking tensors', async () => {
    const ranker = new RankT5(await T5Model.load(TINY_T5, { trainable: true }), 10);
    const scorer = new RerankerScorer(ranker);
    const batch = randomBatch(1);
    const before = evaluate(scorer, batch);
    const trainer = new Trainer(scorer, reader, new GumbelObjective(GUMBEL, new Rng(7)), {
      schedule: { lr: 3e-3, warmupSteps: 0, totalSteps: 30, kind: 'constant' },
      clipNorm: 1.0,
    });
    const counts: number[] = [];
    for (let i = 0; i < 30; i++) {
      const s = await trainer.trainStep(batch);
      expect(Number.isFinite(s.loss)).toBe(true);
      expect(s.skipped).toBe(false);
      counts.push(tf.memory().numTensors);
    }
    const after = evaluate(scorer, batch);
    expect(after.loss).toBeLessThan(before.loss - 0.1);
    expect(after.maxWeight).toBeGreaterThan(before.maxWeight + 0.05);
    // Every tensor a step creates is disposed: the count is flat from the first step on.
    expect(new Set(counts).size).toBe(1);
    expect(trainer.step).toBe(30);
    trainer.dispose();
    ranker.dispose();
  });

  it('trains only the reranker: the reader is untouched and gets no gradient', async () => {
    const ranker = new RankT5(await T5Model.load(TINY_T5, { trainable: true }), 10);
    const readerBefore = reader.t5.params.get('decoder.block.0.layer.1.EncDecAttention.q.weight').dataSync().slice();
    const rankerBefore = ranker.params.get('encoder.block.0.layer.0.SelfAttention.q.weight').dataSync().slice();
    const trainer = new Trainer(new RerankerScorer(ranker), reader, new GumbelObjective(GUMBEL, new Rng(7)), {
      schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 3, kind: 'constant' },
      clipNorm: 1.0,
    });
    await trainer.trainStep(randomBatch(2));
    expect(reader.t5.params.get('decoder.block.0.layer.1.EncDecAttention.q.weight').dataSync()).toEqual(readerBefore);
    expect(ranker.params.get('encoder.block.0.layer.0.SelfAttention.q.weight').dataSync()).not.toEqual(rankerBefore);
    expect(reader.t5.params.variables()).toHaveLength(0);
    trainer.dispose();
    ranker.dispose();
  });

  it('Algorithm 2: learnable per-document weights start at 0 and separate the documents', async () => {
    const batch = randomBatch(3, 1, 6);
    const table = new WeightTable(1, 6);
    const before = evaluate(table, batch);
    expect(Array.from(table.weightsOf(0))).toEqual([0, 0, 0, 0, 0, 0]);
    const trainer = new Trainer(table, reader, new GumbelObjective(GUMBEL, new Rng(5)), {
      schedule: { lr: 0.1, warmupSteps: 0, totalSteps: 40, kind: 'constant' },
      clipNorm: 0,
      adamw: { weightDecay: 0 },
    });
    for (let i = 0; i < 40; i++) await trainer.trainStep(batch);
    const after = evaluate(table, batch);
    expect(after.loss).toBeLessThan(before.loss);
    expect(after.maxWeight).toBeGreaterThan(before.maxWeight + 0.1);
    const w = Array.from(table.weightsOf(0));
    expect(Math.max(...w) - Math.min(...w)).toBeGreaterThan(0.5);
    trainer.dispose();
  });

  it('skips the update when the loss is not finite, and counts it', async () => {
    const table = new WeightTable(2, 8);
    const trainer = new Trainer(table, reader, { name: 'nan', loss: (scores) => ({ loss: tf.div(tf.sum(scores), 0) as tf.Scalar }) }, {
      schedule: { lr: 0.1, warmupSteps: 0, totalSteps: 1, kind: 'constant' },
      clipNorm: 1,
    });
    const s = await trainer.trainStep(randomBatch(4));
    expect(s.skipped).toBe(true);
    expect(trainer.skippedSteps).toBe(1);
    expect(trainer.step).toBe(0);
    expect(Array.from(table.weightsOf(0)).every((x) => x === 0)).toBe(true);
    trainer.dispose();
  });
});
