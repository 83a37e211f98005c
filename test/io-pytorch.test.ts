/**
 * pytorch_model.bin reader on hand-built archives. The fixtures are written byte by byte here
 * (a STORED zip, optionally zip64, around a protocol-2 pickle laid out the way torch.save lays
 * it out), so the tests need no Python/torch and can build inputs torch would never write
 * (hostile globals, views past the end of a storage, corrupt zips).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { loadStateDict } from '../src/io/checkpoint.js';
import { readPytorchBin, unpickle } from '../src/io/pytorch.js';
import { readSafetensors } from '../src/io/safetensors.js';
import type { RawTensor } from '../src/io/types.js';
import { CheckpointError } from '../src/errors.js';
import { CHECKPOINTS } from './helpers/shared.js';

// ---- a pickle writer (only what torch.save emits) ---------------------------------------

class Pickle {
  private out: number[] = [0x80, 2]; // PROTO 2
  private bytes(...b: number[]): this { this.out.push(...b); return this; }
  mark() { return this.bytes(0x28); }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4); n.writeUInt32LE(b.length);
    return this.bytes(0x58, ...n, ...b);
  }
  int(v: number) {
    if (v >= 0 && v < 256) return this.bytes(0x4b, v);
    if (v >= 0 && v < 65536) return this.bytes(0x4d, v & 0xff, v >> 8);
    const n = Buffer.alloc(4); n.writeInt32LE(v);
    return this.bytes(0x4a, ...n);
  }
  global(module: string, name: string) { return this.bytes(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); }
  stackGlobal(module: string, name: string) {
    const s = (x: string) => { const b = Buffer.from(x); this.bytes(0x8c, b.length, ...b); };
    s(module); s(name);
    return this.bytes(0x93);
  }
  tuple() { return this.bytes(0x74); }
  intTuple(xs: number[]) { this.mark(); xs.forEach((x) => this.int(x)); return this.tuple(); }
  emptyTuple() { return this.bytes(0x29); }
  emptyDict() { return this.bytes(0x7d); }
  reduce() { return this.bytes(0x52); }
  persid() { return this.bytes(0x51); }
  newFalse() { return this.bytes(0x89); }
  setItems() { return this.bytes(0x75); }
  put(i: number) { return this.bytes(0x71, i); }
  get(i: number) { return this.bytes(0x68, i); }
  raw(...b: number[]) { return this.bytes(...b); }
  stop(): Buffer { return Buffer.from([...this.out, 0x2e]); }
}

interface View {
  storage: string; // key
  type: string; // FloatStorage, HalfStorage, ...
  numel: number; // storage elements
  offset?: number;
  shape: number[];
  stride?: number[];
  parameter?: boolean; // wrap in _rebuild_parameter as nn.Parameter pickles
}

function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]!; }
  return s;
}

/** The pickle torch.save(state_dict) writes: {name: _rebuild_tensor_v2(persid, offset, size, stride, False, OrderedDict())}. */
function statePickle(views: Record<string, View>): Buffer {
  const p = new Pickle().emptyDict().mark();
  for (const [name, v] of Object.entries(views)) {
    p.str(name);
    if (v.parameter) p.global('torch._utils', '_rebuild_parameter').mark();
    p.global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', v.type).str(v.storage).str('cpu').int(v.numel).tuple().persid();
    p.int(v.offset ?? 0).intTuple(v.shape).intTuple(v.stride ?? contiguousStride(v.shape)).newFalse();
    p.global('collections', 'OrderedDict').emptyTuple().reduce();
    p.tuple().reduce();
    if (v.parameter) p.newFalse().global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  }
  return p.setItems().stop();
}

// ---- a STORED zip writer ------------------------------------------------------------------

function crc32(b: Uint8Array): number {
  return (zlib as unknown as { crc32: (d: Uint8Array) => number }).crc32(b) >>> 0;
}

/** A zip with STORED entries; `zip64` forces the zip64 records torch writes for > 4 GiB files. */
function buildZip(entries: Array<[string, Uint8Array]>, opts: { zip64?: boolean; method?: number } = {}): Buffer {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameB = Buffer.from(name);
    // Pad the local extra field so data is 64-byte aligned, as torch's writer does.
    const pad = (64 - ((offset + 30 + nameB.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4346, 0); // torch's padding field id ('FB')
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.method ?? 0, 8);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameB.length, 26);
    local.writeUInt16LE(extra.length, 28);
    chunks.push(local, nameB, extra, Buffer.from(data));
    const z64 = Buffer.alloc(opts.zip64 ? 28 : 0);
    if (opts.zip64) {
      z64.writeUInt16LE(1, 0);
      z64.writeUInt16LE(24, 2);
      z64.writeBigUInt64LE(BigInt(data.length), 4);
      z64.writeBigUInt64LE(BigInt(data.length), 12);
      z64.writeBigUInt64LE(BigInt(offset), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(opts.method ?? 0, 10);
    c.writeUInt32LE(crc32(data), 16);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : data.length, 20);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : data.length, 24);
    c.writeUInt16LE(nameB.length, 28);
    c.writeUInt16LE(z64.length, 30);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    central.push(c, nameB, z64);
    offset += 30 + nameB.length + extra.length + data.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...chunks, cd, ...tail, eocd]);
}

/** A torch.save-style archive named `archive` holding `pkl` and the storages. */
function buildBin(pkl: Buffer, storages: Record<string, Uint8Array>, opts: { zip64?: boolean; archive?: string } = {}): Buffer {
  const a = opts.archive ?? 'archive';
  const entries: Array<[string, Uint8Array]> = [[`${a}/data.pkl`, pkl]];
  for (const [k, v] of Object.entries(storages)) entries.push([`${a}/data/${k}`, v]);
  entries.push([`${a}/version`, Buffer.from('3\n')]);
  return buildZip(entries, opts);
}

/** torch.save of a dict of float32/int32 RawTensors (float32 -> FloatStorage, int32 -> IntStorage). */
function saveBin(file: string, tensors: Map<string, RawTensor>): void {
  const views: Record<string, View> = {};
  const storages: Record<string, Uint8Array> = {};
  let key = 0;
  for (const [name, t] of tensors) {
    const k = String(key++);
    views[name] = { storage: k, type: t.dtype === 'float32' ? 'FloatStorage' : 'IntStorage', numel: t.data.length, shape: [...t.shape] };
    storages[k] = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  writeFileSync(file, buildBin(statePickle(views), storages));
}

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u16 = (xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

// ---- tests --------------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'grerank-io-pytorch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function write(bytes: Uint8Array): string {
  const f = join(tmp, `f${n++}.bin`);
  writeFileSync(f, bytes);
  return f;
}
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected an error');
}

describe('pytorch_model.bin fixtures', () => {
  it('reads a contiguous float32 tensor, a Parameter and an int64 buffer', () => {
    const pkl = statePickle({
      w: { storage: '0', type: 'FloatStorage', numel: 6, shape: [2, 3] },
      p: { storage: '1', type: 'FloatStorage', numel: 2, shape: [2], parameter: true },
      ids: { storage: '2', type: 'LongStorage', numel: 3, shape: [1, 3] },
    });
    const i64 = new BigInt64Array([0n, 7n, -5n]);
    const t = readPytorchBin(write(buildBin(pkl, { 0: f32([1, 2, 3, 4, 5, 6]), 1: f32([-1, 0.5]), 2: new Uint8Array(i64.buffer) })));
    expect([...t.keys()]).toEqual(['w', 'p', 'ids']);
    expect(t.get('w')).toEqual({ dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
    expect(t.get('p')!.data).toEqual(new Float32Array([-1, 0.5]));
    expect(t.get('ids')).toEqual({ dtype: 'int32', shape: [1, 3], data: new Int32Array([0, 7, -5]) });
  });

  it('makes a transposed (non-contiguous) view contiguous', () => {
    // storage holds a [2,3] matrix row-major; the saved tensor is its transpose: shape [3,2], stride [1,3]
    const pkl = statePickle({ wt: { storage: '0', type: 'FloatStorage', numel: 6, shape: [3, 2], stride: [1, 3] } });
    const t = readPytorchBin(write(buildBin(pkl, { 0: f32([1, 2, 3, 4, 5, 6]) })));
    expect(t.get('wt')!.shape).toEqual([3, 2]);
    expect([...t.get('wt')!.data]).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('handles storage offsets, strided 3-d views and shared storages (tied weights)', () => {
    const data = f32(Array.from({ length: 30 }, (_, i) => i));
    const pkl = statePickle({
      full: { storage: '0', type: 'FloatStorage', numel: 30, shape: [5, 6] },
      tied: { storage: '0', type: 'FloatStorage', numel: 30, shape: [5, 6] },
      row2: { storage: '0', type: 'FloatStorage', numel: 30, offset: 12, shape: [6] },
      // x[1:, ::2] of the [5,6] matrix: offset 6, shape [4,3], stride [6,2]
      slice: { storage: '0', type: 'FloatStorage', numel: 30, offset: 6, shape: [4, 3], stride: [6, 2] },
      // a [2,3,2] view with permuted strides
      perm: { storage: '0', type: 'FloatStorage', numel: 30, offset: 1, shape: [2, 3, 2], stride: [1, 6, 2] },
      // broadcast (stride 0) as expand() produces
      bcast: { storage: '0', type: 'FloatStorage', numel: 30, offset: 3, shape: [2, 2], stride: [0, 1] },
    });
    const t = readPytorchBin(write(buildBin(pkl, { 0: data })));
    expect(t.get('tied')).toBe(t.get('full')); // one object: tied weights cost memory once
    expect([...t.get('row2')!.data]).toEqual([12, 13, 14, 15, 16, 17]);
    expect([...t.get('slice')!.data]).toEqual([6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28]);
    const perm: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) perm.push(1 + i + 6 * j + 2 * k);
    expect([...t.get('perm')!.data]).toEqual(perm);
    expect([...t.get('bcast')!.data]).toEqual([3, 4, 3, 4]);
  });

  it('converts float16, bfloat16 and float64 storages to float32', () => {
    const pkl = statePickle({
      h: { storage: '0', type: 'HalfStorage', numel: 9, shape: [9] },
      b: { storage: '1', type: 'BFloat16Storage', numel: 6, shape: [6] },
      bt: { storage: '1', type: 'BFloat16Storage', numel: 6, shape: [2, 2], stride: [1, 2] },
      d: { storage: '2', type: 'DoubleStorage', numel: 2, shape: [2] },
    });
    const half = u16([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x7e00]);
    const bf = u16([0x3f80, 0xc040, 0x4049, 0x0001, 0x7f80, 0xff80]);
    const t = readPytorchBin(write(buildBin(pkl, { 0: half, 1: bf, 2: new Uint8Array(new Float64Array([0.1, -1e300]).buffer) })));
    const h = [...t.get('h')!.data];
    expect(h.slice(0, 5)).toEqual([1, -2, 65504, 2 ** -24, 0.333251953125]);
    expect(Object.is(h[5], -0)).toBe(true);
    expect(h[6]).toBe(Infinity);
    expect(h[7]).toBe(-Infinity);
    expect(h[8]).toBeNaN();
    expect([...t.get('b')!.data]).toEqual([1, -3, 3.140625, 2 ** -133, Infinity, -Infinity]);
    expect([...t.get('bt')!.data]).toEqual([1, 3.140625, -3, 2 ** -133]);
    expect([...t.get('d')!.data]).toEqual([Math.fround(0.1), -Infinity]);
  });

  it('reads zip64 archives', () => {
    const pkl = statePickle({ w: { storage: '0', type: 'FloatStorage', numel: 3, shape: [3] } });
    const t = readPytorchBin(write(buildBin(pkl, { 0: f32([1.5, 2.5, 3.5]) }, { zip64: true, archive: 'pytorch_model' })));
    expect([...t.get('w')!.data]).toEqual([1.5, 2.5, 3.5]);
  });

  it('reads protocol-4 style pickles (FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE)', () => {
    const p = new Pickle();
    p.raw(0x95, 0, 0, 0, 0, 0, 0, 0, 0); // FRAME (length ignored)
    p.emptyDict().raw(0x94).mark();
    p.raw(0x8c, 1, 0x78).raw(0x94); // 'x'
    p.stackGlobal('torch._utils', '_rebuild_tensor_v2').raw(0x94).mark();
    p.mark().str('storage').stackGlobal('torch', 'FloatStorage').str('0').str('cpu').int(2).tuple().persid();
    p.int(0).intTuple([2]).intTuple([1]).newFalse().stackGlobal('collections', 'OrderedDict').emptyTuple().reduce();
    p.tuple().reduce().setItems();
    const t = readPytorchBin(write(buildBin(p.stop(), { 0: f32([4, 5]) })));
    expect([...t.get('x')!.data]).toEqual([4, 5]);
  });

  it('rejects a pickle that references os.system, naming the file and the global', () => {
    // What a malicious checkpoint looks like: os.system('touch pwned') on load.
    const p = new Pickle().global('os', 'system').mark().str('touch pwned').tuple().reduce();
    const f = write(buildBin(p.stop(), {}));
    expect(errorOf(() => readPytorchBin(f))).toBe(
      `${f}: pickle references global os.system, which is not allowed (only tensors and plain containers are read)`,
    );
    const q = new Pickle().stackGlobal('builtins', 'eval');
    expect(errorOf(() => unpickle(q.stop(), 'x.bin'))).toContain('pickle references global builtins.eval, which is not allowed');
  });

  it('rejects calling an allowed non-callable global and unsupported opcodes', () => {
    const p = new Pickle().global('torch', 'FloatStorage').emptyTuple().reduce();
    expect(errorOf(() => unpickle(p.stop(), 'x.bin'))).toContain('pickle calls torch.FloatStorage, which is not allowed');
    const q = new Pickle().raw(0x82, 1); // EXT1 (copyreg extension registry)
    expect(errorOf(() => unpickle(q.stop(), 'x.bin'))).toMatch(/^x\.bin: unsupported pickle opcode 0x82/);
    expect(errorOf(() => unpickle(Buffer.from([0x80, 2, 0x7d]), 'x.bin'))).toMatch(/^x\.bin: pickle is truncated/);
  });

  it('rejects views that reach past their storage, missing storages and non-tensor entries', () => {
    const big = statePickle({ w: { storage: '0', type: 'FloatStorage', numel: 4, offset: 2, shape: [2, 2], stride: [2, 1] } });
    const f1 = write(buildBin(big, { 0: f32([1, 2, 3, 4]) }));
    expect(errorOf(() => readPytorchBin(f1))).toMatch(new RegExp(`^${f1}: tensor w: view .* reaches element 5 of a 4-element storage$`));
    const f2 = write(buildBin(statePickle({ w: { storage: '7', type: 'FloatStorage', numel: 1, shape: [1] } }), {}));
    expect(errorOf(() => readPytorchBin(f2))).toBe(`${f2}: storage archive/data/7 for tensor w is missing from the archive`);
    const f3 = write(buildBin(new Pickle().emptyDict().str('step').int(3).raw(0x73).stop(), {}));
    expect(errorOf(() => readPytorchBin(f3))).toBe(`${f3}: state dict entry step is number, not a tensor`);
  });

  it('rejects the legacy (pre-1.6) format, non-zip files, truncated and compressed archives', () => {
    // Legacy torch.save: a bare pickle stream starting with the magic number.
    const legacy = write(Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(errorOf(() => readPytorchBin(legacy))).toBe(
      `${legacy}: legacy (pre-1.6, non-zip) PyTorch format is not supported; re-save it with torch>=1.6 (torch.save(torch.load(f), f)) or convert it to model.safetensors`,
    );
    const junk = write(Buffer.from('hello world'));
    expect(errorOf(() => readPytorchBin(junk))).toMatch(/not a PyTorch zip checkpoint/);
    const pkl = statePickle({ w: { storage: '0', type: 'FloatStorage', numel: 3, shape: [3] } });
    const good = buildBin(pkl, { 0: f32([1, 2, 3]) });
    const cut = write(good.subarray(0, good.length - 30));
    expect(errorOf(() => readPytorchBin(cut))).toMatch(/no end-of-central-directory record; truncated/);
    const corrupt = Buffer.from(good);
    corrupt[corrupt.indexOf(Buffer.from(f32([1, 2, 3])))] ^= 1;
    const fc = write(corrupt);
    expect(errorOf(() => readPytorchBin(fc))).toBe(`${fc}: zip entry archive/data/0: CRC mismatch (corrupt file)`);
    const deflated = write(buildZip([['archive/data.pkl', pkl]], { method: 8 }));
    expect(errorOf(() => readPytorchBin(deflated))).toMatch(/zip entry archive\/data.pkl is compressed \(method 8\)/);
  });
});

describe('refcheck pytorch_model.bin files', () => {
  for (const model of ['t5-fid-tiny', 't5-v11-tiny', 'xlmr-ce-tiny']) {
    it(`${model}: same names (bar tied aliases) and bit-identical data as model.safetensors`, () => {
      const dir = join(CHECKPOINTS, model);
      const bin = readPytorchBin(join(dir, 'pytorch_model.bin'));
      const st = readSafetensors(join(dir, 'model.safetensors'));
      for (const name of st.keys()) expect(bin.has(name), name).toBe(true);
      for (const [name, t] of bin) {
        const s = st.get(name) ?? (name === 'lm_head.weight' || name.endsWith('embed_tokens.weight') ? st.get('shared.weight') : undefined);
        expect(s, `${name} only in .bin and not a tied alias`).toBeDefined();
        expect(t.dtype).toBe(s!.dtype);
        expect(t.shape).toEqual(s!.shape);
        expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(s!.data.buffer, s!.data.byteOffset, s!.data.byteLength)), name).toBe(true);
      }
    });
  }

  it('t5-fid-tiny: tied names share shared.weight', () => {
    const bin = readPytorchBin(join(CHECKPOINTS, 't5-fid-tiny', 'pytorch_model.bin'));
    const shared = bin.get('shared.weight')!;
    for (const alias of ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight']) {
      expect(bin.get(alias), alias).toBe(shared);
    }
    // t5-v11 unties the LM head
    const v11 = readPytorchBin(join(CHECKPOINTS, 't5-v11-tiny', 'pytorch_model.bin'));
    expect(v11.get('encoder.embed_tokens.weight')).toBe(v11.get('shared.weight'));
    expect(v11.get('lm_head.weight')).not.toBe(v11.get('shared.weight'));
  });

  it('loadStateDict reads pytorch_model.bin when there is no safetensors file', async () => {
    const dir = mkdtempSync(join(tmp, 'binonly-'));
    writeFileSync(join(dir, 'pytorch_model.bin'), readFileSync(join(CHECKPOINTS, 'xlmr-ce-tiny', 'pytorch_model.bin')));
    const sd = await loadStateDict(dir);
    expect(sd.tensors.size).toBe(41);
    expect(new Set(sd.source.values())).toEqual(new Set([join(dir, 'pytorch_model.bin')]));
  });

  it('loads a sharded pytorch_model.bin.index.json and names a missing shard', async () => {
    const dir = mkdtempSync(join(tmp, 'binshards-'));
    const st = readSafetensors(join(CHECKPOINTS, 't5-v11-tiny', 'model.safetensors'));
    const names = [...st.keys()];
    const shards = [names.slice(0, 20), names.slice(20)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, i) => {
      const file = `pytorch_model-0000${i + 1}-of-00002.bin`;
      saveBin(join(dir, file), new Map(part.map((k) => [k, st.get(k)!])));
      for (const k of part) weightMap[k] = file;
    });
    writeFileSync(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const sd = await loadStateDict(dir);
    expect([...sd.tensors.keys()].sort()).toEqual([...names].sort());
    for (const k of names) expect(sd.tensors.get(k)!.data).toEqual(st.get(k)!.data);
    expect(sd.source.get(names[25]!)).toBe(join(dir, 'pytorch_model-00002-of-00002.bin'));
    rmSync(join(dir, 'pytorch_model-00002-of-00002.bin'));
    await expect(loadStateDict(dir)).rejects.toThrow(
      `${join(dir, 'pytorch_model.bin.index.json')}: shard pytorch_model-00002-of-00002.bin (holding ${names[20]} and ${names.length - 21} more) is missing`,
    );
  });
});
