import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { FLOAT32_TINY, gumbelNoise, hardTopK, weightStats, relaxedTopK } from '../src/gumbel/mask.js';
import { Rng } from '../src/util/rng.js';

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
});

/** Algorithm 1 written out with plain numbers, as the paper states it. */
function referenceMask(w: number[], g: number[][], tau: number, kappa: number): number[] {
  const out = new Array(w.length).fill(0);
  for (const gj of g) {
    const z = w.map((wi, i) => (gj[i]! + kappa * wi) / tau);
    const m = Math.max(...z);
    const e = z.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    e.forEach((x, i) => (out[i] = Math.max(out[i], x / s)));
  }
  return out;
}

describe('relaxed top-k mask (Algorithm 1)', () => {
  it('equals the element-wise max over k softmax draws', () => {
    const w = [0.3, -1.2, 2.0, 0.0, 0.7];
    const rng = new Rng(3);
    const k = 3;
    const noise = gumbelNoise(rng, k, 1, w.length);
    const g = [0, 1, 2].map((j) => Array.from(noise.slice(j * w.length, (j + 1) * w.length)));
    const mask = tf.tidy(() => relaxedTopK(tf.tensor2d([w]), tf.tensor3d(noise, [k, 1, w.length]), { tau: 0.5, kappa: 1.0 }).dataSync());
    const ref = referenceMask(w, g, 0.5, 1.0);
    ref.forEach((r, i) => expect(mask[i]).toBeCloseTo(r, 6));
  });

  it('is a distribution for k = 1 and lies in (0, 1] for any k', () => {
    const rng = new Rng(5);
    const [b, n] = [4, 20];
    const w = tf.randomNormal([b, n], 0, 2, 'float32', 1) as tf.Tensor2D;
    const m1 = tf.tidy(() => relaxedTopK(w, tf.tensor3d(gumbelNoise(rng, 1, b, n), [1, b, n]), { tau: 0.5, kappa: 1 }).arraySync());
    for (const row of m1) expect(row.reduce((a, x) => a + x, 0)).toBeCloseTo(1, 5);
    const m5 = tf.tidy(() => relaxedTopK(w, tf.tensor3d(gumbelNoise(rng, 5, b, n), [5, b, n]), { tau: 0.5, kappa: 1 }).arraySync());
    for (const row of m5) {
      for (const x of row) expect(x > 0 && x <= 1).toBe(true);
      const s = row.reduce((a, x) => a + x, 0);
      expect(s).toBeGreaterThan(1); // k draws cover more than one document
      expect(s).toBeLessThanOrEqual(5 + 1e-5);
    }
    w.dispose();
  });

  it('draws with replacement: far-apart scores put every draw on the best document', () => {
    // Algorithm 1 has no renormalisation between draws, so k draws can pick the same document;
    // only the noise lets the others in. A score gap no Gumbel draw can bridge leaves one document.
    const rng = new Rng(11);
    const w = [0, 40, 0, 80, 0, 0, 120];
    for (let t = 0; t < 20; t++) {
      const m = tf.tidy(() => relaxedTopK(tf.tensor2d([w]), tf.tensor3d(gumbelNoise(rng, 3, 1, w.length), [3, 1, w.length]), { tau: 0.5, kappa: 1 }).dataSync());
      expect(Array.from(m).map((x) => Math.round(x))).toEqual([0, 0, 0, 0, 0, 0, 1]);
    }
    expect(hardTopK(w, 3)).toEqual([6, 3, 1]);
  });

  it('with equal scores, covers k draws worth of documents uniformly on average', () => {
    const rng = new Rng(13);
    const [n, k, trials] = [10, 3, 400];
    const sum = new Array(n).fill(0);
    for (let t = 0; t < trials; t++) {
      const m = tf.tidy(() => relaxedTopK(tf.zeros([1, n]) as tf.Tensor2D, tf.tensor3d(gumbelNoise(rng, k, 1, n), [k, 1, n]), { tau: 0.5, kappa: 1 }).dataSync());
      m.forEach((x, i) => (sum[i] += x / trials));
    }
    const total = sum.reduce((a, b) => a + b, 0);
    // Expected distinct documents among 3 draws of 10 with replacement: 10 * (1 - 0.9^3) = 2.71;
    // the relaxed mask's total is a little below that (soft maxima are < 1).
    expect(total).toBeGreaterThan(2.0);
    expect(total).toBeLessThan(2.8);
    for (const s of sum) expect(Math.abs(s - total / n)).toBeLessThan(0.06);
  });

  it('passes gradient to the scores', () => {
    const noise = tf.tensor3d(gumbelNoise(new Rng(1), 2, 1, 4), [2, 1, 4]);
    const g = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(relaxedTopK(w as tf.Tensor2D, noise, { tau: 0.5, kappa: 1 }), tf.tensor2d([[1, 2, 3, 4]]))))(tf.tensor2d([[0.1, 0.2, 0.3, 0.4]]));
    const d = g.dataSync();
    expect(d.every((x) => Number.isFinite(x))).toBe(true);
    expect(d.some((x) => Math.abs(x) > 1e-3)).toBe(true);
  });
});

describe('Gumbel noise', () => {
  it('is reproducible from the generator state (a resumed run repeats the noise)', () => {
    const a = new Rng(42);
    gumbelNoise(a, 5, 2, 20);
    const saved = a.state();
    const next = gumbelNoise(a, 5, 2, 20);
    expect(gumbelNoise(new Rng(saved), 5, 2, 20)).toEqual(next);
  });

  it('has the Gumbel(0, 1) mean (Euler-Mascheroni constant) and variance pi^2 / 6, always finite', () => {
    const g = gumbelNoise(new Rng(7), 1, 1, 200_000);
    let mean = 0;
    for (const x of g) mean += x / g.length;
    let v = 0;
    for (const x of g) v += (x - mean) ** 2 / g.length;
    expect(mean).toBeCloseTo(0.5772, 1);
    expect(v).toBeCloseTo(Math.PI ** 2 / 6, 1);
    expect(g.every((x) => Number.isFinite(x))).toBe(true);
    expect(FLOAT32_TINY).toBeGreaterThan(0);
  });
});

describe('sampling-weight statistics', () => {
  it('reports the mean per-query maximum and the entropy of the normalised mask', () => {
    const s = weightStats(new Float32Array([1, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]), 2, 4);
    expect(s.maxWeight).toBeCloseTo(0.75, 6);
    expect(s.entropy).toBeCloseTo((0 + Math.log(4)) / 2, 6);
  });
});
