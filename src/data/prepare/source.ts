import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { GrerankError } from '../../errors.js';

/**
 * Streaming readers for raw dataset files. Nothing reads a whole file into one string: JSON
 * lines are split at newlines, and JSON arrays (HotpotQA train is ~500 MB, above V8's largest
 * string) are cut into their top-level elements by a byte scanner that tracks strings, escapes
 * and nesting depth; each element is decoded as strict UTF-8 and parsed on its own.
 *
 * Problems inside one record (bad UTF-8, invalid JSON, a record cut off by the end of the file)
 * come back as records carrying a `RecordError`, so a caller can skip and count them; problems
 * with the file as a whole (missing, not JSON at all, brackets that do not match) throw.
 */

/** Why a record was rejected: a short reason for the summary, and the one-line message. */
export class RecordError extends GrerankError {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'RecordError';
  }
}

export interface RawRecord {
  /** 0-based position of the record in the file (array element, or non-blank line). */
  index: number;
  /** 1-based line where the record starts. */
  line: number;
  /** `FILE: record I (line L[, byte B])`, the prefix of every message about this record. */
  where: string;
  value?: unknown;
  error?: RecordError;
}

export type Layout = 'array' | 'jsonl' | 'wrapped';

const CHUNK = 1 << 20;

function openError(file: string, e: unknown): GrerankError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new GrerankError(`${file}: no such file`);
  if (err.code === 'EISDIR') return new GrerankError(`${file}: is a directory`);
  return new GrerankError(`${file}: ${err.message}`);
}

export function fileSize(file: string): number {
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return st.size;
  } catch (e) {
    throw openError(file, e);
  }
}

/** Offset of the first byte that breaks UTF-8 in `buf`, or -1 when it is all valid. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const b = buf[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return i;
    if (i + need >= n) return i;
    for (let j = 1; j <= need; j++) {
      const c = buf[i + j];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8 decoding of one record; a bad byte is a RecordError naming its offset. */
function decodeRecord(bytes: Uint8Array, where: string): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const detail = at >= 0 ? ` (byte 0x${bytes[at]!.toString(16).padStart(2, '0')} at offset ${at} of the record)` : '';
    throw new RecordError('not valid UTF-8', `${where}: not valid UTF-8${detail}`);
  }
}

function parseRecord(text: string, where: string, reason = 'invalid JSON'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    throw new RecordError(reason, `${where}: ${reason === 'truncated' ? 'truncated record (end of file)' : 'invalid JSON'} (${msg})`);
  }
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/**
 * Decides the layout from the start of the file: '[' is a JSON array; '{' is JSON lines when
 * the first object closes before any newline, otherwise one pretty-printed JSON object (the
 * TriviaQA layout, `{"Data": [...]}`).
 */
export function detectLayout(file: string): { layout: Layout; bom: boolean } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw openError(file, e);
  }
  try {
    const buf = Buffer.alloc(CHUNK);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const bom = n >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf;
    let i = bom ? 3 : 0;
    while (i < n && isSpace(buf[i]!)) i++;
    if (i >= n) throw new GrerankError(`${file}: empty file (expected a JSON array or JSON lines)`);
    if (buf[i] === 0x5b) return { layout: 'array', bom };
    if (buf[i] !== 0x7b) throw new GrerankError(`${file}: expected a JSON array or JSON lines, found ${JSON.stringify(String.fromCharCode(buf[i]!))} at byte ${i}`);
    let depth = 0;
    let inStr = false;
    let esc = false;
    for (; i < n; i++) {
      const c = buf[i]!;
      if (inStr) {
        if (esc) esc = false;
        else if (c === 0x5c) esc = true;
        else if (c === 0x22) inStr = false;
        continue;
      }
      if (c === 0x22) inStr = true;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (--depth === 0) return { layout: 'jsonl', bom };
      } else if (c === 0x0a) return { layout: 'wrapped', bom };
    }
    return { layout: 'jsonl', bom }; // a first line longer than the peek: JSON lines with a huge record
  } finally {
    closeSync(fd);
  }
}

async function* chunks(file: string, size = CHUNK): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: size }) as AsyncIterable<Buffer>) yield chunk;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code) throw openError(file, e);
    throw e;
  }
}

/** Progress callback: bytes consumed so far. */
export type OnBytes = (bytes: number) => void;

/** JSON lines: one record per non-blank line; a last line without newline that fails to parse is "truncated". */
async function* readJsonLines(file: string, onBytes?: OnBytes, chunkSize?: number): AsyncGenerator<RawRecord> {
  let carry: Buffer | null = null;
  let lineNo = 0;
  let index = 0;
  let consumed = 0;
  function* emit(bytes: Buffer, last: boolean): Generator<RawRecord> {
    lineNo++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    let start = 0;
    if (lineNo === 1 && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
    let blank = true;
    for (let i = start; i < end; i++) if (!isSpace(bytes[i]!)) { blank = false; break; }
    if (blank) return;
    const where = `${file}: record ${index} (line ${lineNo})`;
    const rec: RawRecord = { index: index++, line: lineNo, where };
    try {
      const text = decodeRecord(bytes.subarray(start, end), where);
      rec.value = parseRecord(text, where, last ? 'truncated' : 'invalid JSON');
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      rec.error = e;
    }
    yield rec;
  }
  for await (const chunk of chunks(file, chunkSize)) {
    const data: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    let nl: number;
    while ((nl = data.indexOf(0x0a, start)) !== -1) {
      yield* emit(data.subarray(start, nl), false);
      start = nl + 1;
    }
    carry = start < data.length ? Buffer.from(data.subarray(start)) : null;
    consumed += chunk.length;
    onBytes?.(consumed);
  }
  if (carry && carry.length) yield* emit(carry, true);
}

/**
 * The elements of a JSON array, cut by a byte scanner: the array is the whole file
 * (`wrappedKey` undefined) or the value of the top-level member `wrappedKey` of one object.
 */
async function* readJsonArray(file: string, wrappedKey: string | undefined, bom: boolean, onBytes?: OnBytes, chunkSize?: number): AsyncGenerator<RawRecord> {
  // Scanner state.
  let inStr = false;
  let esc = false;
  const stack: number[] = []; // open brackets: 0x5b or 0x7b
  let line = 1;
  let started = false; // the first non-space byte has been seen
  let targetDepth = wrappedKey === undefined ? 1 : -1; // stack depth inside the array we cut
  let targetClosed = false;
  // Object keys at depth 1 (wrapped layout): capture each key to find `wrappedKey`.
  let expectKey = false;
  let keyParts: Buffer[] | null = null;
  let keyStart = 0;
  let lastKey: string | null = null;
  // The element being cut.
  let parts: Buffer[] | null = null;
  let elemStart = 0;
  let elemLine = 0;
  let elemOffset = 0;
  let index = 0;
  let consumed = 0;
  let offset = 0; // file offset of the current chunk
  const where = (i: number, l: number, at: number) => `${file}: record ${i} (line ${l}, byte ${at})`;
  const structural = (what: string, at: number) => new GrerankError(`${file}: line ${line}, byte ${at}: ${what}`);

  function finish(): RawRecord {
    const bytes = Buffer.concat(parts!);
    parts = null;
    const rec: RawRecord = { index, line: elemLine, where: where(index, elemLine, elemOffset) };
    index++;
    try {
      rec.value = parseRecord(decodeRecord(bytes, rec.where), rec.where);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      rec.error = e;
    }
    return rec;
  }

  for await (const chunk of chunks(file, chunkSize)) {
    let i = 0;
    const n = chunk.length;
    if (bom && offset < 3) i = Math.min(n, 3 - offset); // the byte-order mark, possibly split across reads
    if (parts) elemStart = 0;
    if (keyParts) keyStart = 0;
    const out: RawRecord[] = [];
    for (; i < n; i++) {
      const c = chunk[i]!;
      if (inStr) {
        if (esc) esc = false;
        else if (c === 0x5c) esc = true;
        else if (c === 0x22) {
          inStr = false;
          if (keyParts) {
            keyParts.push(chunk.subarray(keyStart, i + 1));
            try {
              lastKey = JSON.parse(Buffer.concat(keyParts).toString('utf8')) as string;
            } catch {
              lastKey = null;
            }
            keyParts = null;
          }
        } else if (c === 0x0a) line++;
        continue;
      }
      if (c === 0x0a) {
        line++;
        continue;
      }
      if (c === 0x20 || c === 0x0d || c === 0x09) continue;
      if (targetClosed) throw structural('unexpected data after the end of the array', offset + i);
      const depth = stack.length;
      if (!started) {
        started = true;
        if (wrappedKey === undefined && c !== 0x5b) throw structural('expected a JSON array', offset + i);
        if (wrappedKey !== undefined && c !== 0x7b) throw structural('expected a JSON object', offset + i);
      } else if (depth === 0) {
        throw structural('unexpected data after the end of the top-level value', offset + i);
      }
      // Start of an element of the target array.
      if (depth === targetDepth && !parts && c !== 0x2c && c !== 0x5d) {
        parts = [];
        elemStart = i;
        elemLine = line;
        elemOffset = offset + i;
      }
      if (c === 0x22) {
        inStr = true;
        if (wrappedKey !== undefined && depth === 1 && expectKey) {
          keyParts = [];
          keyStart = i;
        }
      } else if (c === 0x7b || c === 0x5b) {
        if (wrappedKey !== undefined && depth === 1 && c === 0x5b && lastKey === wrappedKey && targetDepth < 0) targetDepth = 2;
        stack.push(c);
        if (depth === 0 && c === 0x7b) expectKey = true;
      } else if (c === 0x7d || c === 0x5d) {
        const open = stack.pop();
        if (open === undefined || (open === 0x5b) !== (c === 0x5d)) throw structural(`unmatched "${String.fromCharCode(c)}"`, offset + i);
        if (stack.length === targetDepth - 1 && open === 0x5b && targetDepth > 0) {
          // The target array closes: finish its last element.
          if (parts) {
            parts.push(chunk.subarray(elemStart, i));
            out.push(finish());
          }
          if (wrappedKey === undefined) targetClosed = true;
          else targetDepth = 0; // done with the wrapped array; keep scanning the object
        }
      } else if (c === 0x2c) {
        if (depth === targetDepth && parts) {
          parts.push(chunk.subarray(elemStart, i));
          out.push(finish());
        } else if (depth === targetDepth && !parts) {
          throw structural('empty element in the array', offset + i);
        }
        if (depth === 1 && wrappedKey !== undefined) expectKey = true;
      } else if (c === 0x3a) {
        if (depth === 1) expectKey = false;
      }
    }
    if (parts) parts.push(Buffer.from(chunk.subarray(elemStart)));
    if (keyParts) keyParts.push(Buffer.from(chunk.subarray(keyStart)));
    offset += n;
    consumed += n;
    for (const r of out) yield r;
    onBytes?.(consumed);
  }
  if (!started) throw new GrerankError(`${file}: empty file (expected a JSON array or JSON lines)`);
  if (stack.length > 0) {
    // The file ends inside the array. An object or array element that closed before the end
    // is whole and still counts; an element cut off inside it is the truncated record.
    if (parts && !inStr && stack.length === targetDepth) {
      const bytes = Buffer.concat(parts as Buffer[]);
      let k = 0;
      while (k < bytes.length && isSpace(bytes[k]!)) k++;
      if (bytes[k] === 0x7b || bytes[k] === 0x5b) yield finish();
    }
    const at = parts ? elemLine : line;
    const w = where(index, at, parts ? elemOffset : offset);
    const msg = parts ? 'truncated record (end of file inside it)' : 'truncated file (end of file before the closing "]")';
    yield { index, line: at, where: w, error: new RecordError('truncated', `${w}: ${msg}`) };
    return;
  }
  if (wrappedKey !== undefined && targetDepth < 0) {
    throw new GrerankError(`${file}: a single JSON object without a "${wrappedKey}" array (expected a JSON array, JSON lines, or TriviaQA's {"${wrappedKey}": [...]})`);
  }
}

/**
 * Every record of a raw file, whatever its layout; `layout` is decided by `detectLayout`.
 * `chunkSize` (bytes per read, 1 MiB by default) exists for tests of records split across reads.
 */
export function readRecords(file: string, onBytes?: OnBytes, chunkSize?: number): { layout: Layout; records: AsyncGenerator<RawRecord> } {
  const { layout, bom } = detectLayout(file);
  const records = layout === 'jsonl' ? readJsonLines(file, onBytes, chunkSize) : readJsonArray(file, layout === 'wrapped' ? 'Data' : undefined, bom, onBytes, chunkSize);
  return { layout, records };
}
