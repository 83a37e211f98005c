import { getKernel, Tile, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackendLike } from './backend_types.js';

/**
 * Tile for the wasm backend, as block copies on the heap. tfjs-backend-wasm 4.22's kernel computes
 * every output index separately: ~95 ms to tile [1, 1024] to [2560, 1024], against ~3 ms here.
 * tf.broadcastTo runs Tile, and so do the gradients of Sum and Mean. O(output size).
 */
export function tileInto(out: Float32Array | Int32Array | Uint8Array, x: Float32Array | Int32Array | Uint8Array, shape: number[], reps: number[]): void {
  const rank = shape.length;
  const outShape = shape.map((s, i) => s * reps[i]);
  const outStrides = util.computeStrides(outShape); // rank - 1 entries
  const stride = (k: number) => (k === rank - 1 ? 1 : outStrides[k]);
  if (rank === 0) {
    out[0] = x[0];
    return;
  }
  // 1. x into the first tile, one innermost row at a time.
  const rowLen = shape[rank - 1];
  const rows = rowLen === 0 ? 0 : x.length / rowLen;
  const idx = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let r = 0; r < rows; r++) {
    let off = 0;
    for (let k = 0; k < rank - 1; k++) off += idx[k] * stride(k);
    out.set(x.subarray(r * rowLen, (r + 1) * rowLen), off);
    for (let k = rank - 2; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  // 2. Innermost axis first: repeat each complete block along axis d.
  for (let d = rank - 1; d >= 0; d--) {
    if (reps[d] === 1) continue;
    const blockLen = shape[d] * stride(d);
    if (blockLen === 0) continue;
    const prefixCount = shape.slice(0, d).reduce((p, c) => p * c, 1);
    const pre = new Array<number>(d).fill(0);
    for (let p = 0; p < prefixCount; p++) {
      let base = 0;
      for (let k = 0; k < d; k++) base += pre[k] * stride(k);
      for (let t = 1; t < reps[d]; t++) out.copyWithin(base + t * blockLen, base, base + blockLen);
      for (let k = d - 1; k >= 0; k--) {
        if (++pre[k] < shape[k]) break;
        pre[k] = 0;
      }
    }
  }
}

export function makeTileWasm(): KernelConfig | undefined {
  const original = getKernel(Tile, 'wasm');
  if (!original) return undefined;
  const kernelFunc = (args: KernelArgs<WasmBackendLike>): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x!;
    const reps = attrs!.reps as number[];
    if (x.dtype === 'string' || reps.length !== x.shape.length) {
      return original.kernelFunc(args as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
    }
    const out = backend.makeOutput(
      x.shape.map((s, i) => s * reps[i]),
      x.dtype,
    );
    if (util.sizeFromShape(out.shape) > 0) tileInto(backend.typedArrayFromHeap(out), backend.typedArrayFromHeap(x), x.shape, reps);
    return out;
  };
  return {
    kernelName: Tile,
    backendName: 'wasm',
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: kernelFunc as unknown as KernelFunc,
  };
}
