import * as tf from '@tensorflow/tfjs-core';
import { tokenNll, T5Model, type CrossKV, type T5Capture, type T5LoadOptions } from './t5.js';

/**
 * Fusion-in-Decoder reader on T5: every passage is encoded independently ([B*N, L], positions
 * 0..L-1 each), the encoder states are concatenated to [B, N*L, d], and the decoder attends to
 * all of them. Passage j occupies keys [j*L, (j+1)*L).
 */
export class FidReader {
  constructor(readonly t5: T5Model) {}

  static async load(dir: string, opts: T5LoadOptions = {}): Promise<FidReader> {
    return new FidReader(await T5Model.load(dir, { ...opts, trainable: opts.trainable ?? false }));
  }

  /**
   * Everything of the reader that does not depend on the passage mask: the encoder states and
   * every decoder layer's cross-attention keys and values. In G-Rerank this runs outside the
   * gradient tape, so none of the encoder's activations are kept for backward.
   */
  encodePassages(inputIds: tf.Tensor3D, attentionMask: tf.Tensor3D): FidEncoding {
    const [b, n, l] = inputIds.shape;
    const [hidden, mask, ...kvFlat] = tf.tidy(() => {
      const h = this.t5.encode(tf.reshape(inputIds, [b * n, l]) as tf.Tensor2D, tf.reshape(attentionMask, [b * n, l]) as tf.Tensor2D);
      const concat = tf.reshape(h, [b, n * l, this.t5.config.dModel]) as tf.Tensor3D;
      const kv = this.t5.crossKV(concat);
      return [concat, tf.reshape(attentionMask, [b, n * l]), ...kv.flatMap((x) => [x.k, x.v])];
    });
    const kv: CrossKV[] = [];
    for (let i = 0; i < kvFlat.length; i += 2) kv.push({ k: kvFlat[i] as tf.Tensor4D, v: kvFlat[i + 1] as tf.Tensor4D });
    return { hidden: hidden as tf.Tensor3D, mask: mask as tf.Tensor2D, kv, b, n, l };
  }

  /**
   * Teacher-forced answer loss. `logMask` [B, N] (differentiable masked attention, SPEC 1.3) is
   * added to the pre-softmax cross-attention scores of every key of passage i, in every decoder
   * layer and head; omitted, the reader is the plain FiD.
   */
  forward(enc: FidEncoding, decoderInputIds: tf.Tensor2D, labels: tf.Tensor2D, opts: { logMask?: tf.Tensor2D; capture?: T5Capture } = {}): FidOutput {
    const t = decoderInputIds.shape[1];
    const extra = opts.logMask ? passageBias(opts.logMask, enc.l) : undefined;
    const bias = this.t5.crossBias(enc.mask, t, extra);
    const hidden = this.t5.decode(decoderInputIds, enc.kv, bias, opts.capture);
    const logits = this.t5.lmLogits(hidden);
    const { perToken, loss } = tokenNll(logits, labels);
    return { logits, perToken, loss };
  }

  dispose(): void {
    this.t5.dispose();
  }
}

export interface FidEncoding {
  /** Concatenated encoder states [B, N*L, d]. */
  hidden: tf.Tensor3D;
  /** Flattened padding mask [B, N*L]. */
  mask: tf.Tensor2D;
  kv: CrossKV[];
  b: number;
  n: number;
  l: number;
}

export interface FidOutput {
  logits: tf.Tensor3D;
  perToken: tf.Tensor2D;
  loss: tf.Scalar;
}

export function disposeEncoding(enc: FidEncoding): void {
  tf.dispose([enc.hidden, enc.mask, ...enc.kv.flatMap((x) => [x.k, x.v])]);
}

/** Below this a mask entry counts as "passage removed"; log(1e-30) = -69 is far below any score gap. */
export const MASK_FLOOR = 1e-30;

/** log(max(m, floor)) per passage [B, N] -> the additive key bias [B, 1, 1, N*L]. */
export function logPassageMask(m: tf.Tensor2D): tf.Tensor2D {
  return tf.log(tf.maximum(m, MASK_FLOOR)) as tf.Tensor2D;
}

/** A per-passage additive bias [B, N] repeated over each passage's L keys -> [B, 1, 1, N*L]. */
export function passageBias(perPassage: tf.Tensor2D, l: number): tf.Tensor4D {
  const [b, n] = perPassage.shape;
  const tiled = tf.tile(tf.reshape(perPassage, [b, n, 1]), [1, 1, l]);
  return tf.reshape(tiled, [b, 1, 1, n * l]);
}
