import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labelRows, padRows, readerText } from '../data/batch.js';
import { chooseTarget } from '../data/encode.js';
import { readExamples, type Example, type Passage } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { readConfig, readJsonFile } from '../io/checkpoint.js';
import { saveModelDir } from '../io/export.js';
import { loadTokenizer, type TextTokenizer } from '../io/tokenizer.js';
import { FidReader } from '../models/fid.js';
import { initT5StateDict } from '../models/t5-init.js';
import { parseT5Config, shiftRight, T5Model } from '../models/t5.js';
import { Rng } from '../util/rng.js';
import { AdamW, clipByGlobalNorm, learningRate, type AdamWOptions, type ScheduleOptions } from './optimizer.js';
import { epochOrder } from './run.js';
import type { UpdateStats } from './step.js';

/**
 * Fine-tuning the FiD reader itself (FiD's train_reader.py): every passage of a question is
 * encoded, the decoder is teacher-forced on the target, and all reader parameters are trained,
 * the encoder included. Unlike the reranker step (step.ts), the encoder runs inside the gradient
 * tape here.
 */

/** What the reader needs of a batch: a subset of RerankBatch, so a RerankBatch works too. */
export interface ReaderBatch {
  b: number;
  n: number;
  /** "question: q title: t context: c" per passage, [b, n, passageLen]; padding passages are all-zero mask rows. */
  passageIds: Int32Array;
  passageMask: Int32Array;
  passageLen: number;
  /** Target tokens followed by </s>, -100 on padding, [b, targetLen]. */
  labels: Int32Array;
  targetLen: number;
}

export interface ReaderEncodeSpec {
  /** Passages per question (the first n of ctxs). */
  nPassages: number;
  /** Tokens per passage (FiD's text_maxlength). */
  passageMaxLength: number;
  /** Target tokens, `</s>` included (FiD's answer_maxlength). */
  answerMaxLength: number;
}

/**
 * The reader's passage inputs [b, n, len] for each question's given passages, in the given
 * order. A question with fewer than n passages gets padding passages whose mask is all zero:
 * the decoder never attends to them.
 */
export async function encodeReaderPassages(
  items: ReadonlyArray<{ question: string; passages: readonly Passage[] }>,
  tok: TextTokenizer,
  n: number,
  len: number,
): Promise<{ ids: Int32Array; mask: Int32Array }> {
  const texts: string[] = [];
  for (const it of items) for (const p of it.passages.slice(0, n)) texts.push(readerText(it.question, p.title, p.text));
  const rows = await tok.encodeBatch(texts);
  const padId = tok.padId ?? 0;
  const eosId = tok.eosId ?? 1;
  const ids = new Int32Array(items.length * n * len).fill(padId);
  const mask = new Int32Array(items.length * n * len);
  let r = 0;
  items.forEach((it, i) => {
    const count = Math.min(n, it.passages.length);
    const packed = padRows(rows.slice(r, r + count), len, padId, eosId);
    r += count;
    ids.set(packed.ids, i * n * len);
    mask.set(packed.mask, i * n * len);
  });
  return { ids, mask };
}

/**
 * One training batch of the reader: the first nPassages candidates of every example (an example
 * with fewer is an error that names it) and the target (`target`, else a seeded choice of answer).
 */
export async function encodeReaderBatch(examples: readonly Example[], tok: TextTokenizer, spec: ReaderEncodeSpec, rng?: Rng): Promise<ReaderBatch> {
  const n = spec.nPassages;
  for (const ex of examples) {
    if (ex.ctxs.length < n) throw new GrerankError(`example ${ex.id}: ${ex.ctxs.length} passages, but --n-passages is ${n}`);
  }
  const passages = await encodeReaderPassages(
    examples.map((ex) => ({ question: ex.question, passages: ex.ctxs })),
    tok,
    n,
    spec.passageMaxLength,
  );
  const targets = await tok.encodeBatch(examples.map((ex) => chooseTarget(ex, rng)));
  return {
    b: examples.length,
    n,
    passageIds: passages.ids,
    passageMask: passages.mask,
    passageLen: spec.passageMaxLength,
    labels: labelRows(targets, spec.answerMaxLength, tok.eosId ?? 1),
    targetLen: spec.answerMaxLength,
  };
}

/** The teacher-forced answer loss of the plain FiD reader on a batch (a scalar; the caller disposes it). */
export function readerLossTensor(reader: FidReader, batch: ReaderBatch): tf.Scalar {
  const { b, n, passageLen: l, targetLen: t } = batch;
  const c = reader.t5.config;
  return tf.tidy(() => {
    const enc = reader.encodePassages(tf.tensor3d(batch.passageIds, [b, n, l], 'int32'), tf.tensor3d(batch.passageMask, [b, n, l], 'int32'));
    const labels = tf.tensor2d(batch.labels, [b, t], 'int32');
    const decIn = tf.tensor2d(shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t], 'int32');
    return reader.forward(enc, decIn, labels).loss;
  });
}

/** The teacher-forced loss as a number (no gradient). */
export function readerLoss(reader: FidReader, batch: ReaderBatch): number {
  const loss = readerLossTensor(reader, batch);
  try {
    return loss.dataSync()[0]!;
  } finally {
    loss.dispose();
  }
}

/**
 * Forward and backward of one reader batch with the encoder inside the tape. Returns the loss
 * and gradients aligned with reader.t5.params.variables() (the caller disposes them).
 */
export function readerForwardBackward(reader: FidReader, batch: ReaderBatch): { loss: number; grads: tf.Tensor[] } {
  const vars = reader.t5.params.variables();
  if (vars.length === 0) throw new Error('readerForwardBackward: the reader was loaded without trainable parameters');
  const { value, grads } = tf.variableGrads(() => readerLossTensor(reader, batch), vars);
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, grads: vars.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
}

export interface ReaderTrainerOptions {
  schedule: ScheduleOptions;
  /** Global gradient-norm clip (0 disables). */
  clipNorm: number;
  adamw?: Partial<AdamWOptions>;
}

export interface ReaderStepStats extends UpdateStats {
  seconds: { forwardBackward: number; optimizer: number };
}

/** The reader's training loop body: forward/backward, clipping, AdamW with the schedule (as Trainer in step.ts). */
export class ReaderTrainer {
  readonly optimizer: AdamW;
  skippedSteps = 0;

  constructor(
    readonly reader: FidReader,
    readonly opts: ReaderTrainerOptions,
  ) {
    this.optimizer = new AdamW(reader.t5.params.variables(), opts.adamw);
  }

  /** Updates applied so far. */
  get step(): number {
    return this.optimizer.step;
  }

  trainStep(batch: ReaderBatch): ReaderStepStats {
    const t0 = performance.now();
    const res = readerForwardBackward(this.reader, batch);
    const t1 = performance.now();
    const clipped = clipByGlobalNorm(res.grads, this.opts.clipNorm);
    const nonFinite = !Number.isFinite(res.loss) || !Number.isFinite(clipped.norm);
    const lr = learningRate(this.opts.schedule, this.optimizer.step + 1);
    if (nonFinite) this.skippedSteps++;
    else this.optimizer.apply(clipped.grads, lr);
    tf.dispose(clipped.grads.filter((g) => !res.grads.includes(g)));
    tf.dispose(res.grads);
    const t2 = performance.now();
    return {
      step: this.optimizer.step,
      loss: res.loss,
      lr,
      gradNorm: clipped.norm,
      skipped: nonFinite,
      examples: batch.b,
      seconds: { forwardBackward: (t1 - t0) / 1000, optimizer: (t2 - t1) / 1000 },
    };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Everything `grerank train-reader` needs; JSON-serialisable (saved as out/train-reader-config.json). */
export interface ReaderTrainConfig {
  /** The reader to fine-tune: a Hugging Face T5 directory. Either this or initConfig. */
  reader?: string;
  /** A T5 config.json to initialise a reader from scratch (transformers' initialisation). */
  initConfig?: string;
  /** tokenizer.json (or a directory with one); required with initConfig, else the reader's own. */
  tokenizer?: string;
  data: string;
  /** The trained reader is written here as a Hugging Face directory. */
  out: string;
  /** Optimizer updates; 0 = `epochs` full passes. */
  steps: number;
  epochs: number;
  batchSize: number;
  encode: ReaderEncodeSpec;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  schedule: 'linear' | 'constant';
  /** Seed of the data order and the target choice. */
  seed: number;
  /** Seed of the weights when initialising from scratch. */
  initSeed: number;
  logEvery: number;
  limit?: number;
}

/** FiD's defaults: lr 1e-4, 20 passages of 250 tokens, answers up to 32 tokens, clip 1.0. */
export const READER_TRAIN_DEFAULTS: Omit<ReaderTrainConfig, 'data' | 'out'> = {
  steps: 0,
  epochs: 1,
  batchSize: 1,
  encode: { nPassages: 20, passageMaxLength: 250, answerMaxLength: 32 },
  lr: 1e-4,
  warmupSteps: 0,
  weightDecay: 0.01,
  clipNorm: 1.0,
  schedule: 'linear',
  seed: 0,
  initSeed: 0,
  logEvery: 10,
};

export interface TrainableReader {
  reader: FidReader;
  tokenizer: TextTokenizer;
  /** The text of tokenizer.json to save beside the model. */
  tokenizerJson: string;
  /** The config.json text to save (from the checkpoint, or the init config completed). */
  configJson: string;
  /** The checkpoint directory whose side files are copied on save; undefined when from scratch. */
  sourceDir?: string;
}

function checkReaderSource(cfg: Pick<ReaderTrainConfig, 'reader' | 'initConfig' | 'tokenizer'>): void {
  if (cfg.reader && cfg.initConfig) throw new GrerankError('give either --reader (a checkpoint) or --init-config (a fresh reader), not both');
  if (!cfg.reader && !cfg.initConfig) throw new GrerankError('--reader DIR or --init-config CONFIG.json is required');
  if (cfg.initConfig && !cfg.tokenizer) throw new GrerankError('--init-config needs --tokenizer FILE (the tokenizer.json of the new reader)');
}

/**
 * Loads the reader to train, all parameters trainable: from a checkpoint (`reader`) or freshly
 * initialised from a T5 config (`initConfig`, with `tokenizer`). The tokenizer's ids must fit
 * the model's vocabulary.
 */
export async function loadTrainableReader(cfg: Pick<ReaderTrainConfig, 'reader' | 'initConfig' | 'tokenizer' | 'initSeed'>): Promise<TrainableReader> {
  checkReaderSource(cfg);
  let t5: T5Model;
  let configJson: string;
  let tokPath: string;
  if (cfg.initConfig) {
    const raw = readJsonFile(cfg.initConfig);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new GrerankError(`${cfg.initConfig}: expected a JSON object (a T5 config.json)`);
    const full: Record<string, unknown> = { architectures: ['T5ForConditionalGeneration'], model_type: 't5', is_encoder_decoder: true, ...(raw as Record<string, unknown>) };
    const config = parseT5Config(full, cfg.initConfig);
    t5 = T5Model.fromStateDict(config, initT5StateDict(config, cfg.initSeed), { trainable: true, legacyCrossBias: false });
    configJson = JSON.stringify(full, null, 2) + '\n';
    tokPath = cfg.tokenizer!;
  } else {
    const dir = cfg.reader!;
    readConfig(dir); // one-line error for a missing or invalid config.json
    t5 = await T5Model.load(dir, { trainable: true });
    configJson = readFileSync(join(dir, 'config.json'), 'utf8');
    tokPath = cfg.tokenizer ?? dir;
  }
  try {
    const tokenizer = loadTokenizer(tokPath);
    if (tokenizer.vocabSize > t5.config.vocabSize) {
      throw new GrerankError(`${tokenizer.file}: ${tokenizer.vocabSize} tokens do not fit the reader's vocabulary of ${t5.config.vocabSize} (vocab_size)`);
    }
    const tokenizerJson = readFileSync(tokenizer.file, 'utf8');
    return { reader: new FidReader(t5), tokenizer, tokenizerJson, configJson, sourceDir: cfg.initConfig ? undefined : cfg.reader };
  } catch (e) {
    t5.dispose();
    throw e;
  }
}

/**
 * Saves a reader as a Hugging Face directory: model.safetensors (checkpoint names and layouts),
 * config.json, tokenizer.json, and the source checkpoint's other side files.
 */
export function saveReader(out: string, r: TrainableReader): void {
  const extra = { 'config.json': r.configJson, 'tokenizer.json': r.tokenizerJson };
  if (r.sourceDir) {
    saveModelDir(out, r.sourceDir, r.reader.t5.params.toRaw(), extra);
    return;
  }
  // From scratch: no side files to copy; an empty directory stands in for the source.
  const empty = mkdtempSync(join(tmpdir(), 'grerank-empty-'));
  try {
    saveModelDir(out, empty, r.reader.t5.params.toRaw(), extra);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
}

export interface ReaderTrainResult {
  steps: number;
  skipped: number;
  history: ReaderStepStats[];
  outDir: string;
  /** The trained reader, when asked for with `keep` (the caller disposes it). */
  trained?: TrainableReader;
}

/**
 * Fine-tunes a FiD reader on training-format data (all passages, teacher forcing) and writes it
 * to `out` as a Hugging Face directory, with out/train-reader-config.json beside the weights.
 */
export async function trainReader(
  cfg: ReaderTrainConfig,
  onStep?: (s: ReaderStepStats, total: number) => void,
  opts: { keep?: boolean } = {},
): Promise<ReaderTrainResult> {
  checkReaderSource(cfg);
  if (!Number.isInteger(cfg.batchSize) || cfg.batchSize < 1) throw new GrerankError(`--batch-size must be a positive integer, got ${cfg.batchSize}`);
  const { examples } = await readExamples(cfg.data, { limit: cfg.limit });
  if (examples.length === 0) throw new GrerankError(`${cfg.data}: no examples`);
  const short = examples.find((ex) => ex.ctxs.length < cfg.encode.nPassages);
  if (short) throw new GrerankError(`${cfg.data}: example ${short.id} has ${short.ctxs.length} passages, but --n-passages is ${cfg.encode.nPassages}`);
  // The output directory is replaced as a whole: refuse one that is not a model directory.
  if (existsSync(cfg.out) && (!statSync(cfg.out).isDirectory() || (readdirSync(cfg.out).length > 0 && !existsSync(join(cfg.out, 'config.json'))))) {
    throw new GrerankError(`${cfg.out}: exists and is not a model directory (it would be replaced); choose another --out`);
  }
  const loaded = await loadTrainableReader(cfg);
  const perEpoch = Math.ceil(examples.length / cfg.batchSize);
  const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
  const trainer = new ReaderTrainer(loaded.reader, {
    schedule: { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule },
    clipNorm: cfg.clipNorm,
    adamw: { weightDecay: cfg.weightDecay },
  });
  const targetRng = new Rng(cfg.seed + 29);
  const history: ReaderStepStats[] = [];
  try {
    let done = 0;
    for (let epoch = 0; done < total; epoch++) {
      const order = epochOrder(examples.length, cfg.seed, epoch);
      for (let s = 0; s < order.length && done < total; s += cfg.batchSize) {
        const idx = order.slice(s, s + cfg.batchSize);
        const batch = await encodeReaderBatch(idx.map((i) => examples[i]!), loaded.tokenizer, cfg.encode, targetRng);
        const stats = trainer.trainStep(batch);
        history.push(stats);
        done++;
        onStep?.(stats, total);
      }
    }
    saveReader(cfg.out, loaded);
    writeFileSync(join(cfg.out, 'train-reader-config.json'), JSON.stringify(cfg, null, 2) + '\n');
    return { steps: trainer.step, skipped: trainer.skippedSteps, history, outDir: cfg.out, ...(opts.keep ? { trained: loaded } : {}) };
  } catch (e) {
    if (opts.keep) loaded.reader.dispose();
    throw e;
  } finally {
    trainer.dispose();
    if (!opts.keep) loaded.reader.dispose();
  }
}
