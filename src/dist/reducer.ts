/**
 * The Trainer's `GradientReducer` for data-parallel training: gradient tensors -> float32 host
 * arrays (dataSync) -> fixed-order buckets -> ring all-reduce (average) -> new tensors.
 *
 * Buckets let communication overlap the rest of the work: bucket k is handed to the ring as soon
 * as it is flattened, and while its messages move (ZeroMQ's I/O thread) the next bucket's tensors
 * are read back from the backend (for a GPU backend this is the device-to-host copy). tfjs
 * computes all gradients in one `variableGrads` call, so there is no backward pass to overlap with.
 *
 * Skip-together: the local non-finite flag (e.g. a NaN loss) travels with the data and every
 * chunk's owner checks its reduced values, so all ranks get the same `nonFinite` and skip the
 * same steps. Skipped steps are counted in `stats.skipped`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradientReducer } from '../train/step.js';
import { allReduceBucket, ringAllGather, ringAllReduce } from './allreduce.js';
import { DEFAULT_BUCKET_BYTES, flattenBucket, planBuckets, unflattenBucket, type BucketPlan } from './buckets.js';
import { DistError, type RingTransport } from './transport.js';

export interface ReducerOptions {
  /** Target bucket size in bytes (default 25 MiB). */
  bucketBytes?: number;
  /** Receive deadline per message, ms (default: the transport's). */
  timeoutMs?: number;
  /** Names of the gradients (default `grad0`, `grad1`, ...), for the layout check and errors. */
  names?: readonly string[];
  /** Pipelining segment size within a bucket, bytes (default 4 MiB). */
  segmentBytes?: number;
  /** Sequence number of the first call (default 0); each call uses the next one. */
  firstStep?: number;
}

export interface ReducerStats {
  /** Calls so far (one per optimizer step, skipped or not). */
  calls: number;
  /** Steps every rank skipped because some rank had a non-finite gradient. */
  skipped: number;
  /** Float32 bytes all-reduced per call. */
  bytes: number;
  /** Seconds spent in the reducer (read-back + communication + tensor creation), summed. */
  seconds: number;
}

export type DistGradientReducer = GradientReducer & { readonly stats: ReducerStats; plan(): BucketPlan | undefined };

const LAYOUT_STREAM = 0x7ffffff2;

export function createGradientReducer(t: RingTransport, opts: ReducerOptions = {}): DistGradientReducer {
  const bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  let plan: BucketPlan | undefined;
  let step = opts.firstStep ?? 0;
  const stats: ReducerStats = { calls: 0, skipped: 0, bytes: 0, seconds: 0 };

  const reduce = async (grads: tf.Tensor[], localNonFinite: boolean): Promise<{ grads: tf.Tensor[]; nonFinite: boolean }> => {
    const t0 = performance.now();
    const s = step++;
    stats.calls++;
    for (const g of grads) if (g.dtype !== 'float32') throw new DistError(`gradient of dtype ${g.dtype}: only float32 is all-reduced`);
    if (!plan) {
      plan = planBuckets(
        grads.map((g, i) => ({ name: opts.names?.[i] ?? `grad${i}`, length: g.size })),
        bucketBytes,
      );
      stats.bytes = plan.length * 4;
      // Every rank must cut the same buckets: compare the layout once, before any data moves.
      const mine = Buffer.from(`${plan.signature}:${plan.length}:${plan.buckets.length}`);
      const all = await ringAllGather(t, mine, { step: s, stream: LAYOUT_STREAM, timeoutMs: opts.timeoutMs });
      const ref = Buffer.from(all[0]!).toString();
      all.forEach((b, r) => {
        if (Buffer.from(b).toString() !== ref) throw new DistError(`gradient layout differs: rank ${r} has ${Buffer.from(b).toString()}, rank 0 has ${ref} (signature:elements:buckets)`);
      });
    } else if (grads.length !== plan.buckets.reduce((a, b) => a + b.entries.length, 0)) {
      throw new DistError(`reducer got ${grads.length} gradients, the layout has ${plan.buckets.reduce((a, b) => a + b.entries.length, 0)}`);
    }

    let nonFinite: boolean;
    const flats: Float32Array[] = [];
    if (plan.buckets.length === 0) {
      nonFinite = (await ringAllReduce(t, [], { step: s, nonFinite: localNonFinite, timeoutMs: opts.timeoutMs })).nonFinite;
    } else {
      const inflight: Promise<boolean>[] = [];
      for (const b of plan.buckets) {
        const sources: Float32Array[] = [];
        for (const e of b.entries) {
          const g = grads[e.index]!;
          if (g.size !== e.length) throw new DistError(`gradient ${e.name}: ${g.size} elements, the layout has ${e.length}`);
          sources[e.index] = g.dataSync() as Float32Array;
        }
        // Always a fresh bucket: dataSync may return the backend's own storage, which we must
        // not write to, and the new tensors below are views of this bucket.
        const flat = flattenBucket(b, sources);
        flats.push(flat);
        const p = allReduceBucket(t, flat, { step: s, bucket: b.id, nonFinite: localNonFinite, timeoutMs: opts.timeoutMs, segmentBytes: opts.segmentBytes });
        p.catch(() => undefined); // observed below; avoid an unhandled rejection meanwhile
        inflight.push(p);
        // Let this bucket's first messages reach ZeroMQ before reading back the next one.
        if (b.id < plan.buckets.length - 1) await new Promise<void>((r) => setImmediate(r));
      }
      nonFinite = (await Promise.all(inflight)).some(Boolean);
    }
    if (nonFinite) {
      stats.skipped++;
      stats.seconds += (performance.now() - t0) / 1000;
      return { grads, nonFinite: true };
    }
    const out: tf.Tensor[] = new Array(grads.length);
    plan.buckets.forEach((b, k) => {
      for (const { entry, data } of unflattenBucket(b, flats[k]!)) out[entry.index] = tf.tensor(data, grads[entry.index]!.shape, 'float32');
    });
    stats.seconds += (performance.now() - t0) / 1000;
    return { grads: out, nonFinite: false };
  };
  return Object.assign(reduce, { stats, plan: () => plan });
}
