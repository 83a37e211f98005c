/**
 * The kernels and gradients of src/backend/kernels on the wasm backend, checked against the cpu
 * backend (and, for the gradients, against finite differences). Loads tfjs-core, cpu and wasm
 * only (not the @tensorflow/tfjs umbrella), so every gradient here is ours.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { GRADIENT_KERNELS, registerWasmKernels } from '../src/backend/kernels/index.js';

type Backend = 'cpu' | 'wasm';

/** Deterministic uniform [0, 1) numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const size = (shape: number[]) => shape.reduce((p, c) => p * c, 1);

/** Normal-ish values. */
function randn(shape: number[], seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: size(shape) }, () => (r() + r() + r() - 1.5) * 2);
}

/**
 * Distinct values 0.1 apart, none within 0.05 of 0 (shuffled): safe for finite differences of
 * kinked ops (relu, abs, max, maximum, clip at ±0.5 ... with eps 1e-2).
 */
function spaced(shape: number[], seed: number, offset = 0): Float32Array {
  const n = size(shape);
  const r = rng(seed);
  const v = Array.from({ length: n }, (_, i) => (i - Math.floor(n / 2)) * 0.1 + 0.05 + offset);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return Float32Array.from(v);
}

function ints(n: number, max: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * max));
}

interface Input {
  shape: number[];
  data: Float32Array;
}
const input = (shape: number[], data: Float32Array): Input => ({ shape, data });

async function use(backend: Backend): Promise<void> {
  if (tf.getBackend() !== backend) expect(await tf.setBackend(backend)).toBe(true);
}

/** Fixed weights for the loss sum(out · w), so that every output element matters differently. */
function lossOf(out: tf.Tensor): tf.Scalar {
  const w = tf.tensor(randn(out.shape, 12345 + out.size), out.shape);
  return tf.sum(tf.mul(tf.cast(out, 'float32'), w));
}

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

/** Forward output and gradients of sum(fn(xs) · w) w.r.t. every input, on `backend`. */
async function gradsOn(backend: Backend, fn: Fn, inputs: Input[]): Promise<{ out: number[]; grads: number[][] }> {
  await use(backend);
  return tf.tidy(() => {
    const xs = inputs.map((x) => tf.tensor(x.data, x.shape));
    const out = Array.from(fn(...xs).dataSync());
    const grads = tf.grads((...ys: tf.Tensor[]) => lossOf(fn(...ys)))(xs);
    grads.forEach((g, i) => expect(g.shape).toEqual(inputs[i].shape));
    return { out, grads: grads.map((g) => Array.from(g.dataSync())) };
  });
}

/** Central finite differences of sum(fn(xs) · w) on the cpu backend. */
async function numericGrads(fn: Fn, inputs: Input[], eps = 1e-2): Promise<number[][]> {
  await use('cpu');
  const f = (data: Float32Array[]) =>
    tf.tidy(() => lossOf(fn(...data.map((d, i) => tf.tensor(d, inputs[i].shape)))).dataSync()[0]);
  return inputs.map((x, k) => {
    const g: number[] = [];
    for (let i = 0; i < x.data.length; i++) {
      const plus = inputs.map((y) => Float32Array.from(y.data));
      const minus = inputs.map((y) => Float32Array.from(y.data));
      plus[k][i] += eps;
      minus[k][i] -= eps;
      g.push((f(plus) - f(minus)) / (2 * eps));
    }
    return g;
  });
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol = atol, what = ''): void {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (err > worst) [worst, at] = [err, i];
  }
  if (at >= 0) expect.fail(`${what}: element ${at}: ${actual[at]} vs ${expected[at]}`);
}

/** Forward and gradients equal on wasm and cpu, and the gradients equal finite differences. */
interface CheckOpts {
  /** Compare with finite differences too (default true). */
  numeric?: boolean;
  tol?: number;
  /** What to run on cpu instead of `fn`, where tfjs' cpu kernel is wrong. */
  cpuFn?: Fn;
}

async function checkOp(name: string, fn: Fn, inputs: Input[], opts: CheckOpts = {}): Promise<void> {
  const cpu = await gradsOn('cpu', opts.cpuFn ?? fn, inputs);
  const wasm = await gradsOn('wasm', fn, inputs);
  expectClose(wasm.out, cpu.out, 1e-5, 1e-5, `${name} forward wasm vs cpu`);
  cpu.grads.forEach((g, i) => expectClose(wasm.grads[i], g, 1e-5, 1e-4, `${name} grad ${i} wasm vs cpu`));
  if (opts.numeric !== false) {
    const num = await numericGrads(opts.cpuFn ?? fn, inputs);
    const tol = opts.tol ?? 5e-3;
    num.forEach((g, i) => expectClose(cpu.grads[i], g, tol, 2e-2, `${name} grad ${i} vs finite differences`));
  }
}

beforeAll(async () => {
  registerWasmKernels();
  await use('wasm');
  await use('cpu');
});

describe('registerWasmKernels', () => {
  it('registers the kernels wasm lacks, and the gradients', () => {
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    expect(tf.getKernel('Einsum', 'wasm')).toBeDefined();
    for (const k of ['GatherV2', 'UnsortedSegmentSum', 'BatchMatMul', 'RealDiv', 'Softmax', 'Einsum', 'Greater']) {
      expect(GRADIENT_KERNELS).toContain(k);
      expect(tf.getGradient(k)).toBeDefined();
    }
    registerWasmKernels(); // idempotent
  });
});

describe('UnsortedSegmentSum on wasm', () => {
  const cases: Array<{ x: number[]; ids: number[]; numSegments: number }> = [
    { x: [7, 5], ids: [3, 1, 3, 0, 3, 1, 6], numSegments: 12 },
    { x: [9], ids: [0, 0, 0, 2, 2, 8, 1, 0, 5], numSegments: 9 },
    { x: [6, 3, 2], ids: [5, 5, 0, 1, 5, 0], numSegments: 7 },
    { x: [40, 16], ids: ints(40, 10, 7), numSegments: 50 },
    { x: [5, 4], ids: [-1, 2, 7, 2, 0], numSegments: 4 }, // negative and too-large ids are dropped
  ];
  for (const c of cases) {
    it(`x [${c.x}], ${c.ids.length} ids into ${c.numSegments} segments equals cpu`, async () => {
      const xData = randn(c.x, c.x.length * 31 + c.numSegments);
      const run = async (backend: Backend) => {
        await use(backend);
        return tf.tidy(() => {
          const out = tf.unsortedSegmentSum(tf.tensor(xData, c.x), tf.tensor1d(c.ids, 'int32'), c.numSegments);
          expect(out.shape).toEqual([c.numSegments, ...c.x.slice(1)]);
          return Array.from(out.dataSync());
        });
      };
      expectClose(await run('wasm'), await run('cpu'), 1e-6, 1e-6, 'unsortedSegmentSum');
    });
  }

  it('handles int32 x, empty ids and segment ids of rank 2', async () => {
    await use('wasm');
    tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32');
      const out = tf.unsortedSegmentSum(x, tf.tensor1d([1, 1, 0], 'int32'), 3);
      expect(out.dtype).toBe('int32');
      expect(out.arraySync()).toEqual([[5, 6], [4, 6], [0, 0]]);
      const empty = tf.unsortedSegmentSum(tf.zeros([0, 4]), tf.tensor1d([], 'int32'), 3);
      expect(empty.arraySync()).toEqual([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
      // TF semantics: segment ids may cover several leading axes of x.
      const x3 = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
      const r = tf.engine().runKernel('UnsortedSegmentSum', { x: x3, segmentIds: tf.tensor2d([0, 2, 2, 0], [2, 2], 'int32') }, { numSegments: 3 }) as tf.Tensor;
      expect(r.arraySync()).toEqual([[8, 10], [0, 0], [8, 10]]);
    });
  });

  it('is O(n·d): a 32128 x 256 embedding gradient from 2560 tokens takes well under a second', async () => {
    await use('wasm');
    const ids = tf.tensor1d(ints(2560, 32128, 3), 'int32');
    const x = tf.randomNormal([2560, 256]);
    const t0 = performance.now();
    const out = tf.unsortedSegmentSum(x, ids, 32128);
    out.dataSync();
    const ms = performance.now() - t0;
    tf.dispose([ids, x, out]);
    expect(ms).toBeLessThan(1000);
  });
});

describe('gather gradient (embedding lookups) on wasm equals cpu', () => {
  const cases: Array<{ name: string; params: number[]; indices: number[]; indicesShape: number[]; axis?: number; batchDims?: number }> = [
    { name: 'embedding [50, 8], ids [2, 7] with repeats', params: [50, 8], indices: [3, 3, 7, 0, 49, 3, 7, 12, 3, 0, 0, 1, 2, 3], indicesShape: [2, 7] },
    { name: 'axis 1', params: [3, 6, 2], indices: [5, 0, 5, 2], indicesShape: [4], axis: 1 },
    { name: 'axis -1', params: [3, 4], indices: [1, 1, 3], indicesShape: [3], axis: -1 },
    { name: 'batchDims 1', params: [2, 5, 3], indices: [4, 4, 0, 1, 2, 1], indicesShape: [2, 3], axis: 1, batchDims: 1 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const fn: Fn = (p) => tf.gather(p, tf.tensor(c.indices, c.indicesShape, 'int32'), c.axis ?? 0, c.batchDims ?? 0);
      await checkOp(`gather ${c.name}`, fn, [input(c.params, randn(c.params, 5))], { numeric: size(c.params) <= 100 });
    });
  }

  it('tf.variableGrads of an embedding Variable on wasm equals cpu', async () => {
    const init = randn([30, 4], 9);
    const ids = [1, 29, 1, 1, 5, 0, 29];
    const run = async (backend: Backend) => {
      await use(backend);
      const v = tf.variable(tf.tensor2d(init, [30, 4]), true, `emb_${backend}`);
      const { value, grads } = tf.variableGrads(() => lossOf(tf.gather(v, tf.tensor1d(ids, 'int32'))), [v]);
      const g = Array.from(grads[v.name].dataSync());
      tf.dispose([value, grads[v.name], v]);
      return g;
    };
    const wasm = await run('wasm');
    const cpu = await run('cpu');
    expectClose(wasm, cpu, 1e-6, 1e-5, 'embedding gradient');
    // Rows never looked up get no gradient.
    expect(wasm.slice(2 * 4, 5 * 4).every((v) => v === 0)).toBe(true);
  });
});

describe('Einsum on wasm', () => {
  // tfjs' cpu Einsum is wrong for these two (a scalar output gives [6, 6] for ones; an identity
  // equation aliases its input, doubling the gradient): compare with an equivalent there.
  const cpuEquivalent: Record<string, Fn> = {
    'ij,jk->': (a, b) => tf.sum(tf.matMul(a, b)),
    'ij->ij': (a) => tf.mul(a, 1),
  };
  const cases: Array<[string, number[][]]> = [
    ['ij,jk->ik', [[3, 4], [4, 5]]],
    ['ij,kj->ik', [[3, 4], [5, 4]]],
    ['ji,jk->ik', [[4, 3], [4, 5]]],
    ['bij,bjk->bik', [[2, 3, 4], [2, 4, 5]]],
    ['bhqd,bhkd->bhqk', [[2, 2, 3, 4], [2, 2, 5, 4]]],
    ['bhqk,bhkd->bqhd', [[2, 2, 3, 5], [2, 2, 5, 4]]],
    ['abc,cd->abd', [[2, 3, 4], [4, 5]]],
    ['ij,ij->i', [[3, 4], [3, 4]]],
    ['ij,j->i', [[3, 4], [4]]],
    ['i,j->ij', [[3], [4]]],
    ['ij,jk->', [[2, 3], [3, 2]]],
    ['ijm,jk->ik', [[3, 4, 2], [4, 5]]],
    ['ij,jkl->kil', [[2, 3], [3, 4, 2]]],
    ['ij->ji', [[3, 4]]],
    ['ijk->ki', [[2, 3, 4]]],
    ['ij->ij', [[2, 3]]],
    ['ij->', [[2, 3]]],
  ];
  for (const [eq, shapes] of cases) {
    it(`${eq} forward and gradients equal cpu and finite differences`, async () => {
      const inputs = shapes.map((s, i) => input(s, randn(s, 100 + i + eq.length)));
      await checkOp(`einsum ${eq}`, (...xs) => tf.einsum(eq, ...xs), inputs, { cpuFn: cpuEquivalent[eq] });
    });
  }

  it('rejects what tf.einsum rejects', async () => {
    await use('wasm');
    const a = tf.ones([2, 2]);
    expect(() => tf.einsum('ii->i', a)).toThrow(/duplicate axes/);
    expect(() => tf.einsum('ij,jk,kl->il', a, a, a)).toThrow(/more than 2 input tensors/);
    expect(() => tf.einsum('ij,jk->ik', a, tf.ones([3, 2]))).toThrow(/Expected dimension/);
    a.dispose();
  });

  it('matches tf.matMul for an attention-sized product', async () => {
    await use('wasm');
    tf.tidy(() => {
      const q = tf.randomNormal([2, 4, 16, 8]);
      const k = tf.randomNormal([2, 4, 20, 8]);
      const viaEinsum = tf.einsum('bhqd,bhkd->bhqk', q, k);
      const viaMatMul = tf.matMul(q, k, false, true);
      expectClose(viaEinsum.dataSync(), viaMatMul.dataSync(), 1e-5, 1e-5, 'einsum vs matMul');
    });
  });
});

describe('BatchMatMul on wasm (routed onto XNNPACK)', () => {
  // [a, b] without transposes; each runs with every transposeA/transposeB combination. Sizes are
  // above the wrapper's thresholds unless noted, so that every path runs: 2-D transposed, b shared
  // (folded into one 2-D product), one product per batch entry, and the original kernel.
  const shapes: Array<[number[], number[]]> = [
    [[3, 4], [4, 5]], // tiny: original kernel
    [[40, 64], [64, 50]],
    [[2, 3, 40, 64], [2, 3, 64, 50]],
    [[2, 3, 40, 64], [64, 50]],
    [[2, 3, 40, 64], [1, 1, 64, 50]],
    [[40, 64], [2, 3, 64, 50]],
    [[3, 40, 64], [2, 3, 64, 50]],
    [[2, 1, 40, 64], [1, 3, 64, 50]], // broadcast along an inner batch axis
    [[2, 3, 40, 64], [2, 1, 64, 50]],
    [[2, 1, 2, 3], [1, 3, 3, 2]], // tiny, but the original kernel is wrong here
    [[8, 16, 32], [8, 32, 64]],
    [[16, 8, 8], [16, 8, 8]], // small batches: original kernel
  ];
  const swap = (s: number[]) => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];
  for (const [sa, sb] of shapes) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`[${sa}] x [${sb}]${ta ? ' transposeA' : ''}${tb ? ' transposeB' : ''}`, async () => {
        const shapeA = ta ? swap(sa) : sa;
        const shapeB = tb ? swap(sb) : sb;
        const a = randn(shapeA, sa.length * 7 + 1);
        const b = randn(shapeB, sb.length * 7 + 2);
        const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
        // Reference: cpu, with both operands broadcast to the full batch shape first (tfjs' own
        // kernels get batches that broadcast along an inner axis wrong).
        await use('cpu');
        const ref = tf.tidy(() => {
          const ab = tf.broadcastTo(tf.tensor(a, shapeA), [...batch, ...shapeA.slice(-2)]);
          const bb = tf.broadcastTo(tf.tensor(b, shapeB), [...batch, ...shapeB.slice(-2)]);
          const o = tf.matMul(ab, bb, ta, tb);
          return { shape: o.shape, data: Array.from(o.dataSync()) };
        });
        await use('wasm');
        const before = tf.engine().backend.numDataIds();
        const got = tf.tidy(() => {
          const o = tf.matMul(tf.tensor(a, shapeA), tf.tensor(b, shapeB), ta, tb);
          return { shape: o.shape, data: Array.from(o.dataSync()) };
        });
        expect(tf.engine().backend.numDataIds()).toBe(before); // no leaked intermediates
        expect(got.shape).toEqual(ref.shape);
        expectClose(got.data, ref.data, 1e-4, 1e-4, 'matMul');
      });
    }
  }

  it('gradients through the wrapped paths equal cpu (dense layer and attention shapes)', async () => {
    const dense: Fn = (x, w) => tf.matMul(x, w);
    await checkOp('dense', dense, [input([48, 40], randn([48, 40], 1)), input([40, 56], randn([40, 56], 2))], { numeric: false });
    const attn: Fn = (q, k, v) => tf.matMul(tf.softmax(tf.matMul(q, k, false, true)), v);
    const s = [2, 2, 24, 32];
    await checkOp('attention', attn, [input(s, randn(s, 3)), input(s, randn(s, 4)), input(s, randn(s, 5))], { numeric: false });
  });
});

describe('Tile and GatherV2 on wasm (JS block copies)', () => {
  const tiles: Array<[number[], number[]]> = [
    [[3], [4]],
    [[2, 3], [3, 2]],
    [[1, 1024], [7, 1]],
    [[2, 1, 3], [2, 4, 1]],
    [[1, 2, 1, 2, 1], [2, 1, 3, 1, 2]],
    [[0, 3], [2, 2]],
    [[5, 1], [1, 6]],
  ];
  for (const [shape, reps] of tiles) {
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      it(`tile [${shape}] by [${reps}] (${dtype}) equals cpu`, async () => {
        const data = Array.from({ length: size(shape) }, (_, i) => (dtype === 'bool' ? i % 3 === 0 : i - 3));
        const run = async (backend: Backend) => {
          await use(backend);
          return tf.tidy(() => {
            const o = tf.tile(tf.tensor(data as number[], shape, dtype), reps);
            return { shape: o.shape, dtype: o.dtype, data: Array.from(o.dataSync()) };
          });
        };
        expect(await run('wasm')).toEqual(await run('cpu'));
      });
    }
  }

  const gathers: Array<{ x: number[]; indices: number[]; indicesShape: number[]; axis: number; batchDims?: number }> = [
    { x: [50, 32], indices: [3, 3, 49, 0, 7], indicesShape: [5], axis: 0 },
    { x: [6, 5], indices: [4, 0, 4], indicesShape: [3], axis: 1 },
    { x: [2, 6, 3], indices: [5, 1, 1, 0], indicesShape: [2, 2], axis: 1 },
    { x: [2, 5, 3], indices: [4, 4, 0, 1, 2, 1], indicesShape: [2, 3], axis: 1, batchDims: 1 },
    { x: [2, 3, 5], indices: [4, 0, 1, 2], indicesShape: [2, 2], axis: 2, batchDims: 1 },
  ];
  for (const g of gathers) {
    for (const dtype of ['float32', 'int32'] as const) {
      it(`gather x [${g.x}] axis ${g.axis} batchDims ${g.batchDims ?? 0} (${dtype}) equals cpu`, async () => {
        const run = async (backend: Backend) => {
          await use(backend);
          return tf.tidy(() => {
            const x = tf.tensor(Array.from({ length: size(g.x) }, (_, i) => i * 3 - 7), g.x, dtype);
            const o = tf.gather(x, tf.tensor(g.indices, g.indicesShape, 'int32'), g.axis, g.batchDims ?? 0);
            return { shape: o.shape, dtype: o.dtype, data: Array.from(o.dataSync()) };
          });
        };
        expect(await run('wasm')).toEqual(await run('cpu'));
      });
    }
  }

  it('gather rejects an out-of-range index', async () => {
    await use('wasm');
    const x = tf.ones([4, 2]);
    const i = tf.tensor1d([1, 4], 'int32');
    expect(() => tf.gather(x, i)).toThrow(/index value 4 is not in \[0, 3\]/);
    tf.dispose([x, i]);
  });
});

describe('gradients of the ops our models use: wasm equals cpu equals finite differences', () => {
  const s = spaced;
  const pos = (shape: number[], seed: number) => s(shape, seed).map((v) => Math.abs(v) + 0.5);
  const cases: Array<[string, Fn, Input[], CheckOpts?]> = [
    ['add (broadcast)', (a, b) => tf.add(a, b), [input([2, 3, 4], s([2, 3, 4], 1)), input([3, 1], s([3, 1], 2))]],
    ['sub (broadcast)', (a, b) => tf.sub(a, b), [input([3, 1], s([3, 1], 3)), input([2, 3, 4], s([2, 3, 4], 4))]],
    ['mul (broadcast)', (a, b) => tf.mul(a, b), [input([3, 4], s([3, 4], 5)), input([4], s([4], 6))]],
    ['div (broadcast)', (a, b) => tf.div(a, b), [input([3, 4], s([3, 4], 7)), input([3, 1], pos([3, 1], 8))]],
    ['maximum (broadcast)', (a, b) => tf.maximum(a, b), [input([3, 4], s([3, 4], 9)), input([4], s([4], 10, 0.02))]],
    ['minimum (broadcast)', (a, b) => tf.minimum(a, b), [input([3, 4], s([3, 4], 11)), input([4], s([4], 12, 0.02))]],
    ['squaredDifference (broadcast)', (a, b) => tf.squaredDifference(a, b), [input([3, 4], s([3, 4], 13)), input([4], s([4], 14))]],
    ['pow', (a, b) => tf.pow(a, b), [input([3, 4], pos([3, 4], 15)), input([4], s([4], 16))]],
    ['pow scalar exponent', (a) => tf.pow(a, tf.scalar(3)), [input([3, 4], s([3, 4], 17))]],
    ['addN', (a, b) => tf.addN([a, b, a]), [input([3, 4], s([3, 4], 18)), input([3, 4], s([3, 4], 19))]],
    ['neg', (a) => tf.neg(a), [input([3, 4], s([3, 4], 20))]],
    ['abs', (a) => tf.abs(a), [input([3, 4], s([3, 4], 21))]],
    ['square', (a) => tf.square(a), [input([3, 4], s([3, 4], 22))]],
    ['sqrt', (a) => tf.sqrt(a), [input([3, 4], pos([3, 4], 23))]],
    ['rsqrt', (a) => tf.rsqrt(a), [input([3, 4], pos([3, 4], 24))]],
    ['reciprocal', (a) => tf.reciprocal(a), [input([3, 4], pos([3, 4], 25))]],
    ['exp', (a) => tf.exp(a), [input([3, 4], s([3, 4], 26))]],
    ['expm1', (a) => tf.expm1(a), [input([3, 4], s([3, 4], 27))]],
    ['log', (a) => tf.log(a), [input([3, 4], pos([3, 4], 28))]],
    ['log1p', (a) => tf.log1p(a), [input([3, 4], pos([3, 4], 29))]],
    ['erf', (a) => tf.erf(a), [input([3, 4], s([3, 4], 30))]],
    ['sin, cos', (a) => tf.add(tf.sin(a), tf.cos(a)), [input([3, 4], s([3, 4], 31))]],
    ['tanh', (a) => tf.tanh(a), [input([3, 4], s([3, 4], 32))]],
    ['sigmoid', (a) => tf.sigmoid(a), [input([3, 4], s([3, 4], 33))]],
    ['softplus', (a) => tf.softplus(a), [input([3, 4], s([3, 4], 34))]],
    ['relu', (a) => tf.relu(a), [input([3, 4], s([3, 4], 35))]],
    ['relu6', (a) => tf.relu6(tf.mul(a, 10)), [input([3, 4], s([3, 4], 36, 0.003))]],
    ['leakyRelu', (a) => tf.leakyRelu(a, 0.1), [input([3, 4], s([3, 4], 37))]],
    ['elu', (a) => tf.elu(a), [input([3, 4], s([3, 4], 38))]],
    ['selu', (a) => tf.selu(a), [input([3, 4], s([3, 4], 39))]],
    ['gelu (tanh form)', (a) => tf.mul(tf.mul(a, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(a, tf.mul(0.044715, tf.pow(a, 3))))))), [input([3, 4], s([3, 4], 40))]],
    ['gelu (erf form)', (a) => tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.div(a, Math.SQRT2)))), [input([3, 4], s([3, 4], 41))]],
    ['clipByValue', (a) => tf.clipByValue(a, -0.5, 0.5), [input([3, 4], s([3, 4], 42, 0.02))]],
    // Cast passes the gradient straight through (as upstream does), even through an int cast.
    ['cast', (a) => tf.add(tf.cast(tf.cast(a, 'int32'), 'float32'), a), [input([3, 4], s([3, 4], 43))], { numeric: false }],
    ['where with a mask from the input', (a, b) => tf.where(tf.greater(a, 0), tf.mul(a, 2), tf.mul(b, b)), [input([3, 4], s([3, 4], 44)), input([3, 4], s([3, 4], 45))]],
    ['logical masks', (a) => tf.mul(a, tf.cast(tf.logicalAnd(tf.greaterEqual(a, -0.3), tf.lessEqual(a, 0.4)), 'float32')), [input([3, 4], s([3, 4], 46))]],
    ['sum (axis)', (a) => tf.sum(a, 1), [input([3, 4], s([3, 4], 47))]],
    ['sum (keepDims, two axes)', (a) => tf.sum(a, [0, 2], true), [input([2, 3, 4], s([2, 3, 4], 48))]],
    ['sum (all)', (a) => tf.sum(a), [input([3, 4], s([3, 4], 49))]],
    ['mean', (a) => tf.mean(a, -1, true), [input([3, 4], s([3, 4], 50))]],
    ['mean (all)', (a) => tf.mean(a), [input([2, 3], s([2, 3], 51))]],
    ['max', (a) => tf.max(a, 1), [input([3, 4], s([3, 4], 52))]],
    ['min', (a) => tf.min(a, -1, true), [input([3, 4], s([3, 4], 53))]],
    ['prod', (a) => tf.prod(a, 1), [input([3, 4], s([3, 4], 54))]],
    ['cumsum', (a) => tf.cumsum(a, 1), [input([3, 4], s([3, 4], 55))]],
    ['cumsum (exclusive, reverse)', (a) => tf.cumsum(a, 0, true, true), [input([3, 4], s([3, 4], 56))]],
    ['softmax', (a) => tf.softmax(a), [input([3, 4], s([3, 4], 57))]],
    ['logSoftmax', (a) => tf.logSoftmax(a), [input([3, 4], s([3, 4], 58))]],
    ['logSumExp', (a) => tf.logSumExp(a, -1), [input([3, 4], s([3, 4], 59))]],
    ['moments', (a) => { const { mean, variance } = tf.moments(a, -1, true); return tf.concat([mean, variance], 1); }, [input([3, 4], s([3, 4], 60))]],
    ['layer norm', (a) => { const { mean, variance } = tf.moments(a, -1, true); return tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-6))); }, [input([3, 5], randn([3, 5], 61))], { tol: 2e-2 }],
    ['matMul', (a, b) => tf.matMul(a, b), [input([3, 4], s([3, 4], 62)), input([4, 5], s([4, 5], 63))]],
    ['matMul transposeA', (a, b) => tf.matMul(a, b, true, false), [input([4, 3], s([4, 3], 64)), input([4, 5], s([4, 5], 65))]],
    ['matMul transposeB', (a, b) => tf.matMul(a, b, false, true), [input([3, 4], s([3, 4], 66)), input([5, 4], s([5, 4], 67))]],
    ['matMul transposeA transposeB', (a, b) => tf.matMul(a, b, true, true), [input([4, 3], s([4, 3], 68)), input([5, 4], s([5, 4], 69))]],
    ['matMul 4-D', (a, b) => tf.matMul(a, b, false, true), [input([2, 2, 3, 4], s([2, 2, 3, 4], 70)), input([2, 2, 5, 4], s([2, 2, 5, 4], 71))]],
    ['matMul 4-D broadcast batch', (a, b) => tf.matMul(a, b), [input([2, 3, 2, 4], s([2, 3, 2, 4], 72)), input([1, 1, 4, 3], s([1, 1, 4, 3], 73))]],
    ['matMul 3-D x 2-D', (a, b) => tf.matMul(a, b), [input([2, 3, 4], s([2, 3, 4], 74)), input([4, 2], s([4, 2], 75))]],
    ['reshape', (a) => tf.reshape(a, [4, 3]), [input([3, 4], s([3, 4], 76))]],
    ['transpose 4-D', (a) => tf.transpose(a, [0, 2, 1, 3]), [input([2, 3, 2, 2], s([2, 3, 2, 2], 77))]],
    ['concat', (a, b) => tf.concat([a, b], 1), [input([3, 4], s([3, 4], 78)), input([3, 2], s([3, 2], 79))]],
    ['slice', (a) => tf.slice(a, [1, 1], [2, 2]), [input([3, 4], s([3, 4], 80))]],
    ['stridedSlice', (a) => tf.stridedSlice(a, [0, 3], [3, 0], [2, -1]), [input([3, 4], s([3, 4], 81))]],
    ['stridedSlice (unit strides, shrink)', (a) => tf.stridedSlice(a, [1, 0], [2, 3], [1, 1], 0, 0, 0, 0, 1), [input([3, 4], s([3, 4], 82))]],
    ['stack', (a, b) => tf.stack([a, b], 1), [input([3, 4], s([3, 4], 83)), input([3, 4], s([3, 4], 84))]],
    ['unstack', (a) => tf.mul(tf.unstack(a, 1)[0], tf.unstack(a, 1)[2]), [input([3, 4], s([3, 4], 85))]],
    ['split', (a) => { const [x, y] = tf.split(a, [1, 3], 1); return tf.mul(x, tf.sum(y, 1, true)); }, [input([3, 4], s([3, 4], 86))]],
    ['tile', (a) => tf.tile(a, [2, 1, 3]), [input([2, 3, 2], s([2, 3, 2], 87))]],
    ['tile rank 5', (a) => tf.tile(a, [1, 2, 1, 1, 2]), [input([1, 2, 1, 2, 2], s([1, 2, 1, 2, 2], 88))]],
    ['broadcastTo', (a) => tf.broadcastTo(a, [2, 3, 4]), [input([3, 1], s([3, 1], 89))]],
    ['expandDims, squeeze', (a) => tf.squeeze(tf.mul(tf.expandDims(a, 1), 2), [1]), [input([3, 4], s([3, 4], 90))]],
    ['pad', (a) => tf.pad(a, [[1, 0], [0, 2]], 0), [input([3, 4], s([3, 4], 91))]],
    ['reverse', (a) => tf.reverse(a, 1), [input([3, 4], s([3, 4], 92))]],
    ['unsortedSegmentSum (w.r.t. x)', (a) => tf.unsortedSegmentSum(a, tf.tensor1d([2, -1, 2, 0], 'int32'), 5), [input([4, 3], s([4, 3], 93))]],
    ['oneHot and softmax cross-entropy', (a) => tf.neg(tf.sum(tf.mul(tf.oneHot(tf.tensor1d([1, 0, 3], 'int32'), 4), tf.logSoftmax(a)), -1)), [input([3, 4], s([3, 4], 94))]],
    ['gumbel-softmax with a fixed noise', (a) => tf.softmax(tf.div(tf.sub(a, tf.log(tf.neg(tf.log(tf.tensor(spaced([3, 4], 95).map((v) => 0.3 + (0.5 * Math.abs(v)) / 0.65), [3, 4]))))), 0.5)), [input([3, 4], s([3, 4], 96))]],
  ];
  for (const [name, fn, inputs, opts] of cases) {
    it(name, async () => {
      await checkOp(name, fn, inputs, opts);
    });
  }
});

describe('forward-only ops on wasm equal cpu', () => {
  const cases: Array<[string, () => tf.Tensor | tf.Tensor[]]> = [
    ['topk', () => { const { values, indices } = tf.topk(tf.tensor(spaced([3, 10], 1), [3, 10]), 4); return [values, indices]; }],
    ['oneHot', () => tf.oneHot(tf.tensor1d([0, 3, 2, 3], 'int32'), 5)],
    ['scatterND', () => tf.scatterND(tf.tensor2d([[0], [2], [0]], [3, 1], 'int32'), tf.tensor(randn([3, 4], 2), [3, 4]), [5, 4])],
    ['argMax', () => tf.argMax(tf.tensor(spaced([3, 5], 3), [3, 5]), -1)],
    ['where (select)', () => tf.where(tf.tensor1d([true, false, true], 'bool'), tf.tensor1d([1, 2, 3]), tf.tensor1d([4, 5, 6]))],
    ['gatherND', () => tf.gatherND(tf.tensor(randn([3, 4], 4), [3, 4]), tf.tensor2d([[0, 1], [2, 3]], [2, 2], 'int32'))],
    ['unsortedSegmentSum', () => tf.unsortedSegmentSum(tf.tensor(randn([6, 2], 5), [6, 2]), tf.tensor1d([1, 1, 0, 4, 4, 4], 'int32'), 6)],
  ];
  for (const [name, fn] of cases) {
    it(name, async () => {
      const run = async (backend: Backend) => {
        await use(backend);
        return tf.tidy(() => {
          const out = fn();
          return (Array.isArray(out) ? out : [out]).map((t) => Array.from(t.dataSync()));
        });
      };
      const wasm = await run('wasm');
      const cpu = await run('cpu');
      wasm.forEach((w, i) => expectClose(w, cpu[i], 1e-6, 1e-6, name));
    });
  }
});

describe('end to end: SGD on an embedding Variable', () => {
  it('a few SGD steps on wasm give the same weights as on cpu (1e-5)', async () => {
    const vocab = 40;
    const dim = 6;
    const embInit = randn([vocab, dim], 21).map((v) => v * 0.3);
    const headInit = randn([dim, vocab], 22).map((v) => v * 0.3);
    const ids = ints(12, vocab, 23);
    const targets = ints(12, vocab, 24);
    const train = async (backend: Backend) => {
      await use(backend);
      const emb = tf.variable(tf.tensor2d(embInit, [vocab, dim]), true, `e2e_emb_${backend}`);
      const head = tf.variable(tf.tensor2d(headInit, [dim, vocab]), true, `e2e_head_${backend}`);
      const opt = tf.train.sgd(0.5);
      const losses: number[] = [];
      for (let step = 0; step < 5; step++) {
        const loss = opt.minimize(
          () =>
            tf.tidy(() => {
              const h = tf.tanh(tf.gather(emb, tf.tensor1d(ids, 'int32')));
              const logits = tf.matMul(h, head);
              const logp = tf.logSoftmax(logits);
              return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(targets, 'int32'), vocab), logp), -1))) as tf.Scalar;
            }),
          true,
          [emb, head],
        )!;
        losses.push(loss.dataSync()[0]);
        loss.dispose();
      }
      const out = { emb: Array.from(emb.dataSync()), head: Array.from(head.dataSync()), losses };
      tf.dispose([emb, head]);
      opt.dispose();
      return out;
    };
    const wasm = await train('wasm');
    const cpu = await train('cpu');
    expect(wasm.losses[4]).toBeLessThan(wasm.losses[0]);
    expectClose(wasm.losses, cpu.losses, 1e-5, 1e-5, 'losses');
    expectClose(wasm.emb, cpu.emb, 1e-5, 0, 'embedding');
    expectClose(wasm.head, cpu.head, 1e-5, 0, 'head');
    // Rows that were never looked up did not move.
    const used = new Set(ids);
    for (let r = 0; r < vocab; r++) {
      if (!used.has(r)) expect(wasm.emb.slice(r * dim, (r + 1) * dim)).toEqual(Array.from(embInit.slice(r * dim, (r + 1) * dim)));
    }
  });
});
