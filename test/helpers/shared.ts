import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** ../shared beside the checkout (CI clones main with shared/ beside it); GRERANK_SHARED overrides. */
export const SHARED = process.env.GRERANK_SHARED ?? resolve(REPO, '../shared');
export const REFCHECK = join(SHARED, 'refcheck');
export const CHECKPOINTS = join(REFCHECK, 'checkpoints');

if (!existsSync(REFCHECK)) {
  throw new Error(`reference data not found at ${REFCHECK}: clone the repository beside shared/ or set GRERANK_SHARED`);
}

export interface GoldenTensor {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: number[];
}

export function golden(name: string): any {
  return JSON.parse(readFileSync(join(REFCHECK, 'goldens', `${name}.json`), 'utf8'));
}

/** max |a - b| over all elements; throws on length mismatch. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

import * as tf from '@tensorflow/tfjs-core';

/** A golden tensor as a tfjs tensor. */
export function toTensor(g: GoldenTensor): tf.Tensor {
  return tf.tensor(g.data, g.shape, g.dtype === 'int32' ? 'int32' : 'float32');
}

/** Asserts max |actual - golden| <= tol, with a message that says by how much it missed. */
export function expectClose(actual: tf.Tensor | ArrayLike<number> | number, g: GoldenTensor | number, tol: number, what: string): number {
  const a = typeof actual === 'number' ? [actual] : actual instanceof tf.Tensor ? Array.from(actual.dataSync()) : Array.from(actual);
  const b = typeof g === 'number' ? [g] : g.data;
  if (typeof g !== 'number' && actual instanceof tf.Tensor) {
    if (JSON.stringify(actual.shape) !== JSON.stringify(g.shape)) throw new Error(`${what}: shape [${actual.shape}] vs golden [${g.shape}]`);
  }
  const d = maxAbsDiff(a, b);
  if (!(d <= tol)) throw new Error(`${what}: max abs diff ${d.toExponential(3)} > tolerance ${tol}`);
  return d;
}
