import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { CheckpointError } from '../errors.js';

/**
 * Random-access reader for the STORED (uncompressed) zip archives torch.save writes. Only the
 * central directory is read up front; an entry's bytes are read when asked for, so a 3 GB
 * pytorch_model.bin never sits in memory as a whole. Zip64 is supported because files over
 * 4 GiB (and archives with offsets past 4 GiB) need it.
 */

/** Node refuses single reads over 2 GiB; larger ranges are read in chunks of this size. */
const MAX_READ = 1 << 30;

/**
 * Reads exactly `length` bytes at `position`, or throws `file: truncated ...`. Shared with the
 * safetensors reader.
 */
export function readExactly(fd: number, file: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(length - done, MAX_READ), position + done);
    if (n === 0) throw new CheckpointError(`${file}: truncated at byte ${position + done} (wanted ${length} bytes at ${position})`);
    done += n;
  }
  return buf;
}

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate, ... */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

function u64(buf: Buffer, at: number, file: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(`${file}: zip field value ${v} is too large`);
  return Number(v);
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private fd: number;
  private readonly size: number;

  private constructor(readonly file: string) {
    this.fd = openSync(file, 'r');
    try {
      this.size = fstatSync(this.fd).size;
      this.readCentralDirectory();
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  /** Opens `file` and reads its central directory; one-line CheckpointError if it is no zip. */
  static open(file: string): ZipReader {
    return new ZipReader(file);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private fail(what: string): never {
    throw new CheckpointError(`${this.file}: ${what}`);
  }

  private readCentralDirectory(): void {
    // The end-of-central-directory record is 22 bytes plus a comment of up to 64 KiB: scan the
    // tail backwards for its signature.
    const tailLen = Math.min(this.size, 22 + U16_MAX);
    const tailStart = this.size - tailLen;
    const tail = readExactly(this.fd, this.file, tailStart, tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.fail('not a zip archive (no end-of-central-directory record; truncated or not a zip file)');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      // Zip64: a 20-byte locator sits right before the classic record and points at the
      // zip64 end-of-central-directory record, which holds the real 64-bit values.
      const locAt = tailStart + eocd - 20;
      if (locAt < 0) this.fail('zip64 locator missing');
      const loc = readExactly(this.fd, this.file, locAt, 20);
      if (loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) this.fail('zip64 locator missing');
      const recAt = u64(loc, 8, this.file);
      const rec = readExactly(this.fd, this.file, recAt, 56);
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) this.fail(`no zip64 end-of-central-directory record at byte ${recAt}`);
      count = u64(rec, 32, this.file);
      cdSize = u64(rec, 40, this.file);
      cdOffset = u64(rec, 48, this.file);
    }
    if (cdOffset + cdSize > this.size) this.fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) lies outside the file (${this.size} bytes; truncated?)`);
    const cd = readExactly(this.fd, this.file, cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) this.fail(`corrupt central directory at entry ${i}`);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // The zip64 extra field (id 1) holds, in this order, exactly those of the three values
      // whose 32-bit slot is saturated.
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      while (q + 4 <= extraEnd) {
        const id = cd.readUInt16LE(q);
        const len = cd.readUInt16LE(q + 2);
        if (id === 1) {
          let r = q + 4;
          if (size === U32_MAX) { size = u64(cd, r, this.file); r += 8; }
          if (compressedSize === U32_MAX) { compressedSize = u64(cd, r, this.file); r += 8; }
          if (localHeaderOffset === U32_MAX) { localHeaderOffset = u64(cd, r, this.file); r += 8; }
        }
        q += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
      p = extraEnd + commentLen;
    }
  }

  /**
   * All bytes of one entry. Storages are read whole because every tensor needs its storage;
   * the CRC is checked so that a corrupt download fails here rather than as bad weights.
   */
  read(name: string): Buffer {
    const e = this.entries.get(name);
    if (!e) this.fail(`zip entry ${name} is missing`);
    if (e.method !== 0) this.fail(`zip entry ${name} is compressed (method ${e.method}); torch.save writes stored entries, re-save the checkpoint with torch.save`);
    if (e.size !== e.compressedSize) this.fail(`zip entry ${name}: stored entry with size ${e.size} != compressed size ${e.compressedSize}`);
    const local = readExactly(this.fd, this.file, e.localHeaderOffset, 30);
    if (local.readUInt32LE(0) !== SIG_LOCAL) this.fail(`zip entry ${name}: no local header at byte ${e.localHeaderOffset}`);
    // The local header's name/extra lengths may differ from the central one (torch pads the
    // local extra field to align data to 64 bytes).
    const dataAt = e.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataAt + e.size > this.size) this.fail(`zip entry ${name}: data [${dataAt}, ${dataAt + e.size}) lies outside the file (${this.size} bytes; truncated?)`);
    const data = readExactly(this.fd, this.file, dataAt, e.size);
    const crc = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
    if (crc && crc(data) >>> 0 !== e.crc32) this.fail(`zip entry ${name}: CRC mismatch (corrupt file)`);
    return data;
  }
}

/** First bytes of a zip archive (a local file header). */
export function hasZipMagic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}
