import { CheckpointError } from '../errors.js';

/** Bytes per element of the dtypes safetensors and PyTorch storages use (safetensors names). */
export const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function checkLength(raw: Uint8Array, dtype: string, numel: number, where: string): void {
  const want = numel * DTYPE_BYTES[dtype]!;
  if (raw.byteLength !== want) {
    throw new CheckpointError(`${where}: ${raw.byteLength} bytes of data, but ${numel} elements of ${dtype} need ${want}`);
  }
}

/** Little-endian floating-point bytes -> float32; null when `dtype` is not floating point. */
export function decodeFloats(raw: Uint8Array, dtype: string, numel: number, where: string): Float32Array | null {
  if (!(dtype in DTYPE_BYTES)) throw new CheckpointError(`${where}: unsupported dtype ${dtype}`);
  if (!['F32', 'F16', 'BF16', 'F64'].includes(dtype)) return null;
  checkLength(raw, dtype, numel, where);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(numel);
  switch (dtype) {
    case 'F32':
      // Copy (the source buffer may be unaligned or shared with other tensors).
      for (let i = 0; i < numel; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < numel; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < numel; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      break;
    case 'BF16': {
      // bfloat16 is the top half of a float32: shift it back into place.
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < numel; i++) u32[i] = dv.getUint16(i * 2, true) << 16;
      break;
    }
  }
  return out;
}

/** Little-endian integer/bool bytes -> int32 (int64 values must fit in 53 bits... and in int32). */
export function decodeInts(raw: Uint8Array, dtype: string, numel: number, where: string): Int32Array {
  checkLength(raw, dtype, numel, where);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Int32Array(numel);
  for (let i = 0; i < numel; i++) {
    let v: number;
    switch (dtype) {
      case 'I64': v = Number(dv.getBigInt64(i * 8, true)); break;
      case 'I32': v = dv.getInt32(i * 4, true); break;
      case 'I16': v = dv.getInt16(i * 2, true); break;
      case 'I8': v = dv.getInt8(i); break;
      default: v = dv.getUint8(i); break;
    }
    if (v > 2147483647 || v < -2147483648) throw new CheckpointError(`${where}: integer ${v} at element ${i} does not fit in int32`);
    out[i] = v;
  }
  return out;
}
