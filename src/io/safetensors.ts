import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CheckpointError } from '../errors.js';
import type { RawTensor } from './types.js';
import { decodeFloats, decodeInts } from './dtypes.js';

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function readExactly(fd: number, file: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new CheckpointError(`${file}: truncated at byte ${position + done} (wanted ${length} bytes at ${position})`);
    done += n;
  }
  return buf;
}

/** Names, dtypes and shapes of a safetensors file without reading the tensor data. */
export function readSafetensorsHeader(file: string): Map<string, HeaderEntry> {
  const fd = openSync(file, 'r');
  try {
    return parseHeader(fd, file).entries;
  } finally {
    closeSync(fd);
  }
}

function parseHeader(fd: number, file: string): { entries: Map<string, HeaderEntry>; dataStart: number } {
  const size = fstatSync(fd).size;
  if (size < 8) throw new CheckpointError(`${file}: not a safetensors file (only ${size} bytes)`);
  const n = Number(readExactly(fd, file, 0, 8).readBigUInt64LE(0));
  if (n > MAX_HEADER_BYTES || 8 + n > size) {
    throw new CheckpointError(`${file}: not a safetensors file (header length ${n} does not fit in ${size} bytes)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readExactly(fd, file, 8, n)));
  } catch (e) {
    throw new CheckpointError(`${file}: safetensors header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const entries = new Map<string, HeaderEntry>();
  const dataStart = 8 + n;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = value as HeaderEntry;
    if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) {
      throw new CheckpointError(`${file}: tensor ${name}: malformed header entry`);
    }
    const [begin, end] = e.data_offsets;
    if (!(begin >= 0 && end >= begin && dataStart + end <= size)) {
      throw new CheckpointError(`${file}: tensor ${name}: data offsets [${begin}, ${end}) lie outside the file (${size - dataStart} data bytes)`);
    }
    entries.set(name, e);
  }
  return { entries, dataStart };
}

/**
 * Reads every tensor of a .safetensors file (or only those `wanted` accepts), converting
 * floating-point data to float32. Reads tensor by tensor, so peak memory is the output plus one
 * tensor's raw bytes.
 */
export function readSafetensors(file: string, wanted: (name: string) => boolean = () => true): Map<string, RawTensor> {
  const fd = openSync(file, 'r');
  try {
    const { entries, dataStart } = parseHeader(fd, file);
    const out = new Map<string, RawTensor>();
    for (const [name, e] of entries) {
      if (!wanted(name)) continue;
      const [begin, end] = e.data_offsets;
      const numel = e.shape.reduce((a, b) => a * b, 1);
      const raw = readExactly(fd, file, dataStart + begin, end - begin);
      const where = `${file}: tensor ${name}`;
      const floats = decodeFloats(raw, e.dtype, numel, where);
      if (floats) {
        out.set(name, { dtype: 'float32', shape: e.shape, data: floats });
      } else {
        out.set(name, { dtype: 'int32', shape: e.shape, data: decodeInts(raw, e.dtype, numel, where) });
      }
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
