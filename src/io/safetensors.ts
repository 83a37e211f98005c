import { closeSync, fstatSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { RawTensor } from './types.js';
import { DTYPE_BYTES, decodeFloats, decodeInts } from './dtypes.js';
import { readExactly } from './zip.js';

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

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
  if (!header || typeof header !== 'object' || Array.isArray(header)) {
    throw new CheckpointError(`${file}: safetensors header is not a JSON object`);
  }
  const entries = new Map<string, HeaderEntry>();
  const dataStart = 8 + n;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = value as HeaderEntry;
    if (
      !e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 ||
      !e.shape.every((d) => Number.isInteger(d) && d >= 0) || !e.data_offsets.every((o) => Number.isInteger(o))
    ) {
      throw new CheckpointError(`${file}: tensor ${name}: malformed header entry`);
    }
    if (!(e.dtype in DTYPE_BYTES)) throw new CheckpointError(`${file}: tensor ${name}: unsupported dtype ${e.dtype}`);
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

/**
 * Writes `tensors` as a safetensors file (F32 / I32, names sorted for a deterministic layout)
 * with optional string `metadata`. Atomic: the bytes go to a temporary file in the same
 * directory, which is fsynced and then renamed over `file`, so a crash mid-write (or a reader
 * racing the writer) never sees a half-written checkpoint.
 */
export function writeSafetensors(file: string, tensors: Map<string, RawTensor>, metadata?: Record<string, string>): void {
  // Typed arrays are written as their in-memory bytes, and safetensors is little-endian.
  if (endianness() !== 'LE') throw new Error('writeSafetensors: big-endian hosts are not supported');
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata ${k} is not a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__' || name.length === 0) throw new Error(`writeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    const t = tensors.get(name)!;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new Error(`writeSafetensors: tensor ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const dtype = t.dtype === 'float32' ? 'F32' : 'I32';
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeAll(fd, prefix);
      writeAll(fd, json);
      for (const name of names) {
        const d = tensors.get(name)!.data;
        writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or already renamed */
    }
    throw e;
  }
  // Make the rename itself durable (best effort: not every platform can fsync a directory).
  try {
    const dfd = openSync(dirname(file), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* ignore */
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  // writeSync may write less than asked, and refuses more than 2 GiB per call.
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
  }
}
