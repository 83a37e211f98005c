/**
 * Ring all-reduce (average) of float32 buckets over a {@link RingTransport}: reduce-scatter, then
 * all-gather, each bucket cut into `worldSize` chunks.
 *
 * Copies: a rank sends its own chunk straight from the bucket (zero-copy view) at the first
 * reduce-scatter step; every later message is a received ZeroMQ buffer that this rank owns,
 * updated in place (partial sum += own chunk) and forwarded as is. The chunk a rank finishes
 * (sum / n) is written both into that received buffer (which it then sends) and into its bucket;
 * all-gather copies each received chunk into the bucket once (`set`, a memcpy) and forwards the
 * received buffer. So the only copy is the unavoidable one into the bucket, and after the call
 * returns ZeroMQ holds no reference to bucket memory that is still in flight (the one bucket chunk
 * sent by reference has provably arrived: its reduced value came back around the ring).
 *
 * Every rank ends with bit-identical values: each chunk is summed once along the ring by a fixed
 * order and its owner's result is copied to everyone.
 *
 * Non-finite values: a rank's local flag rides on every reduce-scatter header it sends, and each
 * chunk's owner also checks its reduced values (a NaN or Inf anywhere makes the sum non-finite);
 * all-gather carries the owners' flags to every rank, so every rank returns the same `nonFinite`.
 */
import { ringMath } from './ringmath.js';
import { DistError, Phase, payloadFrames, type Received, type RingTransport } from './transport.js';

export interface AllReduceOptions {
  /** Collective sequence number; every rank passes the same one (it tags the messages). */
  step: number;
  /** Receive deadline, ms (default: the transport's). */
  timeoutMs?: number;
  /** This rank already knows its contribution is non-finite (e.g. its loss was NaN). */
  nonFinite?: boolean;
  /** Id of the first bucket (buckets i get id `bucketBase + i`); default 0. */
  bucketBase?: number;
  /** Pipelining segment size in bytes (default 4 MiB). */
  segmentBytes?: number;
}

export interface AllReduceResult {
  /** True on every rank when any rank had a non-finite value or flagged one. */
  nonFinite: boolean;
}

/** Start offset of chunk c when `length` elements are cut into n chunks (the first length % n get one more). */
export function chunkStart(length: number, n: number, c: number): number {
  const base = Math.floor(length / n);
  const extra = length % n;
  return c * base + Math.min(c, extra);
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/** True when every element is finite. */
export function allFinite(a: Float32Array): boolean {
  return ringMath.allFinite(a);
}

/** Float32 view of a received frame; copies only if ZeroMQ handed over unaligned memory. */
function f32(frame: Buffer): Float32Array {
  if (frame.byteOffset % 4 === 0) return new Float32Array(frame.buffer, frame.byteOffset, frame.byteLength >> 2);
  const copy = new Float32Array(frame.byteLength >> 2);
  new Uint8Array(copy.buffer).set(frame);
  return copy;
}

/** Writes an unaligned-copy view back into its frame (no-op for the usual aligned view). */
function writeBack(v: Float32Array, frame: Buffer): void {
  if (v.buffer !== frame.buffer) frame.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

function checkBytes(m: Received, elems: number, what: string): void {
  if (m.header.bytes !== elems * 4) {
    throw new DistError(`${what}: rank ${m.header.rank} sent ${m.header.bytes} bytes where ${elems * 4} were expected (buffers of different sizes on different ranks?)`);
  }
  for (const f of m.frames) if (f.length % 4 !== 0) throw new DistError(`${what}: rank ${m.header.rank} sent a frame of ${f.length} bytes (not whole float32s)`);
}

/** The default pipelining segment: large buckets are cut into pieces of about this size. */
export const DEFAULT_SEGMENT_BYTES = 4 << 20;

export interface BucketOptions {
  step: number;
  bucket: number;
  /** This rank's local non-finite flag. */
  nonFinite?: boolean;
  timeoutMs?: number;
  /** Pipelining segment size in bytes (default 4 MiB). */
  segmentBytes?: number;
}

/**
 * All-reduces one bucket in place (average over ranks). Resolves to true when any rank had a
 * non-finite value. A bucket larger than `segmentBytes` is cut into segments that are reduced
 * concurrently, so receiving one segment overlaps adding and forwarding another. Several buckets
 * may also be in flight at once on one transport (distinct ids).
 */
export async function allReduceBucket(t: RingTransport, buf: Float32Array, opts: BucketOptions): Promise<boolean> {
  if (t.worldSize === 1) return !!opts.nonFinite || !allFinite(buf);
  const segElems = Math.max(t.worldSize, Math.floor((opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES) / 4));
  const segments = Math.max(1, Math.ceil(buf.length / segElems));
  if (segments === 1) return reduceSegment(t, buf, opts, 0);
  const parts: Promise<boolean>[] = [];
  for (let s = 0; s < segments; s++) {
    const p = reduceSegment(t, buf.subarray(chunkStart(buf.length, segments, s), chunkStart(buf.length, segments, s + 1)), opts, s);
    p.catch(() => undefined); // all are awaited below; the first failure fails the transport anyway
    parts.push(p);
  }
  return (await Promise.all(parts)).some(Boolean);
}

async function reduceSegment(t: RingTransport, buf: Float32Array, opts: BucketOptions, segment: number): Promise<boolean> {
  const n = t.worldSize;
  const r = t.rank;
  const { step, bucket } = opts;
  const timeout = opts.timeoutMs ?? t.timeoutMs;
  const len = buf.length;
  const start = (c: number) => chunkStart(len, n, c);
  const size = (c: number) => start(c + 1) - start(c);
  const what = `rank ${r}: all-reduce step ${step} bucket ${bucket} segment ${segment}`;
  const id = (phase: 0 | 1, chunk: number) => ({ step, bucket, segment, phase, chunk });
  let flag = !!opts.nonFinite;

  // Reduce-scatter. Step j: send chunk (r - j), receive chunk (r - j - 1) and add our share.
  const own = buf.subarray(start(r), start(r) + size(r));
  await t.send({ ...id(Phase.reduceScatter, 0), nonFinite: flag }, payloadFrames(own, t.frameBytes));
  let reduced: Buffer[] = [];
  for (let j = 0; j < n - 1; j++) {
    const c = mod(r - j - 1, n);
    const m = await t.receive(id(Phase.reduceScatter, j), timeout);
    checkBytes(m, size(c), what);
    flag ||= m.header.nonFinite;
    let off = start(c);
    const last = j === n - 2;
    let bad = false;
    for (const frame of m.frames) {
      const v = f32(frame);
      const w = buf.subarray(off, off + v.length);
      // Not last: partial sum += our share, forwarded as is. Last: chunk c = r + 1 is complete;
      // its average goes into the message (to send on) and into our bucket.
      if (last) bad = ringMath.averageInto(v, w, n) || bad;
      else ringMath.addInto(v, w);
      writeBack(v, frame);
      off += v.length;
    }
    if (last) {
      flag ||= bad;
      reduced = m.frames;
    } else await t.send({ ...id(Phase.reduceScatter, j + 1), nonFinite: flag }, m.frames);
  }

  // All-gather. Step j: send chunk (r + 1 - j), receive chunk (r - j) and store it.
  let any = flag;
  await t.send({ ...id(Phase.allGather, 0), nonFinite: flag }, reduced);
  for (let j = 0; j < n - 1; j++) {
    const c = mod(r - j, n);
    const m = await t.receive(id(Phase.allGather, j), timeout);
    checkBytes(m, size(c), what);
    any ||= m.header.nonFinite;
    let off = start(c);
    for (const frame of m.frames) {
      const v = f32(frame);
      buf.set(v, off);
      off += v.length;
    }
    if (j < n - 2) await t.send({ ...id(Phase.allGather, j + 1), nonFinite: m.header.nonFinite }, m.frames);
  }
  return any;
}

/**
 * Averages `buffers` across all ranks, in place: every rank passes buffers of the same lengths in
 * the same order and gets the element-wise mean. All buffers are reduced concurrently (each is
 * one bucket). World size 1 is a no-op (apart from the finiteness check).
 */
export async function ringAllReduce(t: RingTransport, buffers: Float32Array | readonly Float32Array[], opts: AllReduceOptions): Promise<AllReduceResult> {
  const list = buffers instanceof Float32Array ? [buffers] : buffers;
  const base = opts.bucketBase ?? 0;
  const flags = await Promise.all(list.map((b, i) => allReduceBucket(t, b, { step: opts.step, bucket: base + i, nonFinite: opts.nonFinite, timeoutMs: opts.timeoutMs, segmentBytes: opts.segmentBytes })));
  // With no buckets at all, still agree on the flag.
  if (list.length === 0 && t.worldSize > 1) {
    const all = await ringAllGather(t, Uint8Array.of(opts.nonFinite ? 1 : 0), { step: opts.step, stream: 0x7ffffff3, timeoutMs: opts.timeoutMs });
    return { nonFinite: all.some((v) => v[0] === 1) };
  }
  return { nonFinite: flags.some(Boolean) };
}

/**
 * Gathers one small byte string from every rank (n - 1 ring steps); returns them indexed by rank,
 * identical on every rank. For checksums, barriers and flags, not for bulk data.
 */
export async function ringAllGather(t: RingTransport, value: Uint8Array, opts: { step: number; stream?: number; timeoutMs?: number }): Promise<Uint8Array[]> {
  const n = t.worldSize;
  const r = t.rank;
  const out: Uint8Array[] = new Array(n);
  out[r] = value;
  if (n === 1) return out;
  const bucket = opts.stream ?? 0;
  // Copy: the caller's bytes may change after we return; these are tiny.
  const id = (chunk: number) => ({ step: opts.step, bucket, segment: 0, phase: Phase.gather, chunk });
  await t.send({ ...id(0), nonFinite: false }, [Buffer.from(value)]);
  for (let j = 0; j < n - 1; j++) {
    const m = await t.receive(id(j), opts.timeoutMs);
    const from = mod(r - j - 1, n);
    out[from] = m.frames.length === 1 ? new Uint8Array(m.frames[0]!) : new Uint8Array(Buffer.concat(m.frames));
    if (j < n - 2) await t.send({ ...id(j + 1), nonFinite: false }, m.frames);
  }
  return out;
}

/** Waits until every rank has reached the same barrier `step` (of `stream`, for barriers of different purposes). */
export async function ringBarrier(t: RingTransport, step: number, timeoutMs?: number, stream = 0x7ffffff0): Promise<void> {
  await ringAllGather(t, new Uint8Array(0), { step, stream, timeoutMs });
}
