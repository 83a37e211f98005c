import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { GrerankError } from '../errors.js';
import { validateExample, type Example } from './examples.js';
import { detectLayout, firstInvalidUtf8, RecordError } from './prepare/source.js';

/**
 * Random access to a training-format file (JSON lines or a JSON array) without holding it in
 * memory. `Dataset.open` makes one streaming pass: every record is decoded as strict UTF-8,
 * parsed and validated (errors name the file and line), and the byte range of each valid record
 * is kept in an index of typed arrays (16 bytes per example, never the text). The index is cached
 * beside the data as `FILE.idx` and reused while the source's size and mtime are unchanged.
 * `get(i)` then reads just that record with one positional read.
 *
 * Index file (little-endian): magic "GRRKIDX\0", u32 version, u32 layout (0 JSON lines,
 * 1 array), f64 source size, f64 source mtime (ms), f64 count, f64 skipped, then
 * f64 offsets[count], u32 lengths[count], u32 lines[count], u32 records[count].
 */

export interface DatasetOptions {
  /** Skip and count invalid records instead of failing on the first. */
  skipInvalid?: boolean;
  /** Use the first `limit` valid examples only (the index still covers the whole file). */
  limit?: number;
  /** Read and write the `FILE.idx` cache (default true). Write failures (read-only folder) are ignored. */
  cache?: boolean;
  /** Where the cache lives (default `FILE.idx`). */
  indexFile?: string;
  /** Bytes per read while indexing (tests use small values to split records across reads). */
  chunkSize?: number;
}

const MAGIC = Buffer.from('GRRKIDX\0', 'latin1');
const VERSION = 1;
const HEADER = 8 + 4 + 4 + 8 * 4;

type IndexLayout = 'jsonl' | 'array';

interface Index {
  layout: IndexLayout;
  size: number;
  mtimeMs: number;
  count: number;
  skipped: number;
  offsets: Float64Array;
  lengths: Uint32Array;
  lines: Uint32Array;
  records: Uint32Array;
}

/** Growable columns of the index being built. */
class Columns {
  count = 0;
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  lines = new Uint32Array(1024);
  records = new Uint32Array(1024);
  push(offset: number, length: number, line: number, record: number): void {
    if (this.count === this.offsets.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.offsets = grow(this.offsets);
      this.lengths = grow(this.lengths);
      this.lines = grow(this.lines);
      this.records = grow(this.records);
    }
    const k = this.count++;
    this.offsets[k] = offset;
    this.lengths[k] = length;
    this.lines[k] = line;
    this.records[k] = record;
  }
}

const strict = new TextDecoder('utf-8', { fatal: true });

function decode(bytes: Uint8Array, where: string): string {
  try {
    return strict.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const detail = at >= 0 ? ` (byte 0x${bytes[at]!.toString(16).padStart(2, '0')} at offset ${at} of the record)` : '';
    throw new RecordError('not valid UTF-8', `${where}: not valid UTF-8${detail}`);
  }
}

function parse(text: string, where: string, truncated = false): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    throw new RecordError(truncated ? 'truncated' : 'invalid JSON', `${where}: ${truncated ? 'truncated record (end of file)' : 'invalid JSON'} (${msg})`);
  }
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

function whereOf(file: string, layout: IndexLayout, record: number, line: number): string {
  return layout === 'jsonl' ? `${file}:${line}` : `${file}: record ${record} (line ${line})`;
}

/** A record's bytes at [offset, offset+length), checked: returns the example or throws a GrerankError with its location. */
function checkRecord(bytes: Uint8Array, where: string, truncated: boolean): Example {
  return validateExample(parse(decode(bytes, where), where, truncated), where);
}

async function* chunks(file: string, size: number): AsyncGenerator<Buffer> {
  try {
    for await (const c of createReadStream(file, { highWaterMark: size }) as AsyncIterable<Buffer>) yield c;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new GrerankError(`${file}: no such file`);
    if (err.code === 'EISDIR') throw new GrerankError(`${file}: is a directory`);
    throw e;
  }
}

/**
 * The indexing pass. `take` is called with each record's byte range and bytes; it validates and
 * records it (or counts it as skipped).
 */
type Take = (offset: number, bytes: Uint8Array, line: number, truncated: boolean) => void;

/** JSON lines: one record per non-blank line (a UTF-8 BOM on line 1 is skipped). */
async function scanLines(file: string, chunkSize: number, take: Take): Promise<void> {
  let carry: Buffer | null = null;
  let carryOffset = 0;
  let offset = 0; // file offset of the current chunk
  let line = 0;
  const emit = (bytes: Buffer, at: number, last: boolean) => {
    line++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    let start = 0;
    if (line === 1 && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    let s = start;
    while (s < end && isSpace(bytes[s]!)) s++;
    if (s === end) return;
    take(at + start, bytes.subarray(start, end), line, last);
  };
  for await (const chunk of chunks(file, chunkSize)) {
    const data: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    const base = carry ? carryOffset : offset;
    let start = 0;
    let nl: number;
    while ((nl = data.indexOf(0x0a, start)) !== -1) {
      emit(data.subarray(start, nl), base + start, false);
      start = nl + 1;
    }
    carry = start < data.length ? Buffer.from(data.subarray(start)) : null;
    carryOffset = base + start;
    offset += chunk.length;
  }
  if (carry && carry.length) emit(carry, carryOffset, true);
}

/**
 * A JSON array: its top-level elements, cut by a byte scanner that tracks strings, escapes and
 * nesting (the same rules as prepare/source.ts's splitter, which does not report byte ranges).
 */
async function scanArray(file: string, bom: boolean, chunkSize: number, take: Take): Promise<void> {
  let inStr = false;
  let esc = false;
  let depth = 0;
  let started = false;
  let closed = false;
  let line = 1;
  let parts: Buffer[] | null = null;
  let elemStart = 0;
  let elemOffset = 0;
  let elemLine = 0;
  let offset = 0;
  const structural = (what: string, at: number) => new GrerankError(`${file}: line ${line}, byte ${at}: ${what}`);
  const finish = () => {
    const bytes = Buffer.concat(parts!);
    parts = null;
    let end = bytes.length;
    while (end > 0 && isSpace(bytes[end - 1]!)) end--;
    take(elemOffset, bytes.subarray(0, end), elemLine, false);
  };
  for await (const chunk of chunks(file, chunkSize)) {
    let i = bom && offset < 3 ? Math.min(chunk.length, 3 - offset) : 0;
    if (parts) elemStart = 0;
    for (const n = chunk.length; i < n; i++) {
      const c = chunk[i]!;
      if (inStr) {
        if (esc) esc = false;
        else if (c === 0x5c) esc = true;
        else if (c === 0x22) inStr = false;
        else if (c === 0x0a) line++;
        continue;
      }
      if (c === 0x0a) {
        line++;
        continue;
      }
      if (c === 0x20 || c === 0x0d || c === 0x09) continue;
      if (closed) throw structural('unexpected data after the end of the array', offset + i);
      if (!started) {
        started = true;
        if (c !== 0x5b) throw structural('expected a JSON array', offset + i);
        depth = 1;
        continue;
      }
      if (depth === 1 && !parts && c !== 0x2c && c !== 0x5d) {
        parts = [];
        elemStart = i;
        elemOffset = offset + i;
        elemLine = line;
      }
      if (c === 0x22) inStr = true;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) {
          if (c !== 0x5d) throw structural('unmatched "}"', offset + i);
          if (parts) {
            parts.push(chunk.subarray(elemStart, i));
            finish();
          }
          closed = true;
        }
      } else if (c === 0x2c && depth === 1) {
        if (!parts) throw structural('empty element in the array', offset + i);
        parts.push(chunk.subarray(elemStart, i));
        finish();
      }
    }
    if (parts) parts.push(Buffer.from(chunk.subarray(elemStart)));
    offset += chunk.length;
  }
  if (!started) throw new GrerankError(`${file}: empty file (expected a JSON array or JSON lines)`);
  if (!closed) {
    // An element that closed before the end of the file is whole and still counts.
    if (parts && !inStr && depth === 1) {
      const bytes = Buffer.concat(parts as Buffer[]);
      let k = 0;
      while (k < bytes.length && isSpace(bytes[k]!)) k++;
      if (bytes[k] === 0x7b || bytes[k] === 0x5b) {
        finish();
        parts = null;
      }
    }
    const at = parts ? elemLine : line;
    throw new RecordError('truncated', `${file}: line ${at}: ${parts ? 'truncated record (end of file inside it)' : 'truncated file (end of file before the closing "]")'}`);
  }
}

async function buildIndex(file: string, opts: DatasetOptions): Promise<Index> {
  const st = statSync(file);
  const { layout: detected, bom } = detectLayout(file);
  if (detected === 'wrapped') throw new GrerankError(`${file}: a single JSON object, not the training format (JSON lines or a JSON array; convert raw files with grerank prepare)`);
  const layout: IndexLayout = detected;
  const cols = new Columns();
  let record = 0;
  let skipped = 0;
  const take: Take = (offset, bytes, line, truncated) => {
    const where = whereOf(file, layout, record, line);
    try {
      checkRecord(bytes, where, truncated);
      cols.push(offset, bytes.length, line, record);
    } catch (e) {
      if (!opts.skipInvalid || !(e instanceof GrerankError)) throw e;
      skipped++;
    }
    record++;
  };
  const chunkSize = opts.chunkSize ?? 1 << 20;
  try {
    if (layout === 'jsonl') await scanLines(file, chunkSize, take);
    else await scanArray(file, bom, chunkSize, take);
  } catch (e) {
    // A truncated array is a file-level problem, but with skipInvalid the records before it stand.
    if (!(opts.skipInvalid && e instanceof RecordError)) throw e;
    skipped++;
  }
  const after = statSync(file);
  if (after.size !== st.size || after.mtimeMs !== st.mtimeMs) throw new GrerankError(`${file}: changed while it was being indexed`);
  const n = cols.count;
  return {
    layout,
    size: st.size,
    mtimeMs: st.mtimeMs,
    count: n,
    skipped,
    offsets: cols.offsets.slice(0, n),
    lengths: cols.lengths.slice(0, n),
    lines: cols.lines.slice(0, n),
    records: cols.records.slice(0, n),
  };
}

function encodeIndex(ix: Index): Buffer {
  const n = ix.count;
  const buf = Buffer.alloc(HEADER + n * (8 + 4 + 4 + 4));
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE(ix.layout === 'jsonl' ? 0 : 1, 12);
  buf.writeDoubleLE(ix.size, 16);
  buf.writeDoubleLE(ix.mtimeMs, 24);
  buf.writeDoubleLE(n, 32);
  buf.writeDoubleLE(ix.skipped, 40);
  let p = HEADER;
  for (let i = 0; i < n; i++, p += 8) buf.writeDoubleLE(ix.offsets[i]!, p);
  for (const col of [ix.lengths, ix.lines, ix.records]) for (let i = 0; i < n; i++, p += 4) buf.writeUInt32LE(col[i]!, p);
  return buf;
}

/** The cached index when it is valid for the source as it is now, else null. */
function readIndex(idxFile: string, size: number, mtimeMs: number): Index | null {
  let buf: Buffer;
  try {
    buf = readFileSync(idxFile);
  } catch {
    return null;
  }
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC) || buf.readUInt32LE(8) !== VERSION) return null;
  const layoutCode = buf.readUInt32LE(12);
  if (layoutCode > 1 || buf.readDoubleLE(16) !== size || buf.readDoubleLE(24) !== mtimeMs) return null;
  const n = buf.readDoubleLE(32);
  if (!Number.isInteger(n) || n < 0 || buf.length !== HEADER + n * 20) return null;
  const ix: Index = {
    layout: layoutCode === 0 ? 'jsonl' : 'array',
    size,
    mtimeMs,
    count: n,
    skipped: buf.readDoubleLE(40),
    offsets: new Float64Array(n),
    lengths: new Uint32Array(n),
    lines: new Uint32Array(n),
    records: new Uint32Array(n),
  };
  let p = HEADER;
  for (let i = 0; i < n; i++, p += 8) ix.offsets[i] = buf.readDoubleLE(p);
  for (const col of [ix.lengths, ix.lines, ix.records]) for (let i = 0; i < n; i++, p += 4) col[i] = buf.readUInt32LE(p);
  return ix;
}

export class Dataset {
  private fd: number | null;
  private buf = Buffer.alloc(64 * 1024);

  private constructor(
    readonly file: string,
    private readonly ix: Index,
    /** Number of examples served (the valid records, capped by `limit`). */
    readonly length: number,
    /** True when the index came from `FILE.idx` rather than a fresh pass. */
    readonly fromCache: boolean,
  ) {
    this.fd = openSync(file, 'r');
  }

  /**
   * Indexes `file` (or reuses its valid `FILE.idx`). Invalid records throw a GrerankError naming
   * the file and line, or are skipped and counted (`skipped`) with `skipInvalid`.
   */
  static async open(file: string, opts: DatasetOptions = {}): Promise<Dataset> {
    let st;
    try {
      st = statSync(file);
    } catch (e) {
      throw new GrerankError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    if (st.isDirectory()) throw new GrerankError(`${file}: is a directory`);
    const useCache = opts.cache ?? true;
    const idxFile = opts.indexFile ?? `${file}.idx`;
    let ix = useCache ? readIndex(idxFile, st.size, st.mtimeMs) : null;
    // An index that skipped records is only good for callers that accept skipping.
    if (ix && ix.skipped > 0 && !opts.skipInvalid) ix = null;
    const fromCache = ix !== null;
    if (!ix) {
      ix = await buildIndex(file, opts);
      if (useCache) {
        const tmp = `${idxFile}.${process.pid}.tmp`;
        try {
          writeFileSync(tmp, encodeIndex(ix));
          renameSync(tmp, idxFile);
        } catch {
          try {
            unlinkSync(tmp);
          } catch {
            /* not written */
          }
        }
      }
    }
    const length = Math.min(ix.count, opts.limit ?? Infinity);
    return new Dataset(file, ix, length, fromCache);
  }

  /** Invalid records skipped while indexing (always 0 without skipInvalid). */
  get skipped(): number {
    return this.ix.skipped;
  }

  get layout(): 'jsonl' | 'array' {
    return this.ix.layout;
  }

  /** `file:line` (JSON lines) or `file: record R (line L)` (arrays) of example i. */
  where(i: number): string {
    this.check(i);
    return whereOf(this.file, this.ix.layout, this.ix.records[i]!, this.ix.lines[i]!);
  }

  /** Example i, read with one positional read and parsed on its own. */
  get(i: number): Example {
    this.check(i);
    if (this.fd === null) throw new GrerankError(`${this.file}: dataset is closed`);
    const len = this.ix.lengths[i]!;
    if (this.buf.length < len) this.buf = Buffer.alloc(Math.max(len, this.buf.length * 2));
    const off = this.ix.offsets[i]!;
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, this.buf, got, len - got, off + got);
      if (n === 0) break;
      got += n;
    }
    const where = this.where(i);
    if (got < len) throw new GrerankError(`${where}: the file is shorter than its index (changed since it was opened?)`);
    const ex = checkRecord(this.buf.subarray(0, len), where, false);
    if (!ex.id) ex.id = String(this.ix.records[i]);
    return ex;
  }

  getMany(indices: readonly number[]): Example[] {
    return indices.map((i) => this.get(i));
  }

  /** True while the source has the size and mtime it was indexed at. */
  isCurrent(): boolean {
    if (this.fd === null) return false;
    const st = fstatSync(this.fd);
    return st.size === this.ix.size && st.mtimeMs === this.ix.mtimeMs;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`${this.file}: example ${i} out of range [0, ${this.length})`);
  }
}
