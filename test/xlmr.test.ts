import * as tf from '@tensorflow/tfjs-core';
// Gradients are registered by src/backend (initBackend); this file sets backends itself.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrerankError } from '../src/errors.js';
import {
  CrossEncoder,
  encodePairs,
  loadCrossEncoder,
  parseXlmrConfig,
  positionIds,
  positionIdsHost,
  truncatePair,
} from '../src/models/xlmr.js';
import { CHECKPOINTS, golden, maxAbsDiff } from './helpers/shared.js';

const DIR = join(CHECKPOINTS, 'xlmr-ce-tiny');
const G = golden('xlmr-ce-tiny');
const [B, L] = G.input_ids.shape as [number, number];
const queries: number[][] = G.pairs.map((p: { query_ids: number[] }) => p.query_ids);
const docs: number[][] = G.pairs.map((p: { doc_ids: number[] }) => p.doc_ids);

const inputs = () => ({
  ids: tf.tensor2d(G.input_ids.data, [B, L], 'int32'),
  mask: tf.tensor2d(G.attention_mask.data, [B, L], 'int32'),
});

describe('encodePairs / positionIds', () => {
  it('reproduce the golden input_ids, attention_mask and position_ids', () => {
    const enc = encodePairs(queries, docs);
    expect([enc.batch, enc.length]).toEqual([B, L]);
    expect(Array.from(enc.inputIds)).toEqual(G.input_ids.data);
    expect(Array.from(enc.attentionMask)).toEqual(G.attention_mask.data);
    expect(enc.truncated).toBe(0);
    expect(Array.from(positionIdsHost(enc.inputIds, enc.length, 1))).toEqual(G.position_ids.data);
  });

  it('truncates longest_first, the document first and on ties', () => {
    expect(truncatePair(3, 20, 10)).toEqual([3, 7]);
    expect(truncatePair(20, 3, 10)).toEqual([7, 3]);
    expect(truncatePair(6, 6, 10)).toEqual([5, 5]);
    expect(truncatePair(6, 7, 9)).toEqual([5, 4]);
    expect(truncatePair(2, 3, 10)).toEqual([2, 3]);
    // Brute force against the one-token-at-a-time definition.
    for (let q = 0; q < 12; q++) {
      for (let d = 0; d < 12; d++) {
        for (let budget = 0; budget < 14; budget++) {
          let [a, c] = [q, d];
          while (a + c > budget) {
            if (c >= a) c--;
            else a--;
          }
          expect(truncatePair(q, d, budget)).toEqual([a, c]);
        }
      }
    }
    const enc = encodePairs([[5, 6, 7]], [[10, 11, 12, 13, 14, 15]], 10);
    expect(Array.from(enc.inputIds)).toEqual([0, 5, 6, 7, 2, 2, 10, 11, 12, 2]);
    expect(enc.truncated).toBe(1);
  });
});

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`CrossEncoder goldens on ${backend}`, () => {
    let model: CrossEncoder;
    beforeAll(async () => {
      expect(await tf.setBackend(backend)).toBe(true);
      await tf.ready();
      model = await loadCrossEncoder(DIR, { trainable: false });
    });
    afterAll(() => model?.dispose());

    it('positionIds (tensor) matches', () => {
      const { ids, mask } = inputs();
      const pos = positionIds(ids, 1);
      expect(pos.dtype).toBe('int32');
      expect(Array.from(pos.dataSync())).toEqual(G.position_ids.data);
      tf.dispose([ids, mask, pos]);
    });

    it('embeddings, attention layer 0, last hidden state and logits match', () => {
      const { ids, mask } = inputs();
      const out = model.forwardOutputs(ids, mask);
      expect(out.embeddings.shape).toEqual(G.embeddings_output.shape);
      expect(out.attentionLayer0.shape).toEqual(G.attention_layer0.shape);
      expect(out.lastHiddenState.shape).toEqual(G.last_hidden_state.shape);
      const errs = {
        embeddings: maxAbsDiff(out.embeddings.dataSync(), G.embeddings_output.data),
        attention0: maxAbsDiff(out.attentionLayer0.dataSync(), G.attention_layer0.data),
        lastHidden: maxAbsDiff(out.lastHiddenState.dataSync(), G.last_hidden_state.data),
        logits: maxAbsDiff(out.logits.dataSync(), G.logits.data),
      };
      console.log(`[${backend}] max abs errors vs goldens: ${JSON.stringify(errs)}`);
      expect(errs.embeddings).toBeLessThan(1e-4);
      expect(errs.attention0).toBeLessThan(2e-5);
      expect(errs.lastHidden).toBeLessThan(1e-4);
      expect(errs.logits).toBeLessThan(1e-4);
      expect(out.logits.shape).toEqual([B]);
      tf.dispose([ids, mask, out.embeddings, out.attentionLayer0, out.lastHiddenState, out.logits]);
    });

    it('scorePairs (encode + forward) gives the golden logits', () => {
      const s = model.scorePairs(queries, docs);
      expect(maxAbsDiff(s.dataSync(), G.logits.data)).toBeLessThan(1e-4);
      s.dispose();
    });

    it('leaks no tensors', () => {
      const { ids, mask } = inputs();
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        model.forward(ids, mask);
      });
      expect(tf.memory().numTensors).toBe(before);
      // forward itself keeps only its result.
      const s = model.forward(ids, mask);
      expect(tf.memory().numTensors).toBe(before + 1);
      s.dispose();
      const o = model.forwardOutputs(ids, mask);
      expect(tf.memory().numTensors).toBe(before + 4);
      tf.dispose([o.logits, o.embeddings, o.lastHiddenState, o.attentionLayer0]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([ids, mask]);
    });
  });
}

describe('CrossEncoder gradients on cpu', () => {
  let model: CrossEncoder;
  beforeAll(async () => {
    expect(await tf.setBackend('cpu')).toBe(true);
    model = await loadCrossEncoder(DIR, { trainable: true });
  });
  afterAll(() => model?.dispose());

  it('variableGrads of sum(logits) are finite and non-zero; finite differences agree', () => {
    const { ids, mask } = inputs();
    const loss = () => tf.sum(model.forward(ids, mask)) as tf.Scalar;
    const names = new Map(model.variables().map((v) => [v.name, v]));
    const byHf = new Map([...model.params.params.values()].map((p) => [p.name, p.tensor as tf.Variable]));
    expect(names.size).toBe(byHf.size);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(loss, model.variables());
    expect(Object.keys(grads).length).toBe(byHf.size);
    const grad = (hf: string) => grads[byHf.get(hf)!.name]!;
    for (const hf of [
      'classifier.dense.weight',
      'classifier.dense.bias',
      'classifier.out_proj.weight',
      'roberta.embeddings.word_embeddings.weight',
      'roberta.embeddings.position_embeddings.weight',
      'roberta.encoder.layer.0.attention.self.query.weight',
      'roberta.encoder.layer.1.output.dense.weight',
    ]) {
      const g = grad(hf).dataSync();
      expect(g.every(Number.isFinite), hf).toBe(true);
      expect(g.some((x) => x !== 0), hf).toBe(true);
    }
    // Only the rows of ids in the batch get embedding gradient.
    const gw = grad('roberta.embeddings.word_embeddings.weight');
    const h = gw.shape[1]!;
    const rowNorm = (r: number) => gw.dataSync().slice(r * h, (r + 1) * h).reduce((a, x) => a + Math.abs(x), 0);
    expect(rowNorm(812)).toBeGreaterThan(0);
    expect(rowNorm(999)).toBe(0);

    // Central finite difference on the classifier.dense weight with the largest gradient
    // (layout [in, out] here), and on one word-embedding entry.
    const check = (hf: string) => {
      const v = byHf.get(hf)!;
      const g = grad(hf).dataSync();
      let idx = 0;
      for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[idx]!)) idx = i;
      const orig = v.dataSync().slice();
      const eps = 1e-3;
      const at = (delta: number) => {
        const w = orig.slice();
        w[idx] = w[idx]! + delta;
        tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
        return tf.tidy(() => loss().dataSync()[0]!);
      };
      const fd = (at(eps) - at(-eps)) / (2 * eps);
      tf.tidy(() => v.assign(tf.tensor(orig, v.shape)));
      const rel = Math.abs(fd - g[idx]!) / Math.abs(g[idx]!);
      console.log(`[cpu] finite difference ${hf}[${idx}]: autograd ${g[idx]}, fd ${fd}, rel ${rel.toExponential(2)}`);
      expect(rel).toBeLessThan(1e-2);
    };
    check('classifier.dense.weight');
    check('roberta.embeddings.word_embeddings.weight');

    value.dispose();
    tf.dispose(Object.values(grads));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ids, mask]);
  });
});

describe('config and checkpoint errors', () => {
  const withConfig = (edit: (c: Record<string, unknown>) => void): string => {
    const dir = mkdtempSync(join(tmpdir(), 'xlmr-bad-'));
    const cfg = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8'));
    edit(cfg);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    copyFileSync(join(DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  };
  const failure = async (dir: string): Promise<Error> => {
    try {
      await loadCrossEncoder(dir, { trainable: false });
    } catch (e) {
      return e as Error;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    throw new Error('loading did not fail');
  };

  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('a changed hidden_size names the file, the tensor and both shapes', async () => {
    const dir = withConfig((c) => (c.hidden_size = 32));
    const before = tf.memory().numTensors;
    const e = await failure(dir);
    expect(e).toBeInstanceOf(GrerankError);
    expect(e.message).not.toContain('\n');
    expect(e.message).toBe(`${join(dir, 'model.safetensors')}: tensor roberta.embeddings.word_embeddings.weight has shape [1000, 64], expected [1000, 32]`);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a changed intermediate_size names the first mismatching tensor', async () => {
    const e = await failure(withConfig((c) => (c.intermediate_size = 96)));
    expect(e.message).toMatch(/model\.safetensors: tensor roberta\.encoder\.layer\.0\.intermediate\.dense\.weight has shape \[128, 64\], expected \[96, 64\]$/);
  });

  it('rejects other activations, architectures and label counts in one line naming config.json', async () => {
    const cases: Array<[(c: Record<string, unknown>) => void, RegExp]> = [
      [(c) => (c.hidden_act = 'relu'), /config\.json: field "hidden_act" is "relu"/],
      [(c) => (c.hidden_act = 'gelu_new'), /config\.json: field "hidden_act" is "gelu_new"/],
      [(c) => (c.architectures = ['XLMRobertaForMaskedLM']), /config\.json: field "architectures" is \["XLMRobertaForMaskedLM"\]/],
      [(c) => (c.id2label = { 0: 'a', 1: 'b' }), /config\.json: "id2label" has 2 labels, expected one label/],
      [(c) => delete c.id2label, /config\.json: no "id2label" or "num_labels"/],
      [(c) => (c.num_attention_heads = 5), /config\.json: field "hidden_size" \(64\) is not a multiple of "num_attention_heads" \(5\)/],
    ];
    for (const [edit, re] of cases) {
      const e = await failure(withConfig(edit));
      expect(e).toBeInstanceOf(GrerankError);
      expect(e.message).toMatch(re);
      expect(e.message).not.toContain('\n');
    }
    expect(() => parseXlmrConfig({ architectures: ['XLMRobertaForSequenceClassification'], num_labels: 1, vocab_size: 'x' }, 'c.json')).toThrow(
      /^c\.json: field "vocab_size" must be an integer/,
    );
  });

  it('rejects inputs longer than the position table', async () => {
    await tf.setBackend('cpu');
    const model = await loadCrossEncoder(DIR, { trainable: false });
    const ids = tf.fill([1, 200], 5, 'int32') as tf.Tensor2D;
    expect(() => model.forward(ids, tf.onesLike(ids))).toThrow(/input length 200 exceeds the model's 128 positions/);
    tf.dispose(ids);
    model.dispose();
  });
});
