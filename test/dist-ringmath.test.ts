// The all-reduce's arithmetic kernels (src/dist/ringmath.ts): the WebAssembly SIMD kernels against
// float32 arithmetic written out element by element, across block boundaries and vector tails.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSimdMath, ringMath, scalarMath, type RingMath } from '../src/dist/ringmath.js';
import { RINGMATH_WASM_BASE64 } from '../src/dist/ringmath-wasm.js';
// @ts-expect-error: a plain .mjs build script without type declarations
import { compileWat, embedded, OUT, WAT } from '../scripts/build-wasm.mjs';

const BLOCK = 1 << 16; // ringmath.ts's scratch block (elements)
const LENGTHS = [0, 1, 3, 4, 5, 17, BLOCK - 1, BLOCK, BLOCK + 5, 3 * BLOCK + 7];

function random(len: number, seed: number): Float32Array {
  const a = new Float32Array(len);
  let s = seed >>> 0;
  for (let i = 0; i < len; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 2 ** 32) * 2 - 1) * 10 ** ((s % 7) - 3);
  }
  return a;
}

/** Views that do not start at their buffer's beginning, as the bucket's chunks do. */
function offsetView(a: Float32Array, offset: number): Float32Array {
  const big = new Float32Array(a.length + offset + 3);
  big.set(a, offset);
  return big.subarray(offset, offset + a.length);
}

/** The first index where the arrays differ (bit for bit), or -1 (toEqual is slow on 200k floats). */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

const simd = loadSimdMath();

describe('ring arithmetic kernels', () => {
  it('the embedded module is what wabt makes of ringmath.wat (run `npm run build:wasm` after editing it)', async () => {
    const bytes: Buffer = await compileWat(WAT);
    expect(Buffer.from(RINGMATH_WASM_BASE64, 'base64').equals(bytes)).toBe(true);
    expect(readFileSync(OUT, 'utf8')).toBe(embedded(bytes));
  });

  it('Node has WebAssembly SIMD, so the all-reduce uses the SIMD kernels', () => {
    expect(simd).toBeDefined();
    expect(ringMath.name).toBe(process.env.GRERANK_RING_MATH === 'scalar' ? 'scalar' : 'simd');
  });

  for (const impl of [simd, scalarMath] as RingMath[]) {
    const name = impl?.name ?? 'simd (unavailable)';
    it(`${name}: addInto is float32 addition, element by element`, () => {
      for (const len of LENGTHS) {
        const v = offsetView(random(len, len + 1), 1);
        const w = offsetView(random(len, len + 2), 2);
        const expected = Float32Array.from(v, (x, i) => Math.fround(x + w[i]!));
        const wBefore = w.slice();
        impl.addInto(v, w);
        expect(firstDiff(v, expected)).toBe(-1);
        expect(firstDiff(w, wBefore)).toBe(-1);
      }
    });

    it(`${name}: averageInto writes (v + w) / n into both and reports no non-finite value`, () => {
      for (const n of [2, 3, 7]) {
        for (const len of LENGTHS) {
          const v = offsetView(random(len, 3 * len + n), 3);
          const w = random(len, 5 * len + n);
          // SIMD rounds the sum to float32 before dividing; the scalar loop divides the exact sum.
          const f32 = Float32Array.from(v, (x, i) => Math.fround(Math.fround(x + w[i]!) / n));
          const f64 = Float32Array.from(v, (x, i) => Math.fround((x + w[i]!) / n));
          expect(impl.averageInto(v, w, n)).toBe(false);
          expect(firstDiff(v, impl.name === 'simd' ? f32 : f64)).toBe(-1);
          expect(firstDiff(w, v)).toBe(-1);
        }
      }
    });

    it(`${name}: a NaN or an infinity anywhere is reported, in any block and in a vector's tail`, () => {
      const len = 2 * BLOCK + 6; // the last vector of the last block is half padding
      for (const at of [0, 5, BLOCK - 1, BLOCK + 3, len - 1]) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const a = random(len, at);
          expect(impl.allFinite(a)).toBe(true);
          a[at] = bad;
          expect(impl.allFinite(a)).toBe(false);
          const w = random(len, at + 1);
          expect(impl.averageInto(a.slice(), w, 2)).toBe(true);
        }
      }
      // Finite shares whose float32 sum overflows: SIMD sums in float32, as every partial sum of
      // the reduce-scatter is stored, and reports it; the scalar loop sums in float64 (finite).
      const big = new Float32Array(9).fill(3e38);
      expect(impl.averageInto(big.slice(), big.slice(), 2)).toBe(impl.name === 'simd');
      expect(impl.allFinite(new Float32Array(0))).toBe(true);
    });
  }
});
