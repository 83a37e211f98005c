import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSynth, writeSynth } from '../data/synth.js';
import { wordTokenizerJson } from '../data/vocab-tokenizer.js';
import { evaluate, EVAL_DEFAULTS, type EvalResult } from '../eval/evaluate.js';
import { formatResults } from '../eval/evaluate.js';
import { saveModelDir } from '../io/export.js';
import { tokenizerFromJson } from '../io/tokenizer.js';
import { initT5StateDict, t5Config } from '../models/t5-init.js';
import { trainReader, READER_TRAIN_DEFAULTS } from '../train/reader.js';
import { trainReranker, TRAIN_DEFAULTS } from '../train/run.js';
import type { StepStats } from '../train/step.js';
import { writeCurvesSvg } from './curves.js';

/** The embedded default: sizes chosen to finish in minutes on 2 CPU cores. */
export interface DemoOptions {
  out: string;
  seed: number;
  trainQuestions: number;
  testQuestions: number;
  readerSteps: number;
  rerankerSteps: number;
  batchSize: number;
  dModel: number;
  layers: number;
  /** Candidates per question and passages the reader sees. */
  candidates: number;
  k: number;
  log?: (line: string) => void;
  onStep?: (phase: string, done: number, total: number, fields: Record<string, number>) => void;
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'out'> = {
  seed: 0,
  trainQuestions: 1000,
  testQuestions: 200,
  readerSteps: 1500,
  rerankerSteps: 300,
  batchSize: 4,
  dModel: 64,
  layers: 2,
  candidates: 20,
  k: 5,
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

/**
 * The whole pipeline on data it makes itself: a synthetic multi-hop benchmark, a word-level
 * tokenizer, a small FiD reader trained from scratch on it (all passages, teacher forcing), a
 * RankT5-style reranker initialised untrained, G-Rerank training of the reranker against the
 * frozen reader, and evaluation of the untrained and trained rerankers (ranking, indirectly
 * relevant passages, and the reader's answers from the reranked top-k).
 * Stages whose output already exists with the same settings are reused (the reader above all).
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? (() => {});
  mkdirSync(o.out, { recursive: true });
  const data = join(o.out, 'data');
  const settings = JSON.stringify({ ...o, log: undefined, onStep: undefined, out: undefined });

  // 1. Data and tokenizer.
  const synth = generateSynth({ seed: o.seed, train: o.trainQuestions, dev: 0, test: o.testQuestions, candidates: o.candidates });
  writeSynth(data, synth);
  const tokJson = wordTokenizerJson([...synth.vocab, ...TEMPLATE_WORDS], [SCORE_TOKEN]);
  const tok = tokenizerFromJson(tokJson);
  const tokFile = join(o.out, 'tokenizer.json');
  writeFileSync(tokFile, tokJson);
  log(`data: ${o.trainQuestions} training and ${o.testQuestions} test questions, ${o.candidates} candidates each, vocabulary ${tok.vocabSize} (${data})`);

  // 2. Model configuration shared by reader and reranker (T5 v1.0, tied embeddings).
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

  // 3. The reader: trained from scratch on the training questions with all passages.
  const readerDir = join(o.out, 'reader');
  const readerStamp = join(o.out, 'reader.settings.json');
  const readerSettings = JSON.stringify({ settings, hfConfig });
  if (existsSync(join(readerDir, 'model.safetensors')) && existsSync(readerStamp) && readFileSync(readerStamp, 'utf8') === readerSettings) {
    log(`reader: reusing ${readerDir}`);
  } else {
    log(`reader: training a FiD reader from scratch (d_model ${cfg.dModel}, ${cfg.numLayers}+${cfg.numLayers} layers) for ${o.readerSteps} steps`);
    await trainReader(
      {
        ...READER_TRAIN_DEFAULTS,
        initConfig,
        tokenizer: tokFile,
        data: join(data, 'train.jsonl'),
        out: readerDir,
        steps: o.readerSteps,
        batchSize: o.batchSize,
        encode: { nPassages: o.candidates, passageMaxLength: PASSAGE_LEN, answerMaxLength: ANSWER_LEN },
        lr: 1e-3,
        warmupSteps: Math.round(o.readerSteps / 20),
        seed: o.seed,
        initSeed: o.seed + 1,
      },
      (s, total) => o.onStep?.('reader', s.step, total, { loss: s.loss }),
    );
    writeFileSync(readerStamp, readerSettings);
  }

  // 4. The reranker, initialised untrained (RankT5 architecture, scoring token in the vocabulary).
  const scoreToken = tok.tokenToId(SCORE_TOKEN)!;
  const rerankerInit = join(o.out, 'reranker-untrained');
  const init = initT5StateDict(cfg, o.seed + 2);
  saveModelDir(rerankerInit, o.out, init.tensors, { 'config.json': JSON.stringify(hfConfig, null, 2) + '\n', 'tokenizer.json': tokJson });

  // 5. G-Rerank.
  log(`reranker: G-Rerank for ${o.rerankerSteps} steps (k ${o.k}, tau 0.5, kappa 1)`);
  const history: StepStats[] = [];
  const gumbelOut = join(o.out, 'gumbel');
  await trainReranker(
    {
      ...TRAIN_DEFAULTS,
      reader: readerDir,
      reranker: rerankerInit,
      rankT5TokenId: scoreToken,
      data: join(data, 'train.jsonl'),
      out: gumbelOut,
      steps: o.rerankerSteps,
      batchSize: o.batchSize,
      encode: { nPassages: o.candidates, passageMaxLength: PASSAGE_LEN, pairMaxLength: PAIR_LEN, answerMaxLength: ANSWER_LEN },
      lr: 1e-3,
      warmupSteps: Math.round(o.rerankerSteps / 10),
      gumbel: { k: o.k, tau: 0.5, kappa: 1.0 },
      seed: o.seed,
    },
    (s, total) => {
      history.push(s);
      o.onStep?.('g-rerank', history.length, total, { loss: s.loss, max_weight: s.maxWeight ?? NaN });
    },
  );

  // 6. Evaluation on the test questions (reranker setting) with the reader's answers.
  const results: EvalResult[] = [];
  const test = join(data, 'test.jsonl');
  const common = { ...EVAL_DEFAULTS, data: test, reader: readerDir, k: o.k, generate: true, pairMaxLength: PAIR_LEN, passageMaxLength: PASSAGE_LEN, batchSize: 8 };
  for (const [name, ranker] of [
    ['retriever order', { kind: 'baseline', name: 'retriever-order' }],
    ['untrained reranker', { kind: 'reranker', dir: rerankerInit, rankT5TokenId: scoreToken }],
    ['G-Rerank', { kind: 'reranker', dir: join(gumbelOut, 'reranker'), rankT5TokenId: scoreToken }],
  ] as const) {
    log(`eval: ${name}`);
    results.push(await evaluate({ ...common, ranker: ranker as never, name }, (p) => o.onStep?.(`eval ${name}`, p.done, p.total, {})));
  }
  const table = formatResults(results);
  const resultsFile = join(o.out, 'results.json');
  writeFileSync(
    resultsFile,
    JSON.stringify(results.map((r) => ({ method: r.method, setting: r.setting, k: r.k, metrics: r.metrics, counts: r.counts })), null, 2) + '\n',
  );
  const curvesFile = join(o.out, 'curves.svg');
  writeCurvesSvg(curvesFile, [
    { title: 'G-Rerank: reader loss', values: history.map((s) => s.loss) },
    { title: 'G-Rerank: max sampling weight', values: history.map((s) => s.maxWeight ?? NaN) },
  ]);
  return { results, table, resultsFile, curvesFile };
}
