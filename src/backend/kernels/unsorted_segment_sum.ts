import { UnsortedSegmentSum, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { CpuBackendLike, KernelArgs, WasmBackendLike } from './backend_types.js';

type Numeric = Float32Array | Int32Array;

/**
 * out[s, :] = sum of x[i, :] over the rows i with ids[i] = s. `out` must be zeroed. Rows whose id
 * is negative or >= numSegments are dropped (TF drops negative ids; tfjs' cpu kernel drops both).
 * O(n·d): one pass over x.
 */
export function segmentSumInto(out: Numeric, x: Numeric, ids: Int32Array, numSegments: number, rowSize: number): void {
  const n = ids.length;
  if (rowSize === 1) {
    for (let i = 0; i < n; i++) {
      const s = ids[i];
      if (s >= 0 && s < numSegments) out[s] += x[i];
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const o = s * rowSize;
    const xi = i * rowSize;
    for (let j = 0; j < rowSize; j++) out[o + j] += x[xi + j];
  }
}

/** Checks the inputs and returns the output shape and the size of one row. */
function plan(x: TensorInfo, segmentIds: TensorInfo, numSegments: number): { outShape: number[]; rowSize: number } {
  util.assert(Number.isInteger(numSegments) && numSegments >= 0, () => `unsortedSegmentSum: numSegments must be a non-negative integer, got ${numSegments}`);
  util.assert(segmentIds.dtype === 'int32', () => `unsortedSegmentSum: segmentIds must be int32, got ${segmentIds.dtype}`);
  util.assert(x.dtype === 'float32' || x.dtype === 'int32', () => `unsortedSegmentSum: x must be float32 or int32, got ${x.dtype}`);
  const idsRank = segmentIds.shape.length;
  util.assert(
    idsRank <= x.shape.length && segmentIds.shape.every((d, i) => d === x.shape[i]),
    () => `unsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
  );
  const inner = x.shape.slice(idsRank);
  return { outShape: [numSegments, ...inner], rowSize: util.sizeFromShape(inner) };
}

/** UnsortedSegmentSum for the wasm backend: reads x and the ids in place on the wasm heap. */
function unsortedSegmentSumWasm(args: KernelArgs<WasmBackendLike>): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const numSegments = attrs!.numSegments as number;
  const { outShape, rowSize } = plan(x, segmentIds, numSegments);
  // Allocate first: makeOutput can grow the heap, which detaches earlier views.
  const out = backend.makeOutput(outShape, x.dtype);
  const outVals = backend.typedArrayFromHeap(out) as Numeric;
  outVals.fill(0);
  if (rowSize > 0 && util.sizeFromShape(segmentIds.shape) > 0) {
    const xVals = backend.typedArrayFromHeap(x) as Numeric;
    const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array;
    segmentSumInto(outVals, xVals, ids, numSegments, rowSize);
  }
  return out;
}

/**
 * UnsortedSegmentSum for the cpu backend. tfjs' own cpu kernel builds a mask per segment
 * (O(numSegments·n·d)), which makes an embedding gradient over a 32k vocabulary take minutes.
 */
function unsortedSegmentSumCpu(args: KernelArgs<CpuBackendLike>): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const numSegments = attrs!.numSegments as number;
  const { outShape, rowSize } = plan(x, segmentIds, numSegments);
  const size = util.sizeFromShape(outShape);
  const outVals: Numeric = x.dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
  if (rowSize > 0 && util.sizeFromShape(segmentIds.shape) > 0) {
    const xVals = backend.readSync(x.dataId) as Numeric;
    const raw = backend.readSync(segmentIds.dataId) as ArrayLike<number>;
    const ids = raw instanceof Int32Array ? raw : Int32Array.from(raw);
    segmentSumInto(outVals, xVals, ids, numSegments, rowSize);
  }
  return backend.makeTensorInfo(outShape, x.dtype, outVals);
}

export const unsortedSegmentSumWasmConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSumWasm as unknown as KernelFunc,
};

export const unsortedSegmentSumCpuConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'cpu',
  kernelFunc: unsortedSegmentSumCpu as unknown as KernelFunc,
};
