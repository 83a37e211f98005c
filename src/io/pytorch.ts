import { closeSync, openSync, readSync } from 'node:fs';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, decodeFloats, decodeInts } from './dtypes.js';
import type { RawTensor } from './types.js';
import { ZipReader, hasZipMagic } from './zip.js';

/**
 * Reader for pytorch_model.bin in the zip format of torch.save (PyTorch >= 1.6): a zip with
 * `<archive>/data.pkl` (a pickle of the state dict whose tensors point at storages through
 * persistent ids) and one `<archive>/data/<key>` entry per storage.
 *
 * Pickles can run arbitrary code, so this is not a Python unpickler: it interprets the opcodes
 * into plain values, and a GLOBAL can only name an allow-listed torch/collections symbol, which
 * is turned into a marker, never called. REDUCE on a marker rebuilds a tensor description;
 * anything else is rejected with a one-line error.
 */

// ---- values the unpickler produces ------------------------------------------------------

class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage named by a persistent id: `('storage', StorageType, key, location, numel)`. */
class StorageRef {
  constructor(readonly key: string, readonly dtype: string, readonly numel: number) {}
}

/** A tensor view on a storage (not read yet). `dtype` overrides the storage's for untyped ones. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly dtype: string,
  ) {}
}

/** Safetensors dtype names of the typed storage classes torch pickles. */
const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8',
  ByteStorage: 'U8', BoolStorage: 'BOOL',
};

/** torch dtype objects (they pickle as GLOBAL torch.<name>; used by _rebuild_tensor_v3). */
const TORCH_DTYPES: Record<string, string> = {
  float32: 'F32', float: 'F32', float64: 'F64', double: 'F64', float16: 'F16', half: 'F16',
  bfloat16: 'BF16', int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16',
  short: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};

/** Callables REDUCE may apply. Everything else in ALLOWED is a plain marker value. */
const CALLABLE = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
]);

function isAllowed(module: string, name: string): boolean {
  const full = `${module}.${name}`;
  if (CALLABLE.has(full)) return true;
  if (module === 'torch' && (name in STORAGE_DTYPES || name in TORCH_DTYPES || name === 'Tensor' || name === 'UntypedStorage')) return true;
  return full === 'torch.storage.UntypedStorage' || full === 'torch._tensor.Tensor' || full === 'torch.nn.parameter.Parameter';
}

// ---- the unpickler ----------------------------------------------------------------------

type Value = unknown;

/**
 * Interprets a pickle into values. `file` names the checkpoint in errors.
 * Supports the opcodes of protocols 2-5 that torch.save emits (and a few neighbours).
 */
export function unpickle(data: Uint8Array, file: string): Value {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let stack: Value[] = [];
  const metastack: Value[][] = [];
  const memo = new Map<number, Value>();
  const fail = (what: string): never => {
    throw new CheckpointError(`${file}: ${what} (pickle byte ${pos})`);
  };
  const need = (n: number): void => {
    if (pos + n > buf.length) fail('pickle is truncated');
  };
  const u8 = () => (need(1), buf[pos++]!);
  const u16 = () => (need(2), (pos += 2), buf.readUInt16LE(pos - 2));
  const u32 = () => (need(4), (pos += 4), buf.readUInt32LE(pos - 4));
  const i32 = () => (need(4), (pos += 4), buf.readInt32LE(pos - 4));
  const u64 = () => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(buf.length)) fail('pickle length field is larger than the pickle');
    return Number(v);
  };
  const bytes = (n: number) => (need(n), (pos += n), buf.subarray(pos - n, pos));
  const str = (n: number) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes(n));
    } catch {
      return fail('pickle string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail('pickle is truncated');
    const s = buf.toString('latin1', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = (): Value => {
    if (stack.length === 0) fail('pickle stack underflow');
    return stack.pop();
  };
  const top = (): Value => {
    if (stack.length === 0) fail('pickle stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): Value[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail('pickle MARK missing');
    stack = prev!;
    return items;
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!isAllowed(module, name)) {
      throw new CheckpointError(`${file}: pickle references global ${module}.${name}, which is not allowed (only tensors and plain containers are read)`);
    }
    return new PyGlobal(module, name);
  };
  const setItems = (d: Value, items: Value[]): void => {
    if (!(d instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as Map<Value, Value>).set(items[i], items[i + 1]);
  };
  const appendItems = (l: Value, items: Value[]): void => {
    if (!Array.isArray(l)) fail('APPEND(S) on something that is not a list');
    (l as Value[]).push(...items);
  };
  const memoPut = (i: number) => memo.set(i, top());
  const memoGet = (i: number) => {
    if (!memo.has(i)) fail(`pickle memo ${i} is undefined`);
    stack.push(memo.get(i));
  };
  const long = (b: Uint8Array): number => {
    // Little-endian two's complement of any length; only values safe in a double are kept.
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`pickle integer ${v} is too large`);
    return Number(v);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a hint for buffered readers
      case 0x2e: return pop(); // STOP
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(bytes(u8()))); break; // LONG1
      case 0x8b: stack.push(long(bytes(u32()))); break; // LONG4
      case 0x47: need(8); stack.push(buf.readDoubleBE(pos)); pos += 8; break; // BINFLOAT
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x55: stack.push(bytes(u8()).toString('latin1')); break; // SHORT_BINSTRING (py2 str)
      case 0x54: stack.push(bytes(u32()).toString('latin1')); break; // BINSTRING
      case 0x43: stack.push(new Uint8Array(bytes(u8()))); break; // SHORT_BINBYTES
      case 0x42: stack.push(new Uint8Array(bytes(u32()))); break; // BINBYTES
      case 0x8e: stack.push(new Uint8Array(bytes(u64()))); break; // BINBYTES8
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push([]); break; // EMPTY_SET (read as a list)
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      // (popMark replaces `stack`, so it must run before `stack.push` is looked up)
      case 0x6c: case 0x74: case 0x91: { const items = popMark(); stack.push(items); break; } // LIST, TUPLE, FROZENSET
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x90: { const items = popMark(); appendItems(top(), items); break; } // ADDITEMS
      case 0x71: memoPut(u8()); break; // BINPUT
      case 0x72: memoPut(u32()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size); break; // MEMOIZE
      case 0x68: memoGet(u8()); break; // BINGET
      case 0x6a: memoGet(u32()); break; // LONG_BINGET
      case 0x70: memoPut(Number(line())); break; // PUT
      case 0x67: memoGet(Number(line())); break; // GET
      case 0x63: { const module = line(); stack.push(global(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: stack.push(persistentLoad(pop(), file)); break; // BINPERSID
      case 0x52: { const args = pop(); const fn = pop(); stack.push(reduce(fn, args, file)); break; } // REDUCE
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args); only OrderedDict is constructible
        const args = pop();
        const cls = pop();
        if (!(cls instanceof PyGlobal) || cls.full !== 'collections.OrderedDict') fail(`pickle constructs ${cls instanceof PyGlobal ? cls.full : 'an object'}, which is not allowed`);
        void args;
        stack.push(new Map());
        break;
      }
      case 0x62: { // BUILD: object state. Dict attributes (OrderedDict._metadata) are irrelevant.
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof TensorRef)) fail('BUILD on an object that is not a dict or tensor');
        void state;
        break;
      }
      default:
        pos = at;
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} (${JSON.stringify(String.fromCharCode(op))})`);
    }
  }
}

function persistentLoad(pid: Value, file: string): StorageRef {
  // ('storage', storage_type, key, location, numel); numel counts elements of the storage
  // type (bytes for UntypedStorage).
  if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') {
    throw new CheckpointError(`${file}: unsupported persistent id in pickle (expected a torch storage)`);
  }
  const [, type, key, , numel] = pid as [string, Value, Value, Value, Value];
  if (!(type instanceof PyGlobal) || typeof key !== 'string' || typeof numel !== 'number') {
    throw new CheckpointError(`${file}: malformed storage persistent id in pickle`);
  }
  const dtype = type.name === 'UntypedStorage' ? 'U8' : STORAGE_DTYPES[type.name];
  if (!dtype) throw new CheckpointError(`${file}: storage type ${type.full} is not supported`);
  return new StorageRef(key, dtype, numel);
}

function intList(v: Value, what: string, file: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new CheckpointError(`${file}: tensor ${what} is not a tuple of non-negative integers`);
  }
  return v as number[];
}

function tensorRef(storage: Value, offset: Value, size: Value, stride: Value, dtype: string | undefined, file: string): TensorRef {
  if (!(storage instanceof StorageRef)) throw new CheckpointError(`${file}: tensor without a storage in pickle`);
  if (!Number.isInteger(offset) || (offset as number) < 0) throw new CheckpointError(`${file}: tensor storage offset is not a non-negative integer`);
  const shape = intList(size, 'size', file);
  const strides = intList(stride, 'stride', file);
  if (shape.length !== strides.length) throw new CheckpointError(`${file}: tensor has ${shape.length} sizes but ${strides.length} strides`);
  return new TensorRef(storage, offset as number, shape, strides, dtype ?? storage.dtype);
}

function reduce(fn: Value, args: Value, file: string): Value {
  if (!(fn instanceof PyGlobal) || !CALLABLE.has(fn.full)) {
    const what = fn instanceof PyGlobal ? fn.full : 'a value that is not a function';
    throw new CheckpointError(`${file}: pickle calls ${what}, which is not allowed (only tensors and plain containers are read)`);
  }
  if (!Array.isArray(args)) throw new CheckpointError(`${file}: REDUCE arguments are not a tuple`);
  const a = args as Value[];
  switch (fn.name) {
    case 'OrderedDict': {
      const d = new Map<Value, Value>();
      // OrderedDict() or OrderedDict([(k, v), ...])
      for (const kv of (a[0] as Value[] | undefined) ?? []) {
        if (!Array.isArray(kv) || kv.length !== 2) throw new CheckpointError(`${file}: malformed OrderedDict items in pickle`);
        d.set(kv[0], kv[1]);
      }
      return d;
    }
    case '_rebuild_tensor': // (storage, offset, size, stride)
    case '_rebuild_tensor_v2': // (storage, offset, size, stride, requires_grad, hooks[, metadata])
      return tensorRef(a[0], a[1], a[2], a[3], undefined, file);
    case '_rebuild_tensor_v3': { // (..., requires_grad, hooks, dtype, metadata): untyped storage
      const dt = a[6];
      const dtype = dt instanceof PyGlobal ? TORCH_DTYPES[dt.name] : undefined;
      if (!dtype) throw new CheckpointError(`${file}: tensor dtype ${dt instanceof PyGlobal ? dt.full : String(dt)} is not supported`);
      return tensorRef(a[0], a[1], a[2], a[3], dtype, file);
    }
    case '_rebuild_parameter': // (data, requires_grad, hooks): a Parameter is its data here
    case '_rebuild_parameter_with_state':
      if (!(a[0] instanceof TensorRef)) throw new CheckpointError(`${file}: parameter without tensor data in pickle`);
      return a[0];
    case '_rebuild_from_type_v2': // (func, type, args, state): a tensor subclass; keep the tensor
      return reduce(a[0], a[2], file);
  }
  throw new CheckpointError(`${file}: pickle calls ${fn.full}, which is not supported`);
}

// ---- from views to RawTensors -------------------------------------------------------------

function product(xs: readonly number[]): number {
  return xs.reduce((p, x) => p * x, 1);
}

/** Row-major strides of `shape`; a view is contiguous when its strides match (size-1 dims aside). */
function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

function decode(raw: Uint8Array, dtype: string, numel: number, where: string): Float32Array | Int32Array {
  return decodeFloats(raw, dtype, numel, where) ?? decodeInts(raw, dtype, numel, where);
}

/**
 * Materialises one view as a contiguous row-major RawTensor. Only the span of the storage the
 * view touches is decoded; non-contiguous views (e.g. a saved transpose) are gathered.
 */
function materialise(t: TensorRef, storage: Buffer, file: string, name: string): RawTensor {
  const where = `${file}: tensor ${name}`;
  const es = DTYPE_BYTES[t.dtype]!;
  const numel = product(t.shape);
  const isFloat = ['F32', 'F16', 'BF16', 'F64'].includes(t.dtype);
  const dtype = isFloat ? 'float32' : 'int32';
  if (numel === 0) return { dtype, shape: t.shape, data: isFloat ? new Float32Array(0) : new Int32Array(0) };
  let last = t.offset; // highest element index the view touches
  for (let d = 0; d < t.shape.length; d++) last += (t.shape[d]! - 1) * t.stride[d]!;
  const capacity = Math.floor(storage.byteLength / es);
  if (last >= capacity) {
    throw new CheckpointError(`${where}: view (offset ${t.offset}, shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}]) reaches element ${last} of a ${capacity}-element storage`);
  }
  const span = decode(storage.subarray(t.offset * es, (last + 1) * es), t.dtype, last + 1 - t.offset, where);
  if (isContiguous(t.shape, t.stride)) return { dtype, shape: t.shape, data: span };
  const out = isFloat ? new Float32Array(numel) : new Int32Array(numel);
  const nd = t.shape.length;
  const inner = t.shape[nd - 1]!;
  const innerStride = t.stride[nd - 1]!;
  const idx = new Array<number>(nd).fill(0);
  let base = 0; // offset (within span) of the current row
  for (let o = 0; o < numel; o += inner) {
    for (let j = 0; j < inner; j++) out[o + j] = span[base + j * innerStride]!;
    // odometer over the outer dims
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]!++;
      base += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      base -= idx[d]! * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return { dtype, shape: t.shape, data: out };
}

const LEGACY_HINT = 're-save it with torch>=1.6 (torch.save(torch.load(f), f)) or convert it to model.safetensors';

function checkFormat(file: string): void {
  const fd = openSync(file, 'r');
  const head = Buffer.alloc(4);
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (hasZipMagic(head)) return;
  // The legacy format is a bare pickle stream (starting with PROTO 0x80) or, before torch 0.4,
  // a tar archive.
  if (head[0] === 0x80) throw new CheckpointError(`${file}: legacy (pre-1.6, non-zip) PyTorch format is not supported; ${LEGACY_HINT}`);
  throw new CheckpointError(`${file}: not a PyTorch zip checkpoint (no zip header); ${LEGACY_HINT}`);
}

/**
 * Reads every tensor of a pytorch_model.bin (or those `wanted` accepts), floating point as
 * float32 and integers as int32. Views that share a storage and are identical (tied weights,
 * e.g. T5's shared.weight / encoder.embed_tokens.weight / lm_head.weight) come back as the
 * same RawTensor object, so they cost memory once. Storages are read one at a time.
 */
export function readPytorchBin(file: string, wanted: (name: string) => boolean = () => true): Map<string, RawTensor> {
  checkFormat(file);
  const zip = ZipReader.open(file);
  try {
    const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) {
      throw new CheckpointError(`${file}: zip archive has ${pkls.length} <archive>/data.pkl entries, expected 1 (not a torch.save checkpoint)`);
    }
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    const order = zip.entries.get(`${prefix}byteorder`);
    if (order && zip.read(order.name).toString('latin1').trim() !== 'little') {
      throw new CheckpointError(`${file}: big-endian checkpoints are not supported; ${LEGACY_HINT}`);
    }
    const root = unpickle(zip.read(pkls[0]!), file);
    if (!(root instanceof Map)) throw new CheckpointError(`${file}: pickle holds no state dict (top-level object is not a dict)`);
    // Group the views by storage so each storage entry is read once.
    const byStorage = new Map<string, Array<[string, TensorRef]>>();
    for (const [name, value] of root) {
      if (typeof name !== 'string') throw new CheckpointError(`${file}: state dict key ${String(name)} is not a string`);
      if (!(value instanceof TensorRef)) {
        const kind = value instanceof Map ? 'a dict (only flat state dicts are read)' : typeof value;
        throw new CheckpointError(`${file}: state dict entry ${name} is ${kind}, not a tensor`);
      }
      if (!wanted(name)) continue;
      const list = byStorage.get(value.storage.key) ?? [];
      list.push([name, value]);
      byStorage.set(value.storage.key, list);
    }
    const out = new Map<string, RawTensor>();
    for (const [key, views] of byStorage) {
      const entry = `${prefix}data/${key}`;
      if (!zip.entries.has(entry)) throw new CheckpointError(`${file}: storage ${entry} for tensor ${views[0]![0]} is missing from the archive`);
      const storage = zip.read(entry);
      const s = views[0]![1].storage;
      const need = s.numel * DTYPE_BYTES[s.dtype]!;
      if (storage.byteLength < need) {
        throw new CheckpointError(`${file}: storage ${entry} has ${storage.byteLength} bytes, but ${s.numel} elements of ${s.dtype} need ${need}`);
      }
      const seen = new Map<string, RawTensor>();
      for (const [name, t] of views) {
        const id = `${t.dtype}|${t.offset}|${t.shape.join(',')}|${t.stride.join(',')}`;
        let raw = seen.get(id);
        if (!raw) {
          raw = materialise(t, storage, file, name);
          seen.set(id, raw);
        }
        out.set(name, raw);
      }
    }
    // Keep the pickle's order (it is the module order) rather than storage order.
    const ordered = new Map<string, RawTensor>();
    for (const name of root.keys()) if (out.has(name as string)) ordered.set(name as string, out.get(name as string)!);
    return ordered;
  } finally {
    zip.close();
  }
}
