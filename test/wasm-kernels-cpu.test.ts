/**
 * registerCpuKernels: tfjs' cpu UnsortedSegmentSum builds one mask per segment
 * (O(numSegments·n·d)); ours is one pass. Same results, compared with the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerCpuKernels } from '../src/backend/kernels/index.js';

const cases: Array<{ x: number[]; ids: number[]; numSegments: number }> = [
  { x: [7, 5], ids: [3, 1, 3, 0, 3, 1, 6], numSegments: 12 },
  { x: [9], ids: [0, 0, 0, 2, 2, 8, 1, 0, 5], numSegments: 9 },
  { x: [6, 3, 2], ids: [5, 5, 0, 1, 5, 0], numSegments: 7 },
  { x: [5, 4], ids: [-1, 2, 7, 2, 0], numSegments: 4 },
];

function run(c: (typeof cases)[number], dtype: 'float32' | 'int32', ours = true): number[] {
  return tf.tidy(() => {
    const n = c.x.reduce((p, q) => p * q, 1);
    const x = tf.tensor(Array.from({ length: n }, (_, i) => (dtype === 'int32' ? i - 5 : Math.cos(i * 0.7))), c.x, dtype);
    const out = tf.unsortedSegmentSum(x, tf.tensor1d(c.ids, 'int32'), c.numSegments);
    // (tfjs' stock cpu kernel returns float32 for int32 x; ours keeps x's dtype, as TF does.)
    if (ours) expect(out.dtype).toBe(dtype);
    expect(out.shape).toEqual([c.numSegments, ...c.x.slice(1)]);
    return Array.from(out.dataSync());
  });
}

describe('registerCpuKernels', () => {
  let stock: number[][] = [];

  beforeAll(async () => {
    await tf.setBackend('cpu');
    stock = cases.flatMap((c) => [run(c, 'float32', false), run(c, 'int32', false)]);
    registerCpuKernels();
  });

  it('UnsortedSegmentSum equals the stock cpu kernel (float32 and int32)', () => {
    const ours = cases.flatMap((c) => [run(c, 'float32'), run(c, 'int32')]);
    ours.forEach((o, i) => o.forEach((v, j) => expect(v).toBeCloseTo(stock[i][j], 5)));
  });

  it('UnsortedSegmentSum into a 32128-row embedding takes well under a second', () => {
    const t0 = performance.now();
    tf.tidy(() => {
      const ids = tf.tensor1d(Array.from({ length: 2560 }, (_, i) => (i * 7919) % 32128), 'int32');
      tf.unsortedSegmentSum(tf.ones([2560, 256]), ids, 32128).dataSync();
    });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('the gradient of gather works on cpu', () => {
    const g = tf.tidy(() => tf.grads((e: tf.Tensor) => tf.sum(tf.gather(e, tf.tensor1d([2, 0, 2], 'int32'))))([tf.ones([3, 2])])[0].arraySync());
    expect(g).toEqual([[1, 1], [0, 0], [2, 2]]);
  });
});
