import { GrerankError } from '../errors.js';

/** A tensor as JSON, as ../shared/refcheck/goldens encode them: row-major data. */
export interface JsonTensor {
  shape: number[];
  dtype?: 'float32' | 'int32';
  data: number[];
}

export type HostTensor = { shape: number[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array };

/**
 * Reads `key` from a JSON object of tensors and checks it: present, {shape, data}, data length
 * equal to the product of the shape, finite numbers, and the rank asked for. Integer tensors
 * must hold integers.
 */
export function readJsonTensor(obj: Record<string, unknown>, key: string, file: string, want: { rank?: number; dtype: 'float32' | 'int32'; optional?: boolean }): HostTensor | undefined {
  const v = obj[key] as JsonTensor | undefined;
  if (v === undefined) {
    if (want.optional) return undefined;
    throw new GrerankError(`${file}: missing tensor "${key}"`);
  }
  if (!v || typeof v !== 'object' || !Array.isArray(v.shape) || !Array.isArray(v.data)) {
    throw new GrerankError(`${file}: "${key}" must be an object {"shape": [...], "data": [...]}`);
  }
  if (!v.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new GrerankError(`${file}: "${key}".shape must be non-negative integers, got ${JSON.stringify(v.shape)}`);
  if (want.rank !== undefined && v.shape.length !== want.rank) {
    throw new GrerankError(`${file}: "${key}" has rank ${v.shape.length} (shape [${v.shape.join(', ')}]), expected rank ${want.rank}`);
  }
  const n = v.shape.reduce((a, b) => a * b, 1);
  if (v.data.length !== n) throw new GrerankError(`${file}: "${key}" has ${v.data.length} values, but shape [${v.shape.join(', ')}] needs ${n}`);
  const data = want.dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = v.data[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new GrerankError(`${file}: "${key}".data[${i}] is ${JSON.stringify(x)}, expected a finite number`);
    if (want.dtype === 'int32' && !Number.isInteger(x)) throw new GrerankError(`${file}: "${key}".data[${i}] is ${x}, expected an integer`);
    data[i] = x;
  }
  return { shape: v.shape, dtype: want.dtype, data };
}

/** Encodes a host tensor as JSON with the goldens' conventions. */
export function toJsonTensor(shape: readonly number[], data: ArrayLike<number>, dtype: 'float32' | 'int32' = 'float32'): JsonTensor {
  return { shape: [...shape], dtype, data: Array.from(data) };
}

/** Checks that every id lies in [0, vocab) (or is `allowed`), naming the first one that does not. */
export function checkIds(t: HostTensor, key: string, file: string, vocab: number, allowed: readonly number[] = []): void {
  for (let i = 0; i < t.data.length; i++) {
    const x = t.data[i]!;
    if ((x < 0 || x >= vocab) && !allowed.includes(x)) {
      throw new GrerankError(`${file}: "${key}".data[${i}] = ${x} is outside the model's vocabulary [0, ${vocab})`);
    }
  }
}
