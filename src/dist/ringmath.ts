/**
 * The ring all-reduce's element-wise arithmetic on float32 chunks: partial sum += own share,
 * average of the last two shares (with a non-finite check), and a finiteness scan.
 *
 * Why WebAssembly: V8 does not vectorise typed-array loops, so a plain `v[i] += w[i]` costs about
 * 2 ns per element here, which made the arithmetic, not the sockets, about 70% of an all-reduce's
 * time on one host (profiled). The SIMD kernels (ringmath.wat, f32x4) work on a small scratch area
 * in their own memory: each block of a chunk is copied in (memcpy), computed, and copied back, so
 * the data never has to live in wasm memory (ZeroMQ owns the received frames; the bucket belongs
 * to the reducer). Where WebAssembly SIMD is unavailable the scalar loops are used.
 *
 * Results: `add` is exact float32 addition. `average` computes (v + w) / n in float32 (the scalar
 * fallback computes it in float64 and rounds once, which can differ in the last bit); every rank
 * receives the one value its owner computed, so ranks stay bit-identical either way.
 */
import { RINGMATH_WASM_BASE64 } from './ringmath-wasm.js';

export interface RingMath {
  readonly name: 'simd' | 'scalar';
  /** v += w, element-wise (same lengths). */
  addInto(v: Float32Array, w: Float32Array): void;
  /** v = w = (v + w) / n, element-wise; true when some result is not finite. */
  averageInto(v: Float32Array, w: Float32Array, n: number): boolean;
  /** True when every element is finite. */
  allFinite(a: Float32Array): boolean;
}

export const scalarMath: RingMath = {
  name: 'scalar',
  addInto(v, w) {
    const len = v.length;
    for (let i = 0; i < len; i++) v[i] = v[i]! + w[i]!;
  },
  averageInto(v, w, n) {
    const len = v.length;
    let bad = false;
    for (let i = 0; i < len; i++) {
      const s = (v[i]! + w[i]!) / n;
      v[i] = s;
      w[i] = s;
      if (s - s !== 0) bad = true;
    }
    return bad;
  },
  allFinite(a) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (v - v !== 0) return false;
    }
    return true;
  },
};

interface Kernels {
  memory: WebAssembly.Memory;
  add(a: number, b: number, vectors: number): void;
  average(a: number, b: number, vectors: number, n: number): number;
  nonFinite(a: number, vectors: number): number;
}

/** Elements per scratch block: 256 KiB per operand, so both stay in L2 while the kernel runs. */
const BLOCK = 1 << 16;

function simdMathFrom(k: Kernels): RingMath {
  // The memory never grows (8 pages, declared in the module), so these views stay valid.
  const A = new Float32Array(k.memory.buffer, 0, BLOCK);
  const B = new Float32Array(k.memory.buffer, BLOCK * 4, BLOCK);
  const bOff = BLOCK * 4;
  /** Copies x[o, o+len) into S and zero-pads it to whole vectors; returns the vector count. */
  const load = (S: Float32Array, x: Float32Array, o: number, len: number): number => {
    S.set(len === x.length ? x : x.subarray(o, o + len));
    const vectors = (len + 3) >> 2;
    S.fill(0, len, vectors << 2);
    return vectors;
  };
  return {
    name: 'simd',
    addInto(v, w) {
      for (let o = 0; o < v.length; o += BLOCK) {
        const len = Math.min(BLOCK, v.length - o);
        const vectors = load(A, v, o, len);
        load(B, w, o, len);
        k.add(0, bOff, vectors);
        v.set(A.subarray(0, len), o);
      }
    },
    averageInto(v, w, n) {
      let bad = false;
      for (let o = 0; o < v.length; o += BLOCK) {
        const len = Math.min(BLOCK, v.length - o);
        const vectors = load(A, v, o, len);
        load(B, w, o, len);
        if (k.average(0, bOff, vectors, n)) bad = true;
        const r = A.subarray(0, len);
        v.set(r, o);
        w.set(r, o);
      }
      return bad;
    },
    allFinite(a) {
      for (let o = 0; o < a.length; o += BLOCK) {
        const len = Math.min(BLOCK, a.length - o);
        if (k.nonFinite(0, load(A, a, o, len))) return false;
      }
      return true;
    },
  };
}

/** The SIMD implementation, or undefined where this runtime has no WebAssembly SIMD. */
export function loadSimdMath(): RingMath | undefined {
  try {
    const bytes = Buffer.from(RINGMATH_WASM_BASE64, 'base64');
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) return undefined;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    return simdMathFrom(instance.exports as unknown as Kernels);
  } catch {
    return undefined;
  }
}

/**
 * The implementation the all-reduce uses: SIMD where available. GRERANK_RING_MATH=scalar forces
 * the scalar loops (for benchmarks and to rule the kernels out when debugging).
 */
export const ringMath: RingMath = (process.env.GRERANK_RING_MATH === 'scalar' ? undefined : loadSimdMath()) ?? scalarMath;
