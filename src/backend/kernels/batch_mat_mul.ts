import { BatchMatMul, broadcast_util, getKernel, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackendLike } from './backend_types.js';

/**
 * BatchMatMul for the wasm backend, routed onto XNNPACK.
 *
 * tfjs-backend-wasm 4.22 runs XNNPACK (~31-37 GFLOP/s here) only for an untransposed 2-D
 * product; anything with transposeA, transposeB or a batch dimension > 1 goes to a naive blocked
 * loop at ~2.5 GFLOP/s. That covers every backward matMul (dX = dY·Wᵀ, dW = Xᵀ·dY), attention
 * (Q·Kᵀ, P·V on [b, h, l, d]) and a tied LM head (X·Eᵀ: 17 s instead of 1.8 s for [2560, 256] x
 * [32128, 256]ᵀ). This wrapper:
 *  1. materialises a transposed operand with the Transpose kernel (memory-bound, cheap);
 *  2. when b has no batch (or a batch of 1), folds a's batch into its rows: one 2-D product;
 *  3. otherwise runs one 2-D XNNPACK product per batch entry, on copies of the slices.
 * Tiny products stay on the original kernel, whose fixed cost is lower, except where the original
 * is wrong: batch shapes that broadcast along an inner axis ([2, 1] x [1, 3], [2, 3] x [2, 1]),
 * for which the stock wasm and cpu kernels return a result of the wrong size.
 *
 * XNNPACK caches the packed weights (b) by tensor id until that tensor is disposed, so every
 * b slice below is a fresh tensor: reusing one tensor with new contents would reuse stale weights.
 */

/** Below this many multiply-adds in total, the original kernel is used. */
const MIN_TOTAL_MACS = 1 << 15;
/** Below this many multiply-adds per batch entry, the per-batch loop is not worth its overhead. */
const MIN_MACS_PER_BATCH = 1 << 14;

type Run = (name: string, inputs: Record<string, TensorInfo>, attrs?: Record<string, unknown>) => TensorInfo;

function swapLast2(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

/** Whether `shape` broadcasts to `out` by leading axes only (then flat index modulo size is right). */
function leadingBroadcast(shape: number[], out: number[]): boolean {
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  let i = 0;
  while (i < padded.length && padded[i] === 1) i++;
  for (; i < padded.length; i++) if (padded[i] !== out[i]) return false;
  return true;
}

/** For each entry of the broadcast batch shape `out`, the flat batch index into `shape`. */
function batchIndices(out: number[], shape: number[]): Int32Array {
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  const strides = new Array<number>(out.length);
  let s = 1;
  for (let i = out.length - 1; i >= 0; i--) {
    strides[i] = padded[i] === 1 ? 0 : s;
    s *= padded[i];
  }
  const n = util.sizeFromShape(out);
  const idx = new Int32Array(n);
  const pos = new Array<number>(out.length).fill(0);
  for (let e = 0; e < n; e++) {
    let k = 0;
    for (let i = 0; i < out.length; i++) k += pos[i] * strides[i];
    idx[e] = k;
    for (let i = out.length - 1; i >= 0; i--) {
      if (++pos[i] < out[i]) break;
      pos[i] = 0;
    }
  }
  return idx;
}

export function makeBatchMatMulWasm(): KernelConfig | undefined {
  const original = getKernel(BatchMatMul, 'wasm');
  const transposeKernel = getKernel('Transpose', 'wasm');
  const reshapeKernel = getKernel('Reshape', 'wasm');
  if (!original || !transposeKernel || !reshapeKernel) return undefined;
  const originalFunc = original.kernelFunc as unknown as (args: KernelArgs<WasmBackendLike>) => TensorInfo;

  const kernelFunc = (args: KernelArgs<WasmBackendLike>): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const a = inputs.a!;
    const b = inputs.b!;
    const transposeA = Boolean(attrs?.transposeA);
    const transposeB = Boolean(attrs?.transposeB);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return originalFunc(args);
    const aRank = a.shape.length;
    const bRank = b.shape.length;
    const M = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
    const K = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
    const kB = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
    const N = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
    if (K !== kB) return originalFunc(args); // let the original throw its error
    const batchShapeA = a.shape.slice(0, -2);
    const batchShapeB = b.shape.slice(0, -2);
    const outBatch = broadcast_util.assertAndGetBroadcastShape(batchShapeA, batchShapeB);
    const batchA = util.sizeFromShape(batchShapeA);
    const batchB = util.sizeFromShape(batchShapeB);
    const batch = util.sizeFromShape(outBatch);
    const outShape = [...outBatch, M, N];
    const macsPerBatch = M * N * K;
    if (!transposeA && !transposeB && batchA === 1 && batchB === 1) return originalFunc(args); // already XNNPACK
    // The original indexes batches modulo each operand's batch size: right only when an operand's
    // batch shape broadcasts along leading axes ([3] or [1, 3] against [2, 3]), wrong (and a
    // result of the wrong size) for [2, 1] against [1, 3] or [2, 3] against [2, 1].
    const originalIsRight = leadingBroadcast(batchShapeA, outBatch) && leadingBroadcast(batchShapeB, outBatch);
    if (originalIsRight) {
      if (batch * macsPerBatch < MIN_TOTAL_MACS || macsPerBatch === 0) return originalFunc(args);
      if (batchB > 1 && macsPerBatch < MIN_MACS_PER_BATCH) return originalFunc(args);
    }

    const temps: TensorInfo[] = [];
    const run: Run = (name, ins, at = {}) => {
      const kernel = name === 'Transpose' ? transposeKernel : name === 'Reshape' ? reshapeKernel : original;
      const out = (kernel.kernelFunc as unknown as (x: KernelArgs<WasmBackendLike>) => TensorInfo)({ inputs: ins, backend, attrs: at });
      temps.push(out);
      return out;
    };
    const plain = { transposeA: false, transposeB: false };
    try {
      const a2 = transposeA ? run('Transpose', { x: a }, { perm: swapLast2(aRank) }) : a; // [...batchA, M, K]
      const b2 = transposeB ? run('Transpose', { x: b }, { perm: swapLast2(bRank) }) : b; // [...batchB, K, N]

      if (batchB === 1) {
        // b is shared: one [batchA·M, K] x [K, N] product.
        const a2d = run('Reshape', { x: a2 }, { shape: [batchA * M, K] });
        const b2d = run('Reshape', { x: b2 }, { shape: [K, N] });
        const r = originalFunc({ inputs: { a: a2d, b: b2d }, backend, attrs: plain });
        return { ...r, shape: outShape };
      }

      // One 2-D product per batch entry.
      const out = backend.makeOutput(outShape, 'float32');
      const ia = batchIndices(outBatch, batchShapeA);
      const ib = batchIndices(outBatch, batchShapeB);
      const sizeA = M * K;
      const sizeB = K * N;
      const sizeOut = M * N;
      let aSlice: TensorInfo | undefined;
      let bSlice: TensorInfo | undefined;
      let lastA = -1;
      let lastB = -1;
      for (let i = 0; i < batch; i++) {
        if (ia[i] !== lastA) {
          if (!aSlice) aSlice = backend.makeOutput([M, K], 'float32');
          const src = backend.typedArrayFromHeap(a2) as Float32Array;
          (backend.typedArrayFromHeap(aSlice) as Float32Array).set(src.subarray(ia[i] * sizeA, (ia[i] + 1) * sizeA));
          lastA = ia[i];
        }
        if (ib[i] !== lastB) {
          // A fresh tensor for new weights (see the XNNPACK cache note above).
          if (bSlice) backend.disposeData(bSlice.dataId);
          bSlice = backend.makeOutput([K, N], 'float32');
          const src = backend.typedArrayFromHeap(b2) as Float32Array;
          (backend.typedArrayFromHeap(bSlice) as Float32Array).set(src.subarray(ib[i] * sizeB, (ib[i] + 1) * sizeB));
          lastB = ib[i];
        }
        const r = originalFunc({ inputs: { a: aSlice!, b: bSlice! }, backend, attrs: plain });
        (backend.typedArrayFromHeap(out) as Float32Array).set(backend.typedArrayFromHeap(r) as Float32Array, i * sizeOut);
        backend.disposeData(r.dataId);
      }
      if (aSlice) backend.disposeData(aSlice.dataId);
      if (bSlice) backend.disposeData(bSlice.dataId);
      return out;
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };

  return {
    kernelName: BatchMatMul,
    backendName: 'wasm',
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: kernelFunc as unknown as KernelFunc,
  };
}
