import * as tf from '@tensorflow/tfjs-core';
import { GrerankError } from '../errors.js';
import { readConfig } from '../io/checkpoint.js';
import { checkIds, readJsonTensor, toJsonTensor, type JsonTensor } from '../io/tensorjson.js';
import { FidReader, logPassageMask } from './fid.js';
import { RankT5, RANKT5_TOKEN_ID } from './rankt5.js';
import { shiftRight, T5Model, tokenNll, type T5Capture } from './t5.js';
import { loadCrossEncoder } from './xlmr.js';
import { tidyHost } from '../util/tidy.js';

export const INSPECT_TASKS = ['seq2seq', 'fid', 'rankt5', 'cross-encoder'] as const;
export type InspectTask = (typeof INSPECT_TASKS)[number];

const out = (t: tf.Tensor): JsonTensor => toJsonTensor(t.shape, t.dataSync());

/**
 * Runs a Hugging Face model directory on inputs named as in ../shared/refcheck/goldens and
 * returns outputs under the goldens' names, so a converted or downloaded checkpoint can be
 * compared with PyTorch. `inputFile` only names the inputs in error messages.
 */
export async function inspectModel(dir: string, task: InspectTask, input: Record<string, unknown>, inputFile = 'input'): Promise<Record<string, unknown>> {
  if (!INSPECT_TASKS.includes(task)) throw new GrerankError(`unknown task "${task}" (choose ${INSPECT_TASKS.join(', ')})`);
  readConfig(dir); // one clear error for a missing directory or config before anything else
  if (task === 'cross-encoder') {
    const ids = readJsonTensor(input, 'input_ids', inputFile, { rank: 2, dtype: 'int32' })!;
    const mask = readJsonTensor(input, 'attention_mask', inputFile, { rank: 2, dtype: 'int32' })!;
    sameShape(ids.shape, mask.shape, 'attention_mask', inputFile);
    const model = await loadCrossEncoder(dir, { trainable: false });
    try {
      checkIds(ids, 'input_ids', inputFile, model.config.vocabSize);
      return tidyHost(() => {
        const logits = model.forward(tf.tensor2d(ids.data, ids.shape as [number, number], 'int32'), tf.tensor2d(mask.data, mask.shape as [number, number], 'int32'));
        return { logits: out(tf.reshape(logits, [-1, 1])) };
      });
    } finally {
      model.dispose();
    }
  }
  const t5 = await T5Model.load(dir);
  try {
    const vocab = t5.config.vocabSize;
    if (task === 'rankt5') {
      const ids = readJsonTensor(input, 'input_ids', inputFile, { rank: 2, dtype: 'int32' })!;
      const mask = readJsonTensor(input, 'attention_mask', inputFile, { rank: 2, dtype: 'int32' })!;
      sameShape(ids.shape, mask.shape, 'attention_mask', inputFile);
      checkIds(ids, 'input_ids', inputFile, vocab);
      const tok = input.token_id ?? RANKT5_TOKEN_ID;
      if (typeof tok !== 'number' || !Number.isInteger(tok) || tok < 0 || tok >= vocab) {
        throw new GrerankError(`${inputFile}: "token_id" must be an integer in [0, ${vocab}), got ${JSON.stringify(tok)}`);
      }
      const ranker = new RankT5(t5, tok);
      return tidyHost(() => ({ score: out(ranker.score(tf.tensor2d(ids.data, ids.shape as [number, number], 'int32'), tf.tensor2d(mask.data, mask.shape as [number, number], 'int32'))) }));
    }
    const rank = task === 'fid' ? 3 : 2;
    const ids = readJsonTensor(input, 'input_ids', inputFile, { rank, dtype: 'int32' })!;
    const mask = readJsonTensor(input, 'attention_mask', inputFile, { rank, dtype: 'int32' })!;
    const labels = readJsonTensor(input, 'labels', inputFile, { rank: 2, dtype: 'int32' })!;
    sameShape(ids.shape, mask.shape, 'attention_mask', inputFile);
    checkIds(ids, 'input_ids', inputFile, vocab);
    checkIds(labels, 'labels', inputFile, vocab, [-100]);
    if (labels.shape[0] !== ids.shape[0]) throw new GrerankError(`${inputFile}: "labels" has batch ${labels.shape[0]}, "input_ids" has ${ids.shape[0]}`);
    const [b, t] = labels.shape as [number, number];
    const decIn = tf.tensor2d(shiftRight(labels.data as Int32Array, b, t, t5.config.decoderStartTokenId, t5.config.padTokenId), [b, t], 'int32');
    const labelsT = tf.tensor2d(labels.data, [b, t], 'int32');
    try {
      if (task === 'seq2seq') {
        return tidyHost(() => {
          const maskT = tf.tensor2d(mask.data, mask.shape as [number, number], 'int32');
          const enc = t5.encode(tf.tensor2d(ids.data, ids.shape as [number, number], 'int32'), maskT);
          const cap: T5Capture = {};
          const dec = t5.decode(decIn, t5.crossKV(enc), t5.crossBias(maskT, t), cap);
          const logits = t5.lmLogits(dec);
          const { perToken, loss } = tokenNll(logits, labelsT);
          const result = {
            encoder_last_hidden_state: out(enc),
            logits: out(logits),
            loss: loss.dataSync()[0],
            per_token_nll: out(perToken),
            cross_attention_last_layer: out(cap.crossAttentionLast!),
          };
          tf.dispose(Object.values(cap));
          return result;
        });
      }
      // fid
      const m = readJsonTensor(input, 'm', inputFile, { rank: 2, dtype: 'float32', optional: true });
      const [, n] = ids.shape as [number, number, number];
      if (m && (m.shape[0] !== b || m.shape[1] !== n)) throw new GrerankError(`${inputFile}: "m" has shape [${m.shape.join(', ')}], expected [${b}, ${n}] (batch, passages)`);
      if (m && Array.from(m.data).some((x) => x < 0)) throw new GrerankError(`${inputFile}: "m" must be non-negative (it is a passage mask)`);
      const reader = new FidReader(t5);
      const enc = reader.encodePassages(tf.tensor3d(ids.data, ids.shape as [number, number, number], 'int32'), tf.tensor3d(mask.data, mask.shape as [number, number, number], 'int32'));
      try {
        return tidyHost(() => {
          const cap: T5Capture = {};
          const mT = m ? tf.tensor2d(m.data, [b, n]) : undefined;
          const fwd = reader.forward(enc, decIn, labelsT, { logMask: mT ? logPassageMask(mT) : undefined, capture: cap });
          const result: Record<string, unknown> = {
            encoder_last_hidden_state: out(enc.hidden),
            logits: out(fwd.logits),
            loss: fwd.loss.dataSync()[0],
            per_token_nll: out(fwd.perToken),
            cross_attention_last_layer: out(cap.crossAttentionLast!),
          };
          tf.dispose(Object.values(cap));
          if (mT) {
            const g = tf.grad((mm: tf.Tensor) => reader.forward(enc, decIn, labelsT, { logMask: logPassageMask(mm as tf.Tensor2D) }).loss)(mT);
            result.dloss_dm = out(g);
          }
          return result;
        });
      } finally {
        tf.dispose([enc.hidden, enc.mask, ...enc.kv.flatMap((x) => [x.k, x.v])]);
      }
    } finally {
      tf.dispose([decIn, labelsT]);
    }
  } finally {
    t5.dispose();
  }
}

function sameShape(a: number[], b: number[], key: string, file: string): void {
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
    throw new GrerankError(`${file}: "${key}" has shape [${b.join(', ')}], but "input_ids" has [${a.join(', ')}]`);
  }
}

/** Which inspect task fits a model directory's config (for a helpful default). */
export function guessTask(dir: string): InspectTask {
  const c = readConfig(dir);
  return c.model_type === 'xlm-roberta' ? 'cross-encoder' : 'seq2seq';
}
