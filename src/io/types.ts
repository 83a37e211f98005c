/**
 * A tensor read from a checkpoint file, before it becomes a tfjs tensor. Floating-point
 * tensors of any stored precision (f16, bf16, f32, f64) arrive as float32; integer tensors
 * as int32 (checkpoints only hold small integer buffers such as position ids).
 */
export interface RawTensor {
  readonly dtype: 'float32' | 'int32';
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

/** The tensors of one Hugging Face model directory, with where each came from (for errors). */
export interface StateDict {
  /** The model directory. */
  readonly dir: string;
  /** Tensor name -> tensor. */
  readonly tensors: Map<string, RawTensor>;
  /** Tensor name -> file it was read from (for one-line error messages). */
  readonly source: Map<string, string>;
}
