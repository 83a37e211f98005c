/** initBackend('cpu') in a process of its own (vitest runs each test file in its own process). */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';

describe("initBackend('cpu')", () => {
  it('picks cpu, skipping nothing', async () => {
    const info = await initBackend('cpu', { quiet: true });
    expect(info).toEqual({ name: 'cpu', tfjsName: 'cpu', skipped: [] });
    expect(tf.getBackend()).toBe('cpu');
    expect(tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).arraySync())).toEqual([2, 3]);
  });
});
