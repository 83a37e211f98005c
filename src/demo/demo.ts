import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth, writeSynth, type SynthExample, type SynthNamePools } from '../data/synth.js';
import { wordTokenizerJson } from '../data/vocab-tokenizer.js';
import { GrerankError } from '../errors.js';
import { formatResults, type EvalResult } from '../eval/evaluate.js';
import { saveModelDir } from '../io/export.js';
import { readSafetensors } from '../io/safetensors.js';
import { tokenizerFromJson } from '../io/tokenizer.js';
import { initT5StateDict, t5Config } from '../models/t5-init.js';
import type { T5Config } from '../models/t5.js';
import { trainReader, READER_TRAIN_DEFAULTS } from '../train/reader.js';
import { writeCurvesSvg } from './curves.js';
import { readerTrainingLines } from './reader-data.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LAUNCHER = join(ROOT, 'launcher', 'start.js');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
/** A reader trained by `grerank demo --build-reader` with the default settings, shipped so that the first run needs no reader training. */
export const SHIPPED_READER = join(ROOT, 'assets', 'demo-reader');

/** The methods the demo trains, in table order (the labels are the paper's names). */
export const DEMO_METHODS = { gumbel: 'G-Rerank', emdr: 'EMDR', pdist: 'PDist', loop: 'LOOP', adist: 'ADist' } as const;
export type DemoMethod = keyof typeof DEMO_METHODS;

/** The embedded default: sizes chosen to finish in about ten minutes on 2 CPU cores. */
export interface DemoOptions {
  out: string;
  seed: number;
  /** Training questions of the benchmark: the reader learns from all of them. */
  readerQuestions: number;
  /** The first n of them are the rerankers' training data (train.jsonl). */
  trainQuestions: number;
  testQuestions: number;
  /** Reader training steps, when no matching trained reader is at hand. */
  readerSteps: number;
  /** Questions per reader update. */
  readerBatchSize: number;
  /** Passages per question the reader is trained with: the gold ones plus look-alike and random distractors. */
  readerPassages: number;
  /**
   * The reader's second stage: steps on the same questions with every question's entities renamed
   * (nothing to memorise) plus a chain question per birthplace question (reader-data.ts), starting
   * from the first stage's reader. 0: no second stage.
   */
  readerRenamedSteps: number;
  /**
   * A reader trained elsewhere (a Hugging Face T5 directory on this demo's tokenizer, e.g. by
   * scripts/reader-probe on a GPU), used instead of the shipped or cached one; any T5 shape.
   */
  reader?: string;
  /**
   * Where the untrained reranker's weights come from: the reader's T5 (as RankT5 starts from a
   * pretrained T5, with no ranking training) or random.
   */
  rerankerInit: 'reader' | 'random';
  /** Training steps of every reranker method (the same budget for all). */
  rerankerSteps: number;
  /** Questions per worker and step (the global batch is batchSize × workers). */
  batchSize: number;
  /** Data-parallel CPU worker processes (launcher --cpu-workers); also parallel evaluations. */
  workers: number;
  methods: DemoMethod[];
  /** Prometheus endpoint of the training jobs (0: a free port). */
  metricsPort: number;
  dModel: number;
  layers: number;
  /** Candidates per question and passages the reader sees. */
  candidates: number;
  k: number;
  backend: string;
  /** Evaluate only the first n test questions (all when undefined). */
  evalLimit?: number;
  /** Let the reader answer from each top-k (EM, F1): the slow part of the evaluation. */
  generate: boolean;
  log?: (line: string) => void;
  onStep?: (phase: string, done: number, total: number, fields: Record<string, number>) => void;
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'out'> = {
  seed: 0,
  readerQuestions: 20000,
  trainQuestions: 2000,
  testQuestions: 200,
  readerSteps: 5000,
  readerBatchSize: 16,
  readerPassages: 6,
  readerRenamedSteps: 0,
  rerankerInit: 'reader',
  rerankerSteps: 150,
  batchSize: 2,
  workers: 2,
  methods: ['gumbel', 'emdr', 'pdist', 'loop', 'adist'],
  metricsPort: 0,
  dModel: 64,
  layers: 2,
  candidates: 20,
  k: 5,
  backend: 'auto',
  generate: true,
};

/** RankT5's scoring token, added to the demo vocabulary. */
const SCORE_TOKEN = '<extra_id_10>';
const TEMPLATE_WORDS = ['question', 'title', 'context', 'query', 'document'];
/** Token lengths that fit the synthetic texts (questions <= 14 words, passages <= 16). */
const PASSAGE_LEN = 48;
const PAIR_LEN = 40;
const ANSWER_LEN = 8;

export interface DemoResult {
  results: EvalResult[];
  table: string;
  resultsFile: string;
  curvesFile: string;
}

/** The data, tokenizer and model configuration every stage shares. */
interface DemoSetup {
  data: string;
  /** All training questions (the reader's data). */
  readerTrain: readonly SynthExample[];
  /** The world's name pools (renamed reader data). */
  names: SynthNamePools;
  /** The test questions (the evaluation data). */
  test: readonly SynthExample[];
  /** The T5 configuration of the reader and the reranker. */
  t5: T5Config;
  tokFile: string;
  tokJson: string;
  hfConfig: Record<string, unknown>;
  initConfig: string;
  scoreToken: number;
  /** What a trained reader depends on (compared with a reader's reader.settings.json). */
  readerSettings: string;
  /** The same for the reader's first stage (equal to readerSettings without a second stage). */
  readerFirstSettings: string;
}

function setup(o: DemoOptions): DemoSetup {
  mkdirSync(o.out, { recursive: true });
  const data = join(o.out, 'data');
  if (o.trainQuestions > o.readerQuestions) throw new GrerankError(`--train-questions (${o.trainQuestions}) cannot exceed the reader's ${o.readerQuestions} training questions`);
  const synth = generateSynth({ seed: o.seed, train: o.readerQuestions, dev: 0, test: o.testQuestions, candidates: o.candidates });
  writeSynth(data, { ...synth, splits: { ...synth.splits, train: synth.splits.train.slice(0, o.trainQuestions) } });
  const tokJson = wordTokenizerJson([...synth.vocab, ...TEMPLATE_WORDS], [SCORE_TOKEN]);
  const tok = tokenizerFromJson(tokJson);
  const tokFile = join(o.out, 'tokenizer.json');
  writeFileSync(tokFile, tokJson);
  const vocabSize = Math.ceil(tok.vocabSize / 8) * 8;
  const cfg = t5Config({ vocabSize, dModel: o.dModel, dKv: o.dModel / 4, dFf: o.dModel * 4, numLayers: o.layers, numHeads: 4 });
  const hfConfig = {
    architectures: ['T5ForConditionalGeneration'], model_type: 't5', vocab_size: vocabSize, d_model: cfg.dModel, d_kv: cfg.dKv, d_ff: cfg.dFf,
    num_layers: cfg.numLayers, num_decoder_layers: cfg.numDecoderLayers, num_heads: cfg.numHeads, relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6, feed_forward_proj: 'relu', tie_word_embeddings: true,
    decoder_start_token_id: 0, pad_token_id: 0, eos_token_id: 1, dropout_rate: 0.0, is_encoder_decoder: true,
  };
  const initConfig = join(o.out, 't5-config.json');
  writeFileSync(initConfig, JSON.stringify(hfConfig, null, 2) + '\n');
  log(o)(`data: ${o.trainQuestions} training and ${o.testQuestions} test questions, ${o.candidates} candidates each, vocabulary ${tok.vocabSize} (${data})`);
  const readerFirstSettings = JSON.stringify({
    data: { seed: o.seed, train: o.readerQuestions, test: o.testQuestions, candidates: o.candidates },
    tokenizer: tokJson.length,
    hfConfig,
    readerSteps: o.readerSteps,
    batchSize: o.readerBatchSize,
    passages: o.readerPassages,
    distractors: 'look-alikes 3/4, random 1/4',
  });
  const readerSettings =
    o.readerRenamedSteps === 0
      ? readerFirstSettings
      : JSON.stringify({ first: JSON.parse(readerFirstSettings), renamed: { steps: o.readerRenamedSteps, lr: RENAMED_LR, chain: true } });
  return { data, readerTrain: synth.splits.train, names: synth.names, test: synth.splits.test, t5: cfg, tokFile, tokJson, hfConfig, initConfig, scoreToken: tok.tokenToId(SCORE_TOKEN)!, readerSettings, readerFirstSettings };
}

const log = (o: DemoOptions) => o.log ?? (() => {});

function readerMatches(dir: string, settings: string): boolean {
  const stamp = join(dir, 'reader.settings.json');
  return existsSync(join(dir, 'model.safetensors')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === settings;
}

/** The second stage's learning rate: half the first's, as it starts from a trained reader. */
const RENAMED_LR = 5e-4;

/** The first stage: a reader trained from scratch (gold passages and distractors, teacher forcing) into `dir`. */
async function buildFirstStage(o: DemoOptions, s: DemoSetup, dir: string): Promise<void> {
  log(o)(`reader: training a FiD reader from scratch (d_model ${o.dModel}, ${o.layers}+${o.layers} layers) on ${o.readerQuestions} questions for ${o.readerSteps} steps`);
  const file = join(o.out, 'reader-train.jsonl');
  writeFileSync(file, readerTrainingLines(s.readerTrain, { passages: o.readerPassages, seed: o.seed + 5 }));
  await trainReader(
    {
      ...READER_TRAIN_DEFAULTS,
      initConfig: s.initConfig,
      tokenizer: s.tokFile,
      data: file,
      out: dir,
      steps: o.readerSteps,
      batchSize: o.readerBatchSize,
      encode: { nPassages: o.readerPassages, passageMaxLength: PASSAGE_LEN, answerMaxLength: ANSWER_LEN },
      lr: 1e-3,
      warmupSteps: Math.round(o.readerSteps / 20),
      seed: o.seed,
      initSeed: o.seed + 1,
    },
    (st, total) => o.onStep?.('reader', st.step, total, { loss: st.loss }),
  );
  writeFileSync(join(dir, 'reader.settings.json'), s.readerFirstSettings);
}

/** The second stage: the first stage's reader trained on from `first` into `dir` with renamed and chain questions. */
async function buildRenamedStage(o: DemoOptions, s: DemoSetup, first: string, dir: string): Promise<void> {
  log(o)(`reader: training it on with renamed entities and chain questions for ${o.readerRenamedSteps} steps`);
  const file = join(o.out, 'reader-train-renamed.jsonl');
  writeFileSync(file, readerTrainingLines(s.readerTrain, { passages: o.readerPassages, seed: o.seed + 5, names: s.names, chain: true }));
  await trainReader(
    {
      ...READER_TRAIN_DEFAULTS,
      reader: first,
      data: file,
      out: dir,
      steps: o.readerRenamedSteps,
      batchSize: o.readerBatchSize,
      encode: { nPassages: o.readerPassages, passageMaxLength: PASSAGE_LEN, answerMaxLength: ANSWER_LEN },
      lr: RENAMED_LR,
      warmupSteps: Math.round(o.readerRenamedSteps / 20),
      seed: o.seed + 7,
    },
    (st, total) => o.onStep?.('reader (renamed)', st.step, total, { loss: st.loss }),
  );
  writeFileSync(join(dir, 'reader.settings.json'), s.readerSettings);
}

/** Trains the reader of these settings into `dir`, reusing a first stage cached in the run directory. */
async function buildReader(o: DemoOptions, s: DemoSetup, dir: string): Promise<void> {
  if (o.readerRenamedSteps === 0) return buildFirstStage(o, s, dir);
  const first = join(o.out, 'reader-first');
  if (readerMatches(first, s.readerFirstSettings)) log(o)(`reader: reusing the first stage ${first}`);
  else await buildFirstStage(o, s, first);
  await buildRenamedStage(o, s, first, dir);
}

/** Checks that `dir` is a reader the demo can use: model, config, and this demo's exact tokenizer. */
function checkGivenReader(dir: string, s: DemoSetup): void {
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json'])
    if (!existsSync(join(dir, f))) throw new GrerankError(`--reader ${dir}: no ${f} (expected a Hugging Face T5 directory)`);
  // Token ids are the data's contract: a reader on another vocabulary would read other words.
  if (readFileSync(join(dir, 'tokenizer.json'), 'utf8') !== s.tokJson)
    throw new GrerankError(`--reader ${dir}: its tokenizer.json is not this demo's ${s.tokFile} (a reader for other --seed or --reader-questions?)`);
}

/** The reader: one given with --reader, the shipped one or the run's cached one when their settings match, else trained now. */
async function reader(o: DemoOptions, s: DemoSetup): Promise<string> {
  if (o.reader !== undefined) {
    checkGivenReader(o.reader, s);
    const c = JSON.parse(readFileSync(join(o.reader, 'config.json'), 'utf8')) as Record<string, unknown>;
    log(o)(`reader: using ${o.reader} (d_model ${c.d_model}, ${c.num_layers}+${c.num_decoder_layers ?? c.num_layers} layers)`);
    return o.reader;
  }
  if (readerMatches(SHIPPED_READER, s.readerSettings)) {
    log(o)(`reader: using the shipped reader ${SHIPPED_READER} (rebuild: grerank demo --build-reader)`);
    return SHIPPED_READER;
  }
  const dir = join(o.out, 'reader');
  if (readerMatches(dir, s.readerSettings)) log(o)(`reader: reusing ${dir}`);
  else await buildReader(o, s, dir);
  return dir;
}

/** The reader of these settings (shipped, cached in the run directory, or trained now): its directory. */
export async function demoReader(o: DemoOptions): Promise<string> {
  return reader(o, setup(o));
}

/** `grerank demo --build-reader`: trains the reader of these settings into assets/demo-reader. */
export async function buildShippedReader(o: DemoOptions): Promise<string> {
  const s = setup(o);
  await buildReader(o, s, SHIPPED_READER);
  return SHIPPED_READER;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer().once('error', reject).listen(0, () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolvePort(p));
    });
  });
}

/** Runs a child `node` process; calls `onLine` with each stderr line; resolves with the exit code. */
function runNode(args: string[], onLine: (line: string) => void): Promise<number> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let buf = '';
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (buf) onLine(buf);
      done(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15));
    });
  });
}

/** One step of the rank-0 log of a training job. */
interface Point {
  step: number;
  loss: number;
  maxWeight?: number;
}

/**
 * Trains `method` with the real data-parallel runtime: the launcher, `o.workers` CPU workers,
 * the ZeroMQ ring all-reduce, rank 0's Prometheus endpoint and checkpoints (a stopped demo
 * resumes where it stopped). Returns rank 0's per-step curve.
 */
async function trainMethod(o: DemoOptions, s: DemoSetup, readerDir: string, rerankerInit: string, method: DemoMethod, port: number): Promise<Point[]> {
  const out = join(o.out, method);
  const curveFile = join(out, 'curve.json');
  const args = [
    LAUNCHER, '--cpu-workers', String(o.workers), '--metrics-port', String(port), '--max-restarts', '1',
    '--reader', readerDir, '--reranker', rerankerInit, '--rankt5-token-id', String(s.scoreToken), '--method', method,
    '--data', join(s.data, 'train.jsonl'), '--out', out, '--steps', String(o.rerankerSteps), '--batch-size', String(o.batchSize),
    '--n-passages', String(o.candidates), '--k', String(o.k), '--tau', '0.5', '--kappa', '1',
    '--text-maxlength', String(PASSAGE_LEN), '--pair-maxlength', String(PAIR_LEN), '--answer-maxlength', String(ANSWER_LEN),
    '--lr', '1e-3', '--warmup-steps', String(Math.round(o.rerankerSteps / 10)), '--seed', String(o.seed),
    '--save-every', String(Math.max(1, Math.round(o.rerankerSteps / 5))), '--keep', '1', '--resume', 'auto',
    '--backend', o.backend, '--log-format', 'json', '--log-every', '1',
  ];
  const points: Point[] = existsSync(curveFile) ? (JSON.parse(readFileSync(curveFile, 'utf8')) as Point[]) : [];
  const tail: string[] = [];
  const code = await runNode(args, (line) => {
    if (line.startsWith('{"rank":0,')) {
      const l = JSON.parse(line) as { step: number; globalLoss: number; maxWeight?: number; total: number; 'ex/s': number };
      const p: Point = { step: l.step, loss: l.globalLoss, ...(l.maxWeight !== undefined && { maxWeight: l.maxWeight }) };
      // A resumed run repeats nothing: steps up to the checkpoint are already in the curve.
      while (points.length > 0 && points[points.length - 1]!.step >= p.step) points.pop();
      points.push(p);
      o.onStep?.(DEMO_METHODS[method], l.step, l.total, { loss: l.globalLoss, ...(l.maxWeight !== undefined && { max_w: l.maxWeight }), 'ex/s': l['ex/s'] });
    } else if (!line.startsWith('{"rank"') && line.trim()) {
      tail.push(line);
      if (/metrics: http|resumed from|restarting|stopped/.test(line)) log(o)(`${DEMO_METHODS[method]}: ${line.replace(/^\[\w+\] /, '')}`);
    }
  });
  mkdirSync(out, { recursive: true });
  writeFileSync(curveFile, JSON.stringify(points) + '\n');
  if (code !== 0) throw new GrerankError(`${DEMO_METHODS[method]} training failed (exit ${code}); rerun to resume from its last checkpoint:\n${tail.slice(-8).join('\n')}`);
  return points;
}

/**
 * Adds, to each result, the share of gold passages of each kind that its top-k holds, by
 * question type: `bridge answer R@5` (the passage with the answer), `bridge indirect R@5` (the
 * bridge passage), `comparison answer R@5`, `comparison indirect R@5`. Counted over passages,
 * not averaged per question. These tell what a reranker learned to look for.
 */
export function addKindRecall(results: EvalResult[], test: readonly SynthExample[], k: number): void {
  const byId = new Map(test.map((ex) => [ex.id, ex] as const));
  for (const r of results) {
    const hits = new Map<string, [number, number]>();
    r.questions.forEach((q) => {
      const ex = byId.get(q.id);
      if (!ex) return;
      const top = new Set(q.ranking.slice(0, k));
      ex.ctxs.slice(0, q.ranking.length).forEach((c, i) => {
        if (!c.gold) return;
        const name = `${ex.type} ${c.has_answer ? 'answer' : 'indirect'} R@${k}`;
        const h = hits.get(name) ?? [0, 0];
        hits.set(name, [h[0] + (top.has(i) ? 1 : 0), h[1] + 1]);
      });
    });
    for (const kind of ['bridge answer', 'bridge indirect', 'comparison answer', 'comparison indirect']) {
      const h = hits.get(`${kind} R@${k}`);
      r.metrics[`${kind} R@${k}`] = h && h[1] > 0 ? h[0] / h[1] : null;
    }
  }
}

/** Runs `jobs` with at most `n` at a time, keeping their order in the result. */
async function inParallel<T>(n: number, jobs: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

/**
 * The whole pipeline on data it makes itself: a synthetic multi-hop benchmark, a word-level
 * tokenizer, a small FiD reader trained from scratch on it (shipped prebuilt), a RankT5-style
 * reranker initialised untrained, then G-Rerank and the four baselines each trained with the
 * same budget by the data-parallel runtime, and the evaluation of all of them, the untrained
 * reranker and the retriever's order: ranking, indirectly relevant passages, and the reader's
 * answers from the reranked top-k.
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  for (const m of o.methods) if (!(m in DEMO_METHODS)) throw new GrerankError(`unknown demo method "${m}" (choose ${Object.keys(DEMO_METHODS).join(', ')})`);
  const s = setup(o);
  const readerDir = await reader(o, s);

  const rerankerInit = join(o.out, 'reranker-untrained');
  const tokenizer = { 'tokenizer.json': s.tokJson };
  if (o.rerankerInit === 'reader') {
    // RankT5's recipe: a T5 checkpoint plus a scoring token, no ranking training yet. The
    // reader's own config.json comes along with its weights (a given reader may have any shape).
    saveModelDir(rerankerInit, readerDir, readSafetensors(join(readerDir, 'model.safetensors')), tokenizer);
    log(o)(`reranker: RankT5-style, initialised from the reader's T5 weights (not trained for ranking)`);
  } else {
    saveModelDir(rerankerInit, o.out, initT5StateDict(s.t5, o.seed + 2).tensors, { ...tokenizer, 'config.json': JSON.stringify(s.hfConfig, null, 2) + '\n' });
    log(o)(`reranker: RankT5-style, randomly initialised`);
  }

  const port = o.metricsPort || (await freePort());
  log(o)(`training ${o.methods.length} method(s) for ${o.rerankerSteps} steps each on ${o.workers} CPU workers (global batch ${o.batchSize * o.workers}); metrics on http://localhost:${port}/metrics while each runs`);
  const curves = new Map<DemoMethod, Point[]>();
  for (const m of o.methods) curves.set(m, await trainMethod(o, s, readerDir, rerankerInit, m, port));

  // Evaluation on the test questions (reranker setting), with the reader's answers; as many in parallel as workers.
  const test = join(s.data, 'test.jsonl');
  const evalDir = join(o.out, 'eval');
  mkdirSync(evalDir, { recursive: true });
  const rankers: Array<[string, string, string[]]> = [
    ['retriever order', 'retriever-order', ['--baseline', 'retriever-order']],
    ['untrained reranker', 'untrained', ['--reranker', rerankerInit]],
    ...o.methods.map((m): [string, string, string[]] => [DEMO_METHODS[m], m, ['--reranker', join(o.out, m, 'reranker')]]),
  ];
  const results = await inParallel(
    o.workers,
    rankers.map(([name, file, which]) => async () => {
      const outFile = join(evalDir, `${file}.json`);
      const tail: string[] = [];
      const code = await runNode(
        [CLI, 'eval', ...which, '--rankt5-token-id', String(s.scoreToken), '--reader', readerDir, '--data', test, '--k', String(o.k), ...(o.generate ? ['--generate'] : []),
          ...(o.evalLimit ? ['--limit', String(o.evalLimit)] : []),
          '--pair-maxlength', String(PAIR_LEN), '--text-maxlength', String(PASSAGE_LEN), '--max-answer-tokens', String(ANSWER_LEN), '--batch-size', '8',
          '--name', name, '--out', outFile, '--backend', o.backend, '--log-format', 'json'],
        (line) => {
          if (line.startsWith('{')) {
            const p = JSON.parse(line) as { done?: number; total?: number };
            if (p.done !== undefined && p.total !== undefined) o.onStep?.(`eval ${name}`, p.done, p.total, {});
          } else if (line.trim()) tail.push(line);
        },
      );
      if (code !== 0) throw new GrerankError(`evaluation of ${name} failed (exit ${code}):\n${tail.slice(-8).join('\n')}`);
      return JSON.parse(readFileSync(outFile, 'utf8')) as EvalResult;
    }),
  );
  addKindRecall(results, s.test, o.k);
  const table = formatResults(results);
  const resultsFile = join(o.out, 'results.json');
  writeFileSync(
    resultsFile,
    JSON.stringify(results.map((r) => ({ method: r.method, setting: r.setting, k: r.k, metrics: r.metrics, counts: r.counts })), null, 2) + '\n',
  );
  const curvesFile = join(o.out, 'curves.svg');
  writeCurvesSvg(curvesFile, [
    ...o.methods.map((m) => ({ title: `${DEMO_METHODS[m]}: training loss`, values: curves.get(m)!.map((p) => p.loss) })),
    ...(curves.has('gumbel') ? [{ title: 'G-Rerank: max sampling weight', values: curves.get('gumbel')!.map((p) => p.maxWeight ?? NaN) }] : []),
  ]);
  return { results, table, resultsFile, curvesFile };
}
