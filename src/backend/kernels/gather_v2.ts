import { backend_util, GatherV2, getKernel, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { KernelArgs, WasmBackendLike } from './backend_types.js';

type Heap = Float32Array | Int32Array | Uint8Array;

/**
 * out[b, o, i, :] = x[b, o, idx[b, i], :] for x viewed as [batch, outer, dim, slice] and the
 * indices as [batch, perBatch]. Row copies where slices are long, scalar copies where short.
 */
export function gatherInto(
  out: Heap,
  x: Heap,
  idx: ArrayLike<number>,
  info: { batchSize: number; outerSize: number; dimSize: number; sliceSize: number },
): void {
  const { batchSize, outerSize, dimSize, sliceSize } = info;
  const perBatch = idx.length / batchSize;
  for (let b = 0; b < batchSize; b++) {
    for (let i = 0; i < perBatch; i++) {
      const k = idx[b * perBatch + i];
      if (!(k >= 0 && k < dimSize)) throw new Error(`GatherV2: the index value ${k} is not in [0, ${dimSize - 1}]`);
    }
    for (let o = 0; o < outerSize; o++) {
      const srcBase = (b * outerSize + o) * dimSize;
      const dstBase = (b * outerSize + o) * perBatch;
      if (sliceSize >= 16) {
        for (let i = 0; i < perBatch; i++) {
          const src = (srcBase + idx[b * perBatch + i]) * sliceSize;
          out.set(x.subarray(src, src + sliceSize), (dstBase + i) * sliceSize);
        }
      } else {
        for (let i = 0; i < perBatch; i++) {
          const src = (srcBase + idx[b * perBatch + i]) * sliceSize;
          const dst = (dstBase + i) * sliceSize;
          for (let j = 0; j < sliceSize; j++) out[dst + j] = x[src + j];
        }
      }
    }
  }
}

/**
 * GatherV2 for the wasm backend, in JS on the wasm heap. tfjs-backend-wasm 4.22's kernel is wrong
 * when batchDims > 0 (it reads every batch's rows from batch 0's block: gather(x, [[4,4,0],
 * [1,2,1]], 1, 1) returns rows 0..2 of batch 1, not rows 1,2,1), and slow otherwise (~25 ns an
 * element: 16 ms for 2560 rows of a [32128, 256] embedding, against ~1 ms for row copies).
 */
export function makeGatherV2Wasm(): KernelConfig | undefined {
  const original = getKernel(GatherV2, 'wasm');
  if (!original) return undefined;
  const kernelFunc = (args: KernelArgs<WasmBackendLike>): TensorInfo | TensorInfo[] => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x!;
    const indices = inputs.indices!;
    if (x.dtype === 'string' || indices.dtype !== 'int32') return original.kernelFunc(args as unknown as Parameters<KernelFunc>[0]);
    const batchDims = (attrs?.batchDims as number | undefined) ?? 0;
    const axis = util.parseAxisParam(attrs!.axis as number, x.shape)[0];
    const info = backend_util.segment_util.collectGatherOpShapeInfo(x, indices, axis, batchDims);
    const out = backend.makeOutput(info.outputShape, x.dtype);
    if (util.sizeFromShape(info.outputShape) === 0) return out;
    gatherInto(backend.typedArrayFromHeap(out), backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(indices), info);
    return out;
  };
  // Keep the original's setupFunc/disposeFunc (they bind its wasm function; harmless here).
  return {
    kernelName: GatherV2,
    backendName: 'wasm',
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: kernelFunc as unknown as KernelFunc,
  };
}
