import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import type { RerankBatch } from '../src/data/batch.js';
import { loadStateDict, readConfig } from '../src/io/checkpoint.js';
import { ADistObjective } from '../src/methods/adist.js';
import { EmdrObjective } from '../src/methods/emdr.js';
import { makeObjective, OBJECTIVES, type ObjectiveName } from '../src/methods/index.js';
import { LoopObjective } from '../src/methods/loop.js';
import type { Objective, StepInputs } from '../src/methods/objective.js';
import { PDistObjective } from '../src/methods/pdist.js';
import { RerankerScorer, WeightTable } from '../src/methods/scorer.js';
import { decodeCrossAttention, DISTILL_DEFAULTS, flushTinyGradients, GRADIENT_FLOOR, klToStudent, REMOVED, singlePassageLogProbs, type DistillationObjective } from '../src/methods/teacher.js';
import { disposeEncoding, FidReader, passageBias } from '../src/models/fid.js';
import { RankT5 } from '../src/models/rankt5.js';
import { LEGACY_CROSS_BIAS, parseT5Config, shiftRight, T5Model, type T5Capture } from '../src/models/t5.js';
import { forwardBackward, Trainer } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';
import { randomBatch, TINY_T5 } from './helpers/tiny.js';

let reader: FidReader;
/** The tiny reader plus a random transformers-3.0.2 cross-attention bias table (SPEC.md section 2). */
let legacyReader: FidReader;

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
  reader = await FidReader.load(TINY_T5);
  const sd = await loadStateDict(TINY_T5);
  const config = parseT5Config(readConfig(TINY_T5));
  const rng = new Rng(123);
  const table = Float32Array.from({ length: config.numBuckets * config.numHeads }, () => 4 * (rng.uniform() - 0.5));
  const tensors = new Map(sd.tensors);
  tensors.set(LEGACY_CROSS_BIAS, { dtype: 'float32', shape: [config.numBuckets, config.numHeads], data: table });
  legacyReader = new FidReader(T5Model.fromStateDict(config, { ...sd, tensors }, { legacyCrossBias: 'auto' }));
  expect(legacyReader.t5.legacyCrossBias).toBe(true);
});

/**
 * A random batch with padding where it matters: passage (0, 1) has 3 pad keys, (1, 2) has 5,
 * and question 1's target has one pad token (labels -100).
 */
function paddedBatch(seed: number, b = 2, n = 5, l = 8, t = 4): RerankBatch {
  const batch = randomBatch(seed, b, n, l, t);
  const pad = (q: number, k: number, count: number) => {
    for (let j = l - count; j < l; j++) {
      batch.passageIds[(q * n + k) * l + j] = 0;
      batch.passageMask[(q * n + k) * l + j] = 0;
    }
  };
  pad(0, 1, 3);
  if (b > 1) {
    pad(1, 2 % n, 5);
    batch.labels[1 * t + t - 1] = -100;
  }
  return batch;
}

/** What forwardBackward builds before calling the objective. */
function stepInputs(r: FidReader, batch: RerankBatch): StepInputs {
  const { b, n, passageLen: l, targetLen: t } = batch;
  const c = r.t5.config;
  return tf.tidy(() => {
    const ids = tf.tensor3d(batch.passageIds, [b, n, l], 'int32');
    const mask = tf.tensor3d(batch.passageMask, [b, n, l], 'int32');
    return {
      batch,
      reader: r,
      enc: r.encodePassages(ids, mask),
      labels: tf.tensor2d(batch.labels, [b, t], 'int32'),
      decoderInputIds: tf.tensor2d(shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t], 'int32'),
    } as unknown as tf.TensorContainer;
  }) as unknown as StepInputs;
}

function disposeInputs(inputs: StepInputs): void {
  disposeEncoding(inputs.enc);
  tf.dispose([inputs.labels, inputs.decoderInputIds]);
}

/**
 * The reader run from scratch on the passages `keep` of question q (encoded alone, in that
 * order): per-token NLL of q's target [T] (0 on padding) and the number of target tokens.
 */
function readerNll(r: FidReader, batch: RerankBatch, q: number, keep: number[]): { perToken: Float64Array; count: number } {
  const { n, passageLen: l, targetLen: t } = batch;
  const c = r.t5.config;
  const ids: number[] = [];
  const mask: number[] = [];
  for (const k of keep) {
    ids.push(...batch.passageIds.slice((q * n + k) * l, (q * n + k + 1) * l));
    mask.push(...batch.passageMask.slice((q * n + k) * l, (q * n + k + 1) * l));
  }
  const labels = batch.labels.slice(q * t, (q + 1) * t);
  const perToken = tf.tidy(() => {
    const enc = r.encodePassages(tf.tensor3d(ids, [1, keep.length, l], 'int32'), tf.tensor3d(mask, [1, keep.length, l], 'int32'));
    const out = r.forward(enc, tf.tensor2d(shiftRight(labels, 1, t, c.decoderStartTokenId, c.padTokenId), [1, t], 'int32'), tf.tensor2d(labels, [1, t], 'int32'));
    disposeEncoding(enc);
    return Float64Array.from(out.perToken.dataSync());
  });
  return { perToken, count: labels.filter((x) => x >= 0).length };
}

/** softmax(x / temp) in float64. */
function softmax(x: number[], temp = 1): number[] {
  const m = Math.max(...x.map((v) => v / temp));
  const e = x.map((v) => Math.exp(v / temp - m));
  const z = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / z);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Scores that spread the student p_R = softmax(w / T_s) over several passages at T_s = 0.01. */
function studentScores(b: number, n: number, seed = 5): tf.Tensor2D {
  const rng = new Rng(seed);
  return tf.tensor2d(Array.from({ length: b * n }, () => 0.03 * (rng.uniform() - 0.5)), [b, n]);
}

/** Loss value and d loss / d scores of `obj` at `w` (its weights output disposed). */
function lossAndGrad(obj: Objective, w: tf.Tensor2D, inputs: StepInputs): { loss: number; grad: Float32Array; student: Float32Array } {
  let student = new Float32Array();
  const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => {
    const out = obj.loss(x as tf.Tensor2D, inputs);
    student = out.weights!.dataSync() as Float32Array;
    out.weights!.dispose();
    return out.loss;
  })(w);
  const r = { loss: value.dataSync()[0]!, grad: grad.dataSync() as Float32Array, student };
  tf.dispose([value, grad]);
  return r;
}

/** Checks the distillation gradient: d KL(target || softmax(w / T_s)) / d w = (p_R - target) / (T_s * B). */
function checkKlGradient(obj: DistillationObjective, inputs: StepInputs, b: number, n: number): void {
  const w = studentScores(b, n);
  const { loss, grad, student } = lossAndGrad(obj, w, inputs);
  const target = tf.tidy(() => tf.exp(obj.logTarget!).dataSync());
  const ts = obj.opts.temperatureScore;
  const analytic = Array.from(student, (p, i) => (p - target[i]!) / (ts * b));
  const scale = Math.max(...analytic.map(Math.abs));
  expect(maxDiff(grad, analytic)).toBeLessThan(1e-4 * Math.max(scale, 1));
  expect(Array.from(grad).every(Number.isFinite)).toBe(true);
  // And the loss is the KL itself.
  let kl = 0;
  for (let i = 0; i < b * n; i++) if (target[i]! > 0) kl += (target[i]! * Math.log(target[i]! / student[i]!)) / b;
  expect(Math.abs(loss - kl)).toBeLessThan(1e-3 * Math.max(1, kl));
  // The student is softmax(w / T_s).
  const wv = Array.from(w.dataSync());
  for (let q = 0; q < b; q++) expect(maxDiff(student.slice(q * n, (q + 1) * n), softmax(wv.slice(q * n, (q + 1) * n), ts))).toBeLessThan(1e-5);
  w.dispose();
}

/**
 * A distillation objective's teacher: for every passage k its score is `sign` × the reader's
 * mean NLL of the answer given only the passages `keep(k, n)` (each encoded alone, as the
 * reader sees them), the scores spread by more than `minSpread` (so the check is not vacuous),
 * its target is their softmax at T_g, and its KL gradient is as defined.
 */
function checkTeacher(obj: PDistObjective | LoopObjective, r: FidReader, seed: number, keep: (k: number, n: number) => number[], sign: 1 | -1, minSpread: number): void {
  const batch = paddedBatch(seed);
  const { b, n } = batch;
  const inputs = stepInputs(r, batch);
  obj.prepare(inputs);
  const s = obj.teacherScores!.dataSync();
  const expected: number[] = [];
  for (let q = 0; q < b; q++) {
    for (let k = 0; k < n; k++) {
      const { perToken, count } = readerNll(r, batch, q, keep(k, n));
      expected.push((sign * perToken.reduce((a, v) => a + v, 0)) / count);
    }
  }
  expect(maxDiff(s, expected)).toBeLessThan(2e-5);
  expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(minSpread);
  const target = tf.tidy(() => tf.exp(obj.logTarget!).dataSync());
  for (let q = 0; q < b; q++) {
    const want = softmax(expected.slice(q * n, (q + 1) * n), DISTILL_DEFAULTS.temperatureGold);
    // T_g = 0.01 multiplies score errors by 100.
    expect(maxDiff(target.slice(q * n, (q + 1) * n), want)).toBeLessThan(5e-3);
  }
  checkKlGradient(obj, inputs, b, n);
  obj.release();
  disposeInputs(inputs);
}

describe('PDist: s_k = mean log-likelihood of the answer given q and d_k alone', () => {
  for (const [label, getReader] of [
    ['plain reader', () => reader],
    ['reader with the 3.0.2 cross-attention bias', () => legacyReader],
  ] as const) {
    it(`equals the reader run on each passage encoded alone (${label}); target and gradient as defined`, () => {
      // The scores differ across passages: the check is not vacuous.
      checkTeacher(new PDistObjective(), getReader(), 11, (k) => [k], -1, 1e-3);
    });
  }

  it('equals the masked form: all N*L keys with a -1e9 bias on every passage but d_k (plain reader)', () => {
    const batch = paddedBatch(12);
    const { b, n, passageLen: l, targetLen: t } = batch;
    const inputs = stepInputs(reader, batch);
    const regrouped = singlePassageLogProbs(reader, inputs.enc, inputs.decoderInputIds, inputs.labels);
    const masked = tf.tidy(() => {
      const t5 = reader.t5;
      const rows: tf.Tensor[] = [];
      for (let k = 0; k < n; k++) {
        const bias = new Float32Array(b * n).fill(REMOVED);
        for (let q = 0; q < b; q++) bias[q * n + k] = 0;
        const hidden = t5.decode(inputs.decoderInputIds, inputs.enc.kv, t5.crossBias(inputs.enc.mask, t, passageBias(tf.tensor2d(bias, [b, n]), l)));
        const out = tf.logSoftmax(t5.lmLogits(hidden));
        const labels = Array.from(inputs.labels.dataSync());
        const lp = out.arraySync() as number[][][];
        rows.push(tf.tensor2d(labels.map((y, i) => (y >= 0 ? lp[Math.floor(i / t)]![i % t]![y]! : 0)), [b, t]));
      }
      return tf.stack(rows, 1); // [B, N, T]
    });
    expect(maxDiff(regrouped.dataSync(), masked.dataSync())).toBeLessThan(2e-5);
    tf.dispose([regrouped, masked]);
    disposeInputs(inputs);
  });
});

describe('LOOP: s_k = mean NLL of the answer given every passage except d_k', () => {
  for (const [label, getReader] of [
    ['plain reader', () => reader],
    ['reader with the 3.0.2 cross-attention bias', () => legacyReader],
  ] as const) {
    it(`equals the reader run on the n-1 other passages, encoded without d_k (${label}); target and gradient as defined`, () => {
      // Higher NLL without d_k -> d_k more important.
      checkTeacher(new LoopObjective(), getReader(), 21, (k, n) => Array.from({ length: n }, (_, i) => i).filter((i) => i !== k), 1, 1e-4);
    });
  }
});

describe('ADist: s_k = cross-attention probability x value norm, averaged over layers, heads, target tokens and d_k tokens', () => {
  it('decodeCrossAttention reproduces T5Model.decode and its captured cross-attention', () => {
    const batch = paddedBatch(31);
    const inputs = stepInputs(reader, batch);
    const t5 = reader.t5;
    const t = batch.targetLen;
    tf.tidy(() => {
      const bias = t5.crossBias(inputs.enc.mask, t);
      const capture: T5Capture = {};
      const ref = t5.decode(inputs.decoderInputIds, inputs.enc.kv, bias, capture);
      const probs: tf.Tensor[] = [];
      const mine = decodeCrossAttention(t5, inputs.decoderInputIds, inputs.enc.kv, bias, (_, p) => probs.push(p));
      expect(probs).toHaveLength(t5.config.numDecoderLayers);
      expect(maxDiff(mine.dataSync(), ref.dataSync())).toBeLessThan(1e-6);
      expect(maxDiff(probs[0]!.dataSync(), capture.crossAttention0!.dataSync())).toBeLessThan(1e-7);
      expect(maxDiff(probs.at(-1)!.dataSync(), capture.crossAttentionLast!.dataSync())).toBeLessThan(1e-7);
      tf.dispose(Object.values(capture));
    });
    disposeInputs(inputs);
  });

  it('equals a direct computation from the captured attention of every layer and the value norms; non-negative; gradient as defined', () => {
    const batch = paddedBatch(32);
    const { b, n, passageLen: l, targetLen: t } = batch;
    const inputs = stepInputs(reader, batch);
    const obj = new ADistObjective();
    obj.prepare(inputs);
    const s = Array.from(obj.teacherScores!.dataSync());
    expect(s.every((x) => x >= 0)).toBe(true);

    // Direct: layer i's cross-attention from a T5Model truncated to i+1 decoder layers (capture's
    // crossAttentionLast), value norms from the encoding, sums and counts by hand.
    const t5 = reader.t5;
    const c = t5.config;
    const h = c.numHeads;
    const layers = c.numDecoderLayers;
    const sLen = n * l;
    const sum = new Float64Array(b * n);
    for (let i = 0; i < layers; i++) {
      const truncated = new T5Model({ ...c, numDecoderLayers: i + 1 }, t5.params, t5.legacyCrossBias);
      const capture: T5Capture = {};
      tf.tidy(() => {
        truncated.decode(inputs.decoderInputIds, inputs.enc.kv, truncated.crossBias(inputs.enc.mask, t), capture);
      });
      const p = capture.crossAttentionLast!.dataSync(); // [B, H, T, S]
      const v = inputs.enc.kv[i]!.v.dataSync(); // [B, H, S, dk]
      tf.dispose(Object.values(capture));
      for (let q = 0; q < b; q++) {
        for (let head = 0; head < h; head++) {
          for (let pos = 0; pos < t; pos++) {
            if (batch.labels[q * t + pos]! < 0) continue;
            for (let key = 0; key < sLen; key++) {
              if (!batch.passageMask[q * sLen + key]) continue;
              let norm = 0;
              for (let d = 0; d < c.dKv; d++) norm += v[((q * h + head) * sLen + key) * c.dKv + d]! ** 2;
              sum[q * n + Math.floor(key / l)] += p[((q * h + head) * t + pos) * sLen + key]! * Math.sqrt(norm);
            }
          }
        }
      }
    }
    const expected: number[] = [];
    for (let q = 0; q < b; q++) {
      const answer = batch.labels.slice(q * t, (q + 1) * t).filter((x) => x >= 0).length;
      for (let k = 0; k < n; k++) {
        const tokens = batch.passageMask.slice((q * n + k) * l, (q * n + k + 1) * l).reduce((a, x) => a + x, 0);
        expected.push(sum[q * n + k]! / (layers * h * answer * tokens));
      }
    }
    expect(maxDiff(s, expected)).toBeLessThan(1e-6 * Math.max(...expected));
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(0);
    checkKlGradient(obj, inputs, b, n);
    obj.release();
    disposeInputs(inputs);
  });
});

describe('EMDR: -mean_t logsumexp_k(log p_LM(a_t | q, d_k, a_<t) + log p_R(d_k))', () => {
  it('equals a direct computation from per-passage token log-probs; gradient = -(posterior - p_R) / T_s per token', () => {
    const batch = paddedBatch(41);
    const { b, n, targetLen: t } = batch;
    const inputs = stepInputs(reader, batch);
    const obj = new EmdrObjective();
    obj.prepare(inputs);
    // Per-passage token log-probs from one-passage encodings.
    const logp: number[][][] = [];
    for (let q = 0; q < b; q++) logp.push(Array.from({ length: n }, (_, k) => Array.from(readerNll(reader, batch, q, [k]).perToken, (x) => -x)));
    expect(maxDiff(obj.tokenLogProbs!.dataSync(), logp.flat(2))).toBeLessThan(2e-5);

    const w = studentScores(b, n, 9);
    const wv = Array.from(w.dataSync());
    const ts = obj.opts.temperatureScore;
    let total = 0;
    let count = 0;
    const grad = new Float64Array(b * n);
    const pr: number[][] = [];
    for (let q = 0; q < b; q++) pr.push(softmax(wv.slice(q * n, (q + 1) * n), ts));
    for (let q = 0; q < b; q++) {
      for (let pos = 0; pos < t; pos++) {
        if (batch.labels[q * t + pos]! < 0) continue;
        const joint = Array.from({ length: n }, (_, k) => logp[q]![k]![pos]! + Math.log(pr[q]![k]!));
        const m = Math.max(...joint);
        total += m + Math.log(joint.reduce((a, x) => a + Math.exp(x - m), 0));
        count++;
        const post = softmax(joint);
        for (let k = 0; k < n; k++) grad[q * n + k] += post[k]! - pr[q]![k]!;
      }
    }
    const expectedLoss = -total / count;
    for (let i = 0; i < b * n; i++) grad[i] = -grad[i]! / (ts * count);
    const got = lossAndGrad(obj, w, inputs);
    expect(Math.abs(got.loss - expectedLoss)).toBeLessThan(1e-4);
    expect(maxDiff(got.grad, grad)).toBeLessThan(1e-3 * Math.max(1, ...Array.from(grad, Math.abs)));
    expect(Array.from(got.grad).every(Number.isFinite)).toBe(true);
    expect(maxDiff(got.student, pr.flat())).toBeLessThan(1e-5);
    // The reader's temperature divides its logits before the softmax (Atlas' code uses T_g there).
    const sharp = new EmdrObjective({ temperatureLm: 0.5 });
    sharp.prepare(inputs);
    const direct = tf.tidy(() => {
      const ref = singlePassageLogProbs(reader, inputs.enc, inputs.decoderInputIds, inputs.labels, 0.5);
      return ref.dataSync();
    });
    expect(maxDiff(sharp.tokenLogProbs!.dataSync(), direct)).toBe(0);
    expect(maxDiff(sharp.tokenLogProbs!.dataSync(), logp.flat(2))).toBeGreaterThan(1e-3);
    sharp.release();
    w.dispose();
    obj.release();
    disposeInputs(inputs);
  });
});

describe('subnormal gradients', () => {
  it('flushTinyGradients is the identity forward and zeroes gradient components below 1e-20 (no subnormals reach the reranker)', () => {
    // At T_s = 0.01 a score gap of 1 gives the weak passage p_R ~ e^-100, a subnormal gradient.
    const w = tf.tensor2d([[0, 1, 0.5, -0.2]]);
    const logTarget = tf.logSoftmax(tf.div(tf.tensor2d([[0.05, 0.5, 1, 0.3]]), 0.01)) as tf.Tensor2D;
    const raw = tf.tidy(() =>
      tf.grad((x: tf.Tensor) => {
        const logp = tf.logSoftmax(tf.div(x, 0.01));
        return tf.mean(tf.sum(tf.mul(tf.exp(logTarget), tf.sub(logTarget, logp)), 1));
      })(w).dataSync(),
    );
    const flushed = tf.tidy(() =>
      tf.grad((x: tf.Tensor) => {
        const out = klToStudent(x as tf.Tensor2D, logTarget, 0.01);
        out.student.dispose();
        return out.loss;
      })(w).dataSync(),
    );
    expect(Array.from(raw).some((g) => g !== 0 && Math.abs(g) < 1.2e-38)).toBe(true);
    for (let i = 0; i < raw.length; i++) expect(flushed[i]).toBe(Math.abs(raw[i]!) >= GRADIENT_FLOOR ? raw[i] : 0);
    expect(tf.tidy(() => Array.from(flushTinyGradients(w).dataSync()))).toEqual(Array.from(w.dataSync()));
    tf.dispose([w, logTarget]);
  });
});

describe('objective factory and bookkeeping', () => {
  it('makeObjective builds every method with configurable temperatures', () => {
    const gumbel = { k: 2, tau: 0.5, kappa: 1 };
    for (const name of OBJECTIVES) expect(makeObjective(name, { gumbel }, new Rng(1)).name).toBe(name === 'weights' ? 'gumbel' : name);
    const p = makeObjective('pdist', { temperatureScore: 0.1, temperatureGold: 0.2 }, new Rng(1)) as PDistObjective;
    expect(p.opts).toEqual({ temperatureScore: 0.1, temperatureGold: 0.2 });
    expect((makeObjective('loop', {}, new Rng(1)) as LoopObjective).opts).toEqual({ temperatureScore: 0.01, temperatureGold: 0.01 });
    expect((makeObjective('emdr', { temperatureScore: 0.05 }, new Rng(1)) as EmdrObjective).opts).toEqual({ temperatureScore: 0.05, temperatureLm: 1 });
    expect(() => makeObjective('gumbel', {}, new Rng(1))).toThrow(/Gumbel options/);
    expect(() => new PDistObjective({ temperatureGold: 0 })).toThrow(RangeError);
  });

  it('forwardBackward with every baseline: finite gradients, weights = p_R, no tensor left behind across calls', () => {
    const batch = paddedBatch(51);
    const { b, n } = batch;
    for (const name of ['emdr', 'pdist', 'loop', 'adist'] as ObjectiveName[]) {
      const obj = makeObjective(name, {}, new Rng(1));
      const table = new WeightTable(b, n);
      tf.tidy(() => table.table.assign(studentScores(b, n, 3)));
      const counts: number[] = [];
      for (let call = 0; call < 3; call++) {
        const r = forwardBackward(table, obj, reader, batch);
        expect(Number.isFinite(r.loss)).toBe(true);
        expect(r.grads).toHaveLength(1);
        const g = r.grads[0]!.dataSync();
        expect(Array.from(g).every(Number.isFinite)).toBe(true);
        expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(0);
        // weights = softmax(w / T_s) per question.
        const wv = Array.from(table.table.dataSync());
        for (let q = 0; q < b; q++) expect(maxDiff(r.weights!.slice(q * n, (q + 1) * n), softmax(wv.slice(q * n, (q + 1) * n), 0.01))).toBeLessThan(1e-5);
        tf.dispose(r.grads);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size).toBe(1);
      table.table.dispose();
      const before = tf.memory().numTensors;
      // prepare / release alone leave nothing behind either.
      const inputs = stepInputs(reader, batch);
      obj.prepare!(inputs);
      obj.release!();
      disposeInputs(inputs);
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});

describe('training with each baseline', () => {
  for (const name of ['emdr', 'pdist', 'loop', 'adist'] as ObjectiveName[]) {
    it(`${name}: the Trainer runs 5 steps on a RankT5 scorer without errors or leaks`, async () => {
      const ranker = new RankT5(await T5Model.load(TINY_T5, { trainable: true }), 10);
      const trainer = new Trainer(new RerankerScorer(ranker), reader, makeObjective(name, {}, new Rng(7)), {
        schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 5, kind: 'constant' },
        clipNorm: 1.0,
      });
      const counts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const s = await trainer.trainStep(randomBatch(60 + i));
        expect(Number.isFinite(s.loss)).toBe(true);
        expect(s.skipped).toBe(false);
        expect(s.maxWeight).toBeGreaterThan(0);
        expect(s.maxWeight).toBeLessThanOrEqual(1 + 1e-6);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size).toBe(1);
      expect(trainer.step).toBe(5);
      trainer.dispose();
      ranker.dispose();
    });
  }
});
