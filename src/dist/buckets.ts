/**
 * Grouping named float32 buffers into buckets of about `bucketBytes` in a fixed order (the order
 * given; every rank must pass the same names and lengths), and moving data between the buffers
 * and the flat bucket arrays the all-reduce works on.
 *
 * A buffer is never split: one larger than the bucket size gets a bucket of its own.
 */
import { DistError } from './transport.js';

export interface BufferSpec {
  name: string;
  /** Number of float32 elements. */
  length: number;
}

export interface BucketEntry extends BufferSpec {
  /** Index of the buffer in the list given to {@link planBuckets}. */
  index: number;
  /** Element offset inside the bucket. */
  offset: number;
}

export interface Bucket {
  id: number;
  /** Total float32 elements. */
  length: number;
  entries: BucketEntry[];
}

export interface BucketPlan {
  buckets: Bucket[];
  /** Total elements over all buffers. */
  length: number;
  /** A short digest of names and lengths, to check that every rank uses the same layout. */
  signature: string;
}

/** The default bucket size, 25 MiB (as PyTorch DDP). */
export const DEFAULT_BUCKET_BYTES = 25 << 20;

/**
 * Greedy, order-preserving bucketing: buffers are appended to the current bucket until adding the
 * next would exceed `bucketBytes`.
 */
export function planBuckets(specs: readonly BufferSpec[], bucketBytes = DEFAULT_BUCKET_BYTES): BucketPlan {
  if (!(bucketBytes >= 4)) throw new DistError(`bucket size must be at least 4 bytes, got ${bucketBytes}`);
  const cap = Math.floor(bucketBytes / 4);
  const buckets: Bucket[] = [];
  let cur: Bucket | undefined;
  let total = 0;
  let sig = 2166136261;
  const names = new Set<string>();
  specs.forEach((s, index) => {
    if (!Number.isInteger(s.length) || s.length < 0) throw new DistError(`buffer ${s.name}: bad length ${s.length}`);
    if (names.has(s.name)) throw new DistError(`buffer name ${s.name} appears twice`);
    names.add(s.name);
    if (!cur || (cur.length > 0 && cur.length + s.length > cap)) {
      cur = { id: buckets.length, length: 0, entries: [] };
      buckets.push(cur);
    }
    cur.entries.push({ name: s.name, length: s.length, index, offset: cur.length });
    cur.length += s.length;
    total += s.length;
    for (const ch of `${s.name}:${s.length};`) sig = Math.imul(sig ^ ch.charCodeAt(0), 16777619) >>> 0;
  });
  return { buckets, length: total, signature: sig.toString(16).padStart(8, '0') };
}

/**
 * Gathers a bucket's buffers into one flat Float32Array. With `reuse` and a single-entry bucket
 * whose source is already a Float32Array of the right length, the source itself is returned (no
 * copy; the all-reduce will then write into it). Otherwise the data is copied once into `out` (or
 * a new array).
 */
export function flattenBucket(bucket: Bucket, sources: readonly ArrayLike<number>[], opts: { reuse?: boolean; out?: Float32Array } = {}): Float32Array {
  if (opts.reuse && bucket.entries.length === 1) {
    const e = bucket.entries[0]!;
    const src = sources[e.index];
    if (src instanceof Float32Array && src.length === e.length) return src;
  }
  const out = opts.out ?? new Float32Array(bucket.length);
  if (out.length !== bucket.length) throw new DistError(`bucket ${bucket.id}: output has ${out.length} elements, need ${bucket.length}`);
  for (const e of bucket.entries) {
    const src = sources[e.index];
    if (!src || src.length !== e.length) throw new DistError(`buffer ${e.name}: expected ${e.length} elements, got ${src?.length ?? 'none'}`);
    if (src instanceof Float32Array) out.set(src, e.offset);
    else for (let i = 0; i < e.length; i++) out[e.offset + i] = src[i]!;
  }
  return out;
}

/** Zero-copy views of each buffer inside a flat bucket, in entry order. */
export function unflattenBucket(bucket: Bucket, flat: Float32Array): { entry: BucketEntry; data: Float32Array }[] {
  if (flat.length !== bucket.length) throw new DistError(`bucket ${bucket.id}: flat array has ${flat.length} elements, need ${bucket.length}`);
  return bucket.entries.map((entry) => ({ entry, data: flat.subarray(entry.offset, entry.offset + entry.length) }));
}

/** Copies a flat bucket back into the given destination buffers (when views are not enough). */
export function scatterBucket(bucket: Bucket, flat: Float32Array, dests: readonly Float32Array[]): void {
  for (const e of bucket.entries) {
    const d = dests[e.index];
    if (!d || d.length !== e.length) throw new DistError(`buffer ${e.name}: expected ${e.length} elements, got ${d?.length ?? 'none'}`);
    if (d.buffer === flat.buffer && d.byteOffset === flat.byteOffset + e.offset * 4) continue;
    d.set(flat.subarray(e.offset, e.offset + e.length));
  }
}
