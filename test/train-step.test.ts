import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { GumbelObjective } from '../src/methods/gumbel.js';
import { RerankerScorer, WeightTable, type Scorer } from '../src/methods/scorer.js';
import { FidReader } from '../src/models/fid.js';
import { RankT5 } from '../src/models/rankt5.js';
import { T5Model } from '../src/models/t5.js';
import { accumulate, forwardBackward, targetTokens, Trainer } from '../src/train/step.js';
import { makeObjective } from '../src/methods/index.js';
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
    const trainer = new Trainer(table, reader, { name: 'nan', meanOver: 'queries', loss: (scores) => ({ loss: tf.div(tf.sum(scores), 0) as tf.Scalar }) }, {
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

/** Two batches as one (rows of b2 after b1). */
function concatBatches(x: RerankBatch, y: RerankBatch): RerankBatch {
  const cat = (a: Int32Array, c: Int32Array) => Int32Array.from([...a, ...c]);
  return {
    ...x,
    b: x.b + y.b,
    pairIds: cat(x.pairIds, y.pairIds),
    pairMask: cat(x.pairMask, y.pairMask),
    passageIds: cat(x.passageIds, y.passageIds),
    passageMask: cat(x.passageMask, y.passageMask),
    labels: cat(x.labels, y.labels),
    index: cat(x.index, y.index),
  };
}

function gradRelDiff(a: tf.Tensor[], b: tf.Tensor[]): number {
  let d = 0;
  let n = 0;
  a.forEach((g, i) => {
    const x = g.dataSync();
    const y = b[i]!.dataSync();
    for (let j = 0; j < x.length; j++) {
      d += (x[j]! - y[j]!) ** 2;
      n += y[j]! ** 2;
    }
  });
  return Math.sqrt(d / n);
}

describe('gradient accumulation', () => {
  // Different target lengths per micro-batch: the token-mean loss of the whole batch is not the
  // plain mean of the micro-batch losses, so the weighting is what this checks.
  const first = randomBatch(11, 2, 8, 8, 4);
  first.labels.set([-100, -100, -100], 1);
  const second = { ...randomBatch(12, 3, 8, 8, 4), index: Int32Array.from([2, 3, 4]) };
  const whole = concatBatches(first, second);

  it('target tokens count the labels that are not padding', () => {
    expect(targetTokens(first)).toBe(5);
    expect(targetTokens(second)).toBe(12);
  });

  for (const method of ['gumbel', 'pdist'] as const) {
    it(`${method}: micro-batches give the loss and gradient of the whole batch (<= 1e-5 relative)`, async () => {
      const ranker = new RankT5(await T5Model.load(TINY_T5, { trainable: true }), 10);
      const scorer = new RerankerScorer(ranker);
      const objective = () => (method === 'gumbel' ? new GumbelObjective(GUMBEL, new Rng(1), 5) : makeObjective('pdist', { gumbel: GUMBEL, temperatureScore: 1, temperatureGold: 1 }, new Rng(1)));
      const before = tf.memory().numTensors;
      const ref = forwardBackward(scorer, objective(), reader, whole);
      const obj = objective();
      const acc = accumulate([first, second], obj.meanOver, (b) => forwardBackward(scorer, obj, reader, b));
      expect(Math.abs(acc.loss - ref.loss) / Math.abs(ref.loss)).toBeLessThan(1e-5);
      expect(gradRelDiff(acc.grads, ref.grads)).toBeLessThan(1e-5);
      expect(acc.weights!.length).toBe(whole.b * whole.n);
      // The other weighting is measurably wrong: the test can fail.
      const wrong = accumulate([first, second], obj.meanOver === 'tokens' ? 'queries' : 'tokens', (b) => forwardBackward(scorer, obj, reader, b));
      expect(gradRelDiff(wrong.grads, ref.grads)).toBeGreaterThan(1e-3);
      tf.dispose([...ref.grads, ...acc.grads, ...wrong.grads]);
      expect(tf.memory().numTensors).toBe(before);
      ranker.dispose();
    });
  }

  it('Trainer.trainStep over micro-batches makes the same update as over the whole batch', async () => {
    const update = async (batches: RerankBatch | RerankBatch[]) => {
      const ranker = new RankT5(await T5Model.load(TINY_T5, { trainable: true }), 10);
      const scorer = new RerankerScorer(ranker);
      const trainer = new Trainer(scorer, reader, new GumbelObjective(GUMBEL, new Rng(1), 5), { schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 2, kind: 'constant' }, clipNorm: 1 });
      const init = scorer.variables().map((v) => v.clone());
      const stats = await trainer.trainStep(batches);
      const params = scorer.variables().map((v, i) => tf.sub(v, init[i]!));
      tf.dispose(init);
      trainer.dispose();
      ranker.dispose();
      return { stats, params };
    };
    const a = await update([first, second]);
    const b = await update(whole);
    expect(a.stats.examples).toBe(5);
    expect(Math.abs(a.stats.loss - b.stats.loss)).toBeLessThan(1e-5 * Math.abs(b.stats.loss));
    // The global norm of the (accumulated) gradient, before clipping.
    expect(Math.abs(a.stats.gradNorm - b.stats.gradNorm)).toBeLessThan(1e-5 * b.stats.gradNorm);
    // The updates themselves (AdamW's first step is close to sign(g), so compare the moves).
    expect(gradRelDiff(a.params, b.params)).toBeLessThan(1e-4);
    tf.dispose([...a.params, ...b.params]);
  });
});
