import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * The part of the wasm backend (BackendWasm in @tensorflow/tfjs-backend-wasm) that our JS-side
 * kernels use. Declared structurally so that we depend on no private type.
 */
export interface WasmBackendLike {
  /** Allocates an output on the wasm heap (may grow the heap: take heap views afterwards). */
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  /** A view (no copy) of a tensor's data on the wasm heap; invalid once the heap grows. */
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  /** Drops one reference to an intermediate (frees it when none is left). */
  disposeData(dataId: TensorInfo['dataId']): boolean;
}

/** The part of the cpu backend (MathBackendCPU) that our JS-side kernels use. */
export interface CpuBackendLike {
  readSync(dataId: TensorInfo['dataId']): unknown;
  makeTensorInfo(shape: number[], dtype: DataType, values?: unknown): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}

/** The arguments tfjs passes to a kernelFunc, with the backend narrowed. */
export interface KernelArgs<B> {
  inputs: { [name: string]: TensorInfo | undefined };
  backend: B;
  attrs?: { [name: string]: unknown };
}
