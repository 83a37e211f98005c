import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { makeBatchMatMulWasm } from './batch_mat_mul.js';
import { einsumWasmConfig } from './einsum.js';
import { makeGatherV2Wasm } from './gather_v2.js';
import { makeTileWasm } from './tile.js';
import { registerGradients } from './gradients.js';
import { unsortedSegmentSumCpuConfig, unsortedSegmentSumWasmConfig } from './unsorted_segment_sum.js';

export { registerGradients, GRADIENT_KERNELS } from './gradients.js';

/**
 * Kernels that training needs and the wasm backend (tfjs-backend-wasm 4.22) lacks:
 *  - UnsortedSegmentSum: the gradient of tf.gather (embedding lookups), O(n·d).
 *  - Einsum: tf.einsum, as transpose/reshape/BatchMatMul on the wasm kernels.
 * and wraps three of its kernels:
 *  - GatherV2 is wrong on wasm for batchDims > 0 (it reads every batch from batch 0's block)
 *    and ~15x slower than row copies otherwise: gathered in JS on the wasm heap.
 *  - BatchMatMul runs XNNPACK only for untransposed 2-D products, and a ~12x slower loop for
 *    transposeA/B or a batch (every backward matMul, attention): routed onto XNNPACK.
 *  - Tile (and so tf.broadcastTo, and the Sum/Mean gradients) computes every output index
 *    separately, ~30x slower than block copies: replaced.
 * Everything else on our op list (forward and backward) has a wasm kernel; see
 * test/wasm-kernels.test.ts for the probe.
 */
export const WASM_KERNELS: readonly KernelConfig[] = [unsortedSegmentSumWasmConfig, einsumWasmConfig];

/**
 * Replacements for cpu kernels that are correct but unusably slow for training: tfjs' cpu
 * UnsortedSegmentSum (the gather gradient) builds one mask per segment, ~45 minutes for 2560
 * tokens x 256 into a 32128-row embedding; ours takes milliseconds.
 */
export const CPU_KERNELS: readonly KernelConfig[] = [unsortedSegmentSumCpuConfig];

function register(configs: readonly KernelConfig[]): void {
  for (const config of configs) {
    if (tf.getKernel(config.kernelName, config.backendName) != null) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  }
}

let registered = false;

/**
 * Registers the wasm kernels above and the gradients (registerGradients: fixes and additions to
 * upstream's set, or the whole set where @tensorflow/tfjs is not loaded). Call it once, after
 * importing @tensorflow/tfjs-backend-wasm (the wrappers wrap its kernels) and before or after
 * tf.setBackend('wasm'). Idempotent.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  register(WASM_KERNELS);
  for (const wrapped of [makeGatherV2Wasm(), makeBatchMatMulWasm(), makeTileWasm()]) if (wrapped) register([wrapped]);
  registerGradients();
}

let cpuRegistered = false;

/** Registers CPU_KERNELS and the gradients. Call it when the cpu backend is chosen. Idempotent. */
export function registerCpuKernels(): void {
  if (cpuRegistered) return;
  cpuRegistered = true;
  register(CPU_KERNELS);
  registerGradients();
}
