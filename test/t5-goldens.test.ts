import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { FidReader, logPassageMask } from '../src/models/fid.js';
import { RankT5 } from '../src/models/rankt5.js';
import { relativePositionBucket, shiftRight, T5Model, tokenNll, type T5Capture } from '../src/models/t5.js';
import { CHECKPOINTS, expectClose, golden, toTensor } from './helpers/shared.js';

// Tolerances from ../shared/refcheck/README.md (float32 vs PyTorch float32).
const HIDDEN = 1e-4;
const PROB = 2e-5;
const GRAD = 1e-5;

beforeAll(async () => {
  await initBackend((process.env.GRERANK_TEST_BACKEND as 'wasm' | 'cpu') ?? 'wasm', { quiet: true });
});

for (const name of ['t5-fid-tiny', 't5-v11-tiny']) {
  describe(`${name} against transformers 4.34`, () => {
    const g = golden(name);
    let model: T5Model;
    beforeAll(async () => {
      model = await T5Model.load(join(CHECKPOINTS, name));
    });
    afterAll(() => model.dispose());

    it('computes relative position buckets exactly', () => {
      const rb = g.relative_position_bucket;
      const c = model.config;
      const bi = rb.relative_position.data.map((r: number) => relativePositionBucket(r, true, c.numBuckets, c.maxDistance));
      const uni = rb.relative_position.data.map((r: number) => relativePositionBucket(r, false, c.numBuckets, c.maxDistance));
      expect(bi).toEqual(rb.bidirectional.data);
      expect(uni).toEqual(rb.unidirectional.data);
    });

    it('reproduces the seq2seq forward pass', () => {
      const s = g.seq2seq;
      tf.tidy(() => {
        const cap: T5Capture = {};
        const ids = toTensor(s.input_ids) as tf.Tensor2D;
        const mask = toTensor(s.attention_mask) as tf.Tensor2D;
        const enc = model.encode(ids, mask, cap);
        expectClose(cap.encoderPositionBias!, s.encoder_position_bias, HIDDEN, 'encoder_position_bias');
        expectClose(enc, s.encoder_last_hidden_state, HIDDEN, 'encoder_last_hidden_state');
        expectClose(cap.encoderSelfAttention0!, s.encoder_self_attention_layer0, PROB, 'encoder_self_attention_layer0');
        const labels = toTensor(s.labels) as tf.Tensor2D;
        const [b, t] = labels.shape;
        const decIn = shiftRight(labels.dataSync() as Int32Array, b, t, 0, 0);
        expect(Array.from(decIn)).toEqual(s.decoder_input_ids.data);
        const dec = model.decode(tf.tensor2d(decIn, [b, t], 'int32'), model.crossKV(enc), model.crossBias(mask, t), cap);
        expectClose(cap.decoderPositionBias!, s.decoder_position_bias, HIDDEN, 'decoder_position_bias');
        expectClose(cap.decoderSelfAttention0!, s.decoder_self_attention_layer0, PROB, 'decoder_self_attention_layer0');
        expectClose(cap.crossAttention0!, s.cross_attention_layer0, PROB, 'cross_attention_layer0');
        expectClose(cap.crossAttentionLast!, s.cross_attention_last_layer, PROB, 'cross_attention_last_layer');
        expectClose(dec, s.decoder_last_hidden_state, HIDDEN, 'decoder_last_hidden_state');
        const logits = model.lmLogits(dec);
        expectClose(logits, s.logits, HIDDEN, 'logits');
        const { perToken, loss } = tokenNll(logits, labels);
        expectClose(perToken, s.per_token_nll, PROB, 'per_token_nll');
        expectClose(loss.dataSync()[0]!, s.loss, PROB, 'loss');
        tf.dispose(Object.values(cap));
      });
    });

    it('reproduces the FiD forward pass (independent passages, concatenated keys)', () => {
      const f = g.fid;
      const reader = new FidReader(model);
      tf.tidy(() => {
        const enc = reader.encodePassages(toTensor(f.input_ids) as tf.Tensor3D, toTensor(f.attention_mask) as tf.Tensor3D);
        expectClose(enc.hidden, f.encoder_concat, HIDDEN, 'encoder_concat');
        const cap: T5Capture = {};
        const out = reader.forward(enc, toTensor(f.decoder_input_ids) as tf.Tensor2D, toTensor(f.labels) as tf.Tensor2D, { capture: cap });
        expectClose(out.logits, f.logits, HIDDEN, 'logits');
        expectClose(out.perToken, f.per_token_nll, PROB, 'per_token_nll');
        expectClose(out.loss.dataSync()[0]!, f.loss, PROB, 'loss');
        expectClose(cap.crossAttentionLast!, f.cross_attention_last_layer, PROB, 'cross_attention_last_layer');
        // Negative control: FiD's loss is not the loss of encoding the passages jointly.
        expect(Math.abs(out.loss.dataSync()[0]! - f.loss_joint_encoding_not_fid)).toBeGreaterThan(1e-3);
        tf.dispose(Object.values(cap));
      });
    });

    it('reproduces differentiable masked attention and d loss / d m', () => {
      const f = g.fid;
      const d = g.dma;
      const reader = new FidReader(model);
      const enc = reader.encodePassages(toTensor(f.input_ids) as tf.Tensor3D, toTensor(f.attention_mask) as tf.Tensor3D);
      const decIn = toTensor(f.decoder_input_ids) as tf.Tensor2D;
      const labels = toTensor(f.labels) as tf.Tensor2D;
      const lossOf = (m: tf.Tensor2D) => reader.forward(enc, decIn, labels, { logMask: logPassageMask(m) }).loss;
      tf.tidy(() => {
        const m = toTensor(d.m) as tf.Tensor2D;
        const { value, grad } = tf.valueAndGrad(lossOf)(m);
        expectClose(value.dataSync()[0]!, d.loss, PROB, 'dma loss');
        expectClose(grad, d.dloss_dm, GRAD, 'dloss_dm');
        const cap: T5Capture = {};
        const out = reader.forward(enc, decIn, labels, { logMask: logPassageMask(m), capture: cap });
        expectClose(out.logits, d.logits, HIDDEN, 'dma logits');
        expectClose(cap.crossAttentionLast!, d.cross_attention_last_layer, PROB, 'dma cross_attention_last_layer');
        tf.dispose(Object.values(cap));
        const ones = tf.onesLike(m) as tf.Tensor2D;
        const o = tf.valueAndGrad(lossOf)(ones);
        // M = 1 must reproduce the plain reader exactly.
        expect(o.value.dataSync()[0]).toBe(reader.forward(enc, decIn, labels).loss.dataSync()[0]);
        expectClose(o.value.dataSync()[0]!, d.m_ones_loss, PROB, 'm_ones_loss');
        expectClose(o.grad, d.m_ones_dloss_dm, GRAD, 'm_ones_dloss_dm');
        const tiny = lossOf(toTensor(d.m_tiny) as tf.Tensor2D).dataSync()[0]!;
        expectClose(tiny, d.m_tiny_loss, PROB, 'm_tiny_loss');
        expectClose(tiny, d.masked_out_passages_loss, PROB, 'masked_out_passages_loss');
      });
      tf.dispose([enc.hidden, enc.mask, ...enc.kv.flatMap((x) => [x.k, x.v])]);
    });

    it('reproduces the RankT5 score', () => {
      const r = g.rankt5;
      const ranker = new RankT5(model, r.token_id);
      tf.tidy(() => {
        const score = ranker.score(toTensor(r.input_ids) as tf.Tensor2D, toTensor(r.attention_mask) as tf.Tensor2D);
        expectClose(score, r.score, PROB, 'score');
      });
    });
  });
}
