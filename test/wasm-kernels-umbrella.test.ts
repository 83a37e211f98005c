/**
 * The production setup: src/backend/index.ts loads the @tensorflow/tfjs umbrella bundle, which
 * registers upstream's gradients; registerWasmKernels then replaces the broken ones and adds the
 * missing ones without warnings, and both backends agree.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it, vi } from 'vitest';
import { registerGradients, registerWasmKernels } from '../src/backend/kernels/index.js';

async function on(backend: string, f: () => number[][]): Promise<number[][]> {
  expect(await tf.setBackend(backend)).toBe(true);
  return tf.tidy(f);
}

const w = (shape: number[]) => tf.tensor(Array.from({ length: shape.reduce((p, c) => p * c, 1) }, (_, i) => Math.sin(i + 1)), shape);

/** Gradients that upstream tfjs 4.22 gets wrong (throws, or wrong shape). */
const cases: Array<[string, (...xs: tf.Tensor[]) => tf.Tensor, number[][]]> = [
  ['maximum with broadcasting', (a, b) => tf.maximum(a, b), [[3, 4], [4]]],
  ['squaredDifference with broadcasting', (a, b) => tf.squaredDifference(a, b), [[3, 4], [3, 1]]],
  ['matMul with a broadcast batch', (a, b) => tf.matMul(a, b), [[2, 3, 4, 5], [1, 1, 5, 6]]],
  ['where on a mask computed from the input', (a) => tf.where(tf.greater(a, 0), a, tf.mul(a, 0.1)), [[3, 4]]],
  ['cumsum along axis 0', (a) => tf.cumsum(a, 0), [[3, 4]]],
  ['einsum', (a, b) => tf.einsum('bij,bkj->bik', a, b), [[2, 3, 4], [2, 5, 4]]],
  ['stridedSlice', (a) => tf.stridedSlice(a, [0, 0], [3, 4], [2, 2]), [[3, 4]]],
  ['gather (embedding)', (a) => tf.gather(a, tf.tensor1d([4, 0, 4, 2], 'int32')), [[6, 3]]],
];

describe('with the @tensorflow/tfjs umbrella loaded', () => {
  it('registerWasmKernels replaces and adds gradients without warnings', () => {
    expect(tf.getGradient('Add')).toBeDefined(); // the umbrella registered upstream's
    expect(tf.getGradient('Einsum')).toBeUndefined();
    const warn = vi.spyOn(console, 'warn');
    registerWasmKernels();
    registerGradients();
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
    expect(tf.getGradient('Einsum')).toBeDefined();
  });

  for (const [name, fn, shapes] of cases) {
    it(`${name}: gradients on wasm equal cpu`, async () => {
      registerWasmKernels();
      const grads = (backend: string) =>
        on(backend, () => {
          const xs = shapes.map((s, i) => tf.mul(w(s), i + 1));
          return tf
            .grads((...ys: tf.Tensor[]) => {
              const out = fn(...ys);
              return tf.sum(tf.mul(out, w(out.shape)));
            })(xs)
            .map((g, i) => {
              expect(g.shape).toEqual(shapes[i]);
              return Array.from(g.dataSync());
            });
        });
      const wasm = await grads('wasm');
      const cpu = await grads('cpu');
      wasm.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(cpu[i][j], 4)));
    });
  }
});
