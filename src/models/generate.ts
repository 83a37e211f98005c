import * as tf from '@tensorflow/tfjs-core';
import type { FidEncoding } from './fid.js';
import type { T5Model } from './t5.js';

/**
 * Greedy decoding of a FiD reader (the paper's generator setting: max 50 tokens). Each step
 * re-runs the decoder over the prefix rather than caching self-attention keys; answers are a
 * few tokens, and stopping once every row has produced `</s>` keeps that cheap. `passageBias`
 * ([B, 1, 1, N*L]) restricts the reader to chosen passages (e.g. the reranked top-k).
 * Returns the generated ids per row, without the start token and without `</s>`.
 */
export function greedyDecode(t5: T5Model, enc: FidEncoding, opts: { maxLength?: number; passageBias?: tf.Tensor } = {}): number[][] {
  const c = t5.config;
  const maxLength = opts.maxLength ?? 50;
  const rows: number[][] = Array.from({ length: enc.b }, () => []);
  const done = new Array<boolean>(enc.b).fill(false);
  const prefix: number[][] = Array.from({ length: enc.b }, () => [c.decoderStartTokenId]);
  for (let step = 0; step < maxLength && done.some((d) => !d); step++) {
    const t = step + 1;
    const next = tf.tidy(() => {
      const ids = tf.tensor2d(prefix.flat(), [enc.b, t], 'int32');
      const hidden = t5.decode(ids, enc.kv, t5.crossBias(enc.mask, t, opts.passageBias));
      const last = tf.slice(hidden, [0, t - 1, 0], [enc.b, 1, c.dModel]) as tf.Tensor3D;
      return tf.argMax(tf.reshape(t5.lmLogits(last), [enc.b, c.vocabSize]), -1).dataSync();
    });
    for (let i = 0; i < enc.b; i++) {
      const id = next[i]!;
      prefix[i]!.push(done[i] ? c.padTokenId : id);
      if (done[i]) continue;
      if (id === c.eosTokenId) done[i] = true;
      else rows[i]!.push(id);
    }
  }
  return rows;
}
