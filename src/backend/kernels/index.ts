/**
 * Kernels that training needs and the wasm backend lacks. Registered once, when the wasm
 * backend is chosen.
 */
let registered = false;

export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
}
