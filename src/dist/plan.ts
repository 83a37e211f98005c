/**
 * The data-parallel schedule: which examples each worker trains on at each step. Every worker
 * computes the same plan from (count, seed, epoch) alone, so no coordination is needed.
 */
import { epochOrder } from '../train/run.js';

/**
 * Epoch `epoch`'s plan: steps[s][r] = the dataset indices worker r trains on at step s
 * (perWorker × accumulation of them: `accumulation` micro-batches of perWorker, in order).
 *
 * The epoch's order is the single-process one (`epochOrder(count, seed, epoch)`), cut into global
 * batches of perWorker × workers × accumulation; global batch s is split into consecutive
 * per-worker slices.
 * Every worker always gets exactly `perWorker` examples (so averaging the per-worker mean
 * gradients equals the gradient of the global mean): when `count` is not a multiple of the
 * global batch, the last global batch is filled by wrapping around to the start of the order
 * (as PyTorch's DistributedSampler pads). Within a step the slices are disjoint when
 * count ≥ global batch, and every example appears at least once per epoch.
 */
export function planEpoch(count: number, seed: number, epoch: number, perWorker: number, workers: number, accumulation = 1): number[][][] {
  if (count < 1) throw new RangeError('planEpoch: no examples');
  if (![perWorker, workers, accumulation].every((x) => Number.isInteger(x) && x >= 1)) throw new RangeError('planEpoch: perWorker, workers and accumulation must be positive integers');
  const order = epochOrder(count, seed, epoch);
  const slice = perWorker * accumulation;
  const global = slice * workers;
  const steps = Math.ceil(count / global);
  const plan: number[][][] = [];
  for (let s = 0; s < steps; s++) {
    const shards: number[][] = [];
    for (let r = 0; r < workers; r++) {
      const start = s * global + r * slice;
      shards.push(Array.from({ length: slice }, (_, j) => order[(start + j) % count]!));
    }
    plan.push(shards);
  }
  return plan;
}

/** Optimizer steps per epoch for a global batch of perWorker × workers × accumulation. */
export function stepsPerEpoch(count: number, perWorker: number, workers: number, accumulation = 1): number {
  return Math.ceil(count / (perWorker * workers * accumulation));
}
