import { join } from 'node:path';
import type { RerankBatch } from '../../src/data/batch.js';
import { Rng } from '../../src/util/rng.js';
import { CHECKPOINTS } from './shared.js';

export const TINY_T5 = join(CHECKPOINTS, 't5-fid-tiny');

/**
 * A batch of random token ids for the tiny T5 checkpoints (vocabulary 512): `b` queries with
 * `n` passages of `l` tokens, pairs of a 4-token query and the passage, a `t`-token target.
 */
export function randomBatch(seed: number, b = 2, n = 8, l = 8, t = 4): RerankBatch {
  const rng = new Rng(seed);
  const pl = l + 4;
  const passageIds = new Int32Array(b * n * l).map(() => 2 + rng.int(500));
  const pairIds = new Int32Array(b * n * pl);
  for (let i = 0; i < b * n; i++) {
    for (let j = 0; j < pl; j++) pairIds[i * pl + j] = j < 4 ? 2 + Math.floor(i / n) * 7 + j : passageIds[i * l + j - 4]!;
  }
  const labels = new Int32Array(b * t).map(() => 2 + rng.int(500));
  return {
    b,
    n,
    pairIds,
    pairMask: new Int32Array(b * n * pl).fill(1),
    pairLen: pl,
    passageIds,
    passageMask: new Int32Array(b * n * l).fill(1),
    passageLen: l,
    labels,
    targetLen: t,
    index: Int32Array.from({ length: b }, (_, i) => i),
  };
}
