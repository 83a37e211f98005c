import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { readExamples } from '../src/data/examples.js';
import { generateSynth, writeSynth } from '../src/data/synth.js';
import { evaluate, EVAL_DEFAULTS } from '../src/eval/evaluate.js';
import { exactMatch } from '../src/eval/metrics.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { FidReader } from '../src/models/fid.js';
import { greedyDecode } from '../src/models/generate.js';
import { T5Model } from '../src/models/t5.js';
import { encodeReaderBatch, encodeReaderPassages, loadTrainableReader, READER_TRAIN_DEFAULTS, readerLoss, trainReader, type ReaderTrainConfig } from '../src/train/reader.js';
import { grerank, removeDir, tempDir } from './helpers/cli.js';
import { tinyT5Model, writeTinyQa } from './helpers/tiny.js';
import { wordTokenizerJson } from '../src/data/vocab-tokenizer.js';

const work = tempDir();
let data: string;
let tokFile: string;
let configFile: string;
const N = 6;
const ENCODE = { nPassages: N, passageMaxLength: 48, answerMaxLength: 8 };

beforeAll(async () => {
  await initBackend('wasm', { quiet: true });
  // 16 training questions of 6 candidates each: every question's gold passages are among them.
  const synth = generateSynth({ seed: 1, train: 16, dev: 0, test: 4, candidates: N });
  writeSynth(join(work, 'synth'), synth);
  data = join(work, 'synth', 'train.jsonl');
  const words = readFileSync(join(work, 'synth', 'vocab.txt'), 'utf8').split('\n').filter(Boolean);
  tokFile = join(work, 'tokenizer.json');
  writeFileSync(tokFile, wordTokenizerJson(words));
  const vocab = Math.ceil(loadTokenizer(tokFile).vocabSize / 64) * 64;
  configFile = join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify({ vocab_size: vocab, d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_heads: 4, feed_forward_proj: 'relu' }));
});
afterAll(() => removeDir(work));

describe('reader training (FiD, teacher forcing, encoder in the tape)', () => {
  it('trains a freshly initialised tiny T5 on synthetic data: the loss falls, it answers training questions, the saved directory reloads with the same loss', async () => {
    const out = join(work, 'reader');
    const cfg: ReaderTrainConfig = {
      ...READER_TRAIN_DEFAULTS,
      initConfig: configFile,
      tokenizer: tokFile,
      initSeed: 0,
      data,
      out,
      steps: 150,
      batchSize: 4,
      encode: ENCODE,
      lr: 3e-3,
      warmupSteps: 10,
    };
    const { examples } = await readExamples(data);
    const fresh = await loadTrainableReader(cfg);
    const all = await encodeReaderBatch(examples, fresh.tokenizer, ENCODE);
    const before = readerLoss(fresh.reader, all);
    fresh.reader.dispose();

    const tensors: number[] = [];
    const t0 = performance.now();
    const result = await trainReader(cfg, () => tensors.push(tf.memory().numTensors), { keep: true });
    const secs = (performance.now() - t0) / 1000;
    const trained = result.trained!;
    try {
      expect(result.steps).toBe(150);
      expect(result.skipped).toBe(0);
      // No tensor leaks: every step ends with the same number of live tensors.
      expect(new Set(tensors.slice(1)).size).toBe(1);
      const after = readerLoss(trained.reader, all);
      expect(before).toBeGreaterThan(4);
      expect(after).toBeLessThan(0.5);

      // The trained reader answers its training questions (greedy decoding, all passages).
      const p = await encodeReaderPassages(examples.map((ex) => ({ question: ex.question, passages: ex.ctxs })), trained.tokenizer, N, ENCODE.passageMaxLength);
      const b = examples.length;
      const enc = trained.reader.encodePassages(tf.tensor3d(p.ids, [b, N, ENCODE.passageMaxLength], 'int32'), tf.tensor3d(p.mask, [b, N, ENCODE.passageMaxLength], 'int32'));
      const ids = greedyDecode(trained.reader.t5, enc, { maxLength: 10 });
      let em = 0;
      for (let i = 0; i < b; i++) em += exactMatch(await trained.tokenizer.decode(ids[i]!), examples[i]!.answers);
      console.log(`reader training: ${(150 / secs).toFixed(1)} steps/s (batch 4 x ${N} passages x ${ENCODE.passageMaxLength} tokens, d_model 64, 2+2 layers); loss ${before.toFixed(3)} -> ${after.toFixed(3)}; training EM ${em}/${b}`);
      expect(em / b).toBeGreaterThanOrEqual(0.5);

      // The Hugging Face directory: config, tokenizer, weights; reloaded, the same loss.
      for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', 'train-reader-config.json']) expect(existsSync(join(out, f)), f).toBe(true);
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).model_type).toBe('t5');
      const reloaded = new FidReader(await T5Model.load(out));
      const tok = loadTokenizer(out);
      const again = await encodeReaderBatch(examples, tok, ENCODE);
      expect(Array.from(again.passageIds)).toEqual(Array.from(all.passageIds));
      expect(Math.abs(readerLoss(reloaded, again) - after)).toBeLessThan(1e-5);
      reloaded.dispose();

      // grerank eval's generator setting with the saved reader (all candidates, retriever order): the same answers.
      const ev = await evaluate({ ...EVAL_DEFAULTS, data, ranker: { kind: 'baseline', name: 'retriever-order' }, reader: out, k: N, generate: true, passageMaxLength: ENCODE.passageMaxLength, maxAnswerTokens: 10 });
      expect(ev.metrics.EM).toBeCloseTo(em / b, 10);
      expect(ev.metrics.F1!).toBeGreaterThanOrEqual(ev.metrics.EM!);
    } finally {
      trained.reader.dispose();
    }
  });
});

describe('grerank train-reader', () => {
  const WORDS = 'question title context who directed film born city the was in by where of person'.split(' ');
  const model = tinyT5Model(WORDS);
  afterAll(() => removeDir(model));

  /** `count` questions of 3 candidates each. */
  const dataset = (file: string, count: number): void => writeTinyQa(file, count, { passages: 3 });

  it('fine-tunes a checkpoint and writes a Hugging Face directory with every tensor', () => {
    const file = join(work, 'small.jsonl');
    dataset(file, 4);
    const out = join(work, 'ft');
    const r = grerank(['train-reader', '--reader', model, '--data', file, '--out', out, '--steps', '3', '--batch-size', '2', '--n-passages', '3', '--text-maxlength', '20', '--answer-maxlength', '5', '--lr', '1e-3', '--log-every', '1', '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.event === 'train-reader' && Number.isFinite(e.loss))).toBe(true);
    const saved = readSafetensors(join(out, 'model.safetensors'));
    const original = readSafetensors(join(model, 'model.safetensors'));
    expect([...saved.keys()].sort()).toEqual([...original.keys()].sort());
    // Encoder and decoder both trained.
    for (const name of ['encoder.block.0.layer.0.SelfAttention.q.weight', 'decoder.block.1.layer.2.DenseReluDense.wo.weight']) {
      expect(saved.get(name)!.shape).toEqual(original.get(name)!.shape);
      expect(saved.get(name)!.data).not.toEqual(original.get(name)!.data);
    }
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe(readFileSync(join(model, 'config.json'), 'utf8'));
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(model, 'tokenizer.json'), 'utf8'));
    expect(JSON.parse(readFileSync(join(out, 'train-reader-config.json'), 'utf8')).encode).toEqual({ nPassages: 3, passageMaxLength: 20, answerMaxLength: 5 });
  });

  it('initialises a reader from --init-config with --tokenizer', () => {
    const file = join(work, 'small2.jsonl');
    dataset(file, 2);
    const cfg = join(work, 'tiny-config.json');
    writeFileSync(cfg, JSON.stringify({ vocab_size: 512, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 1, num_heads: 4 }));
    const out = join(work, 'scratch');
    const r = grerank(['train-reader', '--init-config', cfg, '--tokenizer', join(model, 'tokenizer.json'), '--data', file, '--out', out, '--steps', '2', '--n-passages', '2', '--text-maxlength', '16', '--answer-maxlength', '4']);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 't5', d_model: 32, num_layers: 1, vocab_size: 512 });
    expect(readSafetensors(join(out, 'model.safetensors')).get('shared.weight')!.shape).toEqual([512, 32]);
  });

  it('rejects bad input with one line', () => {
    const file = join(work, 'small3.jsonl');
    dataset(file, 2);
    const lines = (r: { stderr: string }) => r.stderr.trim().split('\n').filter((l) => !l.startsWith('[grerank]'));
    expect(lines(grerank(['train-reader', '--data', file, '--out', join(work, 'x')]))).toEqual(['error: --reader DIR or --init-config CONFIG.json is required']);
    const cfg = join(work, 'tiny-config.json');
    expect(lines(grerank(['train-reader', '--init-config', cfg, '--data', file, '--out', join(work, 'x')]))).toEqual(['error: --init-config needs --tokenizer FILE (the tokenizer.json of the new reader)']);
    const small = join(work, 'small-vocab.json');
    writeFileSync(small, JSON.stringify({ vocab_size: 16, d_model: 8, d_kv: 4, d_ff: 16, num_layers: 1, num_heads: 2 }));
    const tooBig = grerank(['train-reader', '--init-config', small, '--tokenizer', join(model, 'tokenizer.json'), '--data', file, '--out', join(work, 'x'), '--n-passages', '3']);
    expect(tooBig.code).toBe(1);
    expect(lines(tooBig)[0]).toMatch(/tokenizer\.json: \d+ tokens do not fit the reader's vocabulary of 16 \(vocab_size\)$/);
    const few = grerank(['train-reader', '--reader', model, '--data', file, '--out', join(work, 'x'), '--n-passages', '5']);
    expect(lines(few)).toEqual([`error: ${file}: example q0 has 3 passages, but --n-passages is 5`]);
    const notModel = join(work, 'synth');
    const occupied = grerank(['train-reader', '--reader', model, '--data', file, '--out', notModel, '--n-passages', '3']);
    expect(lines(occupied)).toEqual([`error: ${notModel}: exists and is not a model directory (it would be replaced); choose another --out`]);
  });
});
