/**
 * initBackend('auto') on a machine without the optional tfjs-node packages: wasm, with the two
 * native backends reported as skipped. (initBackend('cpu') is in backend-cpu.test.ts: the choice
 * is made once per process, and vitest runs each file in its own process.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { currentBackend, initBackend, type BackendChoice } from '../src/backend/index.js';
import { GrerankError } from '../src/errors.js';

describe('initBackend', () => {
  afterEach(() => vi.restoreAllMocks());

  it('rejects an unknown backend name with a one-line GrerankError', async () => {
    const err = await initBackend('tpu' as BackendChoice, { quiet: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrerankError);
    expect((err as Error).message).toMatch(/unknown backend "tpu"/);
    expect((err as Error).message).not.toContain('\n');
    expect(currentBackend()).toBeUndefined();
  });

  it('auto picks wasm here and lists tensorflow-gpu and tensorflow as skipped', async () => {
    const writes: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    const info = await initBackend('auto');
    expect(info.name).toBe('wasm');
    expect(info.tfjsName).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.skipped).toHaveLength(2);
    expect(info.skipped[0]).toMatch(/^tensorflow-gpu: /);
    expect(info.skipped[1]).toMatch(/^tensorflow: /);
    for (const why of info.skipped) expect(why).not.toContain('\n');
    expect(writes.filter((w) => w.startsWith('[grerank] backend:'))).toEqual(['[grerank] backend: wasm (skipped tensorflow-gpu, tensorflow)\n']);
    expect(currentBackend()).toBe(info);
  });

  it('returns the first choice on later calls, and refuses a different one', async () => {
    const info = await initBackend('auto', { quiet: true });
    expect(await initBackend('wasm', { quiet: true })).toBe(info);
    const err = await initBackend('cpu', { quiet: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrerankError);
    expect((err as Error).message).toBe('backend cpu requested, but this process already uses wasm');
  });

  it('registered the wasm kernels training needs: an embedding matrix gets a gradient', async () => {
    await initBackend('auto', { quiet: true });
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    const g = tf.tidy(() => {
      const emb = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const [d] = tf.grads((e: tf.Tensor) => tf.sum(tf.gather(e, tf.tensor1d([2, 0, 2], 'int32'))))([emb]);
      return d.arraySync();
    });
    expect(g).toEqual([[1, 1], [0, 0], [2, 2]]);
  });
});
