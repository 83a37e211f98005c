import * as tf from '@tensorflow/tfjs-core';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { evaluate, EVAL_DEFAULTS, type EvalOptions } from '../src/eval/evaluate.js';
import { formatMetricTable, formatTable } from '../src/eval/table.js';
import { normalizeAnswer } from '../src/eval/metrics.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { parseT5Config } from '../src/models/t5.js';
import { initT5StateDict } from '../src/models/t5-init.js';
import { FidReader } from '../src/models/fid.js';
import { greedyDecode } from '../src/models/generate.js';
import { encodeReaderPassages } from '../src/train/reader.js';
import { copyModelDir, grerank, removeDir, tempDir } from './helpers/cli.js';
import { CHECKPOINTS } from './helpers/shared.js';
import { t5TestTokenizerJson } from './helpers/tokenizers.js';

const work = tempDir();
afterAll(() => removeDir(work));

const p = (gold: boolean, hasAnswer: boolean, i: number) => ({ title: `film ${i}`, text: `film ${i} was directed by person ${i}`, gold, has_answer: hasAnswer });

/**
 * Three questions whose gold positions are known (file order = retriever order):
 * q0: 6 candidates, gold 1 (indirect) and 4 (has the answer);
 * q1: 6 candidates, gold 0, 2 (indirect) and 5 (has the answer);
 * q2: 5 candidates, gold 3 only (has the answer): no indirect passage.
 */
const RECORDS = [
  { id: 'q0', question: 'who directed film 1?', answers: ['person 1'], ctxs: [0, 1, 2, 3, 4, 5].map((i) => p(i === 1 || i === 4, i === 4, i)) },
  { id: 'q1', question: 'who directed film 2?', answers: ['person 2'], ctxs: [0, 1, 2, 3, 4, 5].map((i) => p(i === 0 || i === 2 || i === 5, i === 5, i)) },
  { id: 'q2', question: 'who directed film 3?', answers: ['person 3'], ctxs: [0, 1, 2, 3, 4].map((i) => p(i === 3, i === 3, i)) },
];

const dcg = (...ranks: number[]) => ranks.reduce((s, r) => s + 1 / Math.log2(r + 1), 0);

/** Hand-computed, k = 3, for the retriever order 0, 1, 2, ...: */
const RETRIEVER_K3 = {
  // q0: gold at ranks 2, 5; q1: gold at ranks 1, 3, 6; q2: gold at rank 4.
  'R@3': (1 / 2 + 2 / 3 + 0) / 3,
  'NDCG@3': (dcg(2) / dcg(1, 2) + dcg(1, 3) / dcg(1, 2, 3) + 0) / 3,
  MRR: (1 / 2 + 1 + 1 / 4) / 3,
  // Indirect: q0 {1} at rank 2; q1 {0, 2} at ranks 1, 3; q2 has none (excluded).
  'indirect R@3': (1 + 1) / 2,
  'indirect NDCG@3': (dcg(2) / dcg(1) + dcg(1, 3) / dcg(1, 2)) / 2,
  'indirect MRR': (1 / 2 + 1) / 2,
};

function expectMetrics(actual: Record<string, number | null>, want: Record<string, number>): void {
  for (const [k, v] of Object.entries(want)) {
    expect(actual[k], k).not.toBeNull();
    expect(actual[k]!, k).toBeCloseTo(v, 10);
  }
}

const OPTS = (over: Partial<EvalOptions>): EvalOptions => ({ ...EVAL_DEFAULTS, data: '', ranker: { kind: 'baseline', name: 'retriever-order' }, ...over });

describe('ranking metrics of grerank eval on hand-built rankings', () => {
  const data = join(work, 'hand.jsonl');
  writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n');

  it('retriever order: Recall, NDCG, MRR over gold and over indirect passages', async () => {
    const r = await evaluate(OPTS({ data, k: 3 }));
    expectMetrics(r.metrics, RETRIEVER_K3);
    expect(r.counts).toEqual({ questions: 3, 'with gold': 3, 'with indirect': 2 });
    expect(r.questions.map((q) => q.gold)).toEqual([[1, 4], [0, 2, 5], [3]]);
    expect(r.questions.map((q) => q.indirect)).toEqual([[1], [0, 2], []]);
    expect(r.questions[2]!.metrics['indirect MRR']).toBeNull();
  });

  it("Algorithm 2's weights file: the ranking is the sort of the learned weights", async () => {
    // q0 ranked 4, 1, 0, ...: both gold in the top 2. q1 ranked 3, 4, 5, 0, 1, 2. q2 ranked 3 first.
    const weights = [
      { id: 'q0', weights: [0.3, 0.5, 0.1, 0.0, 0.9, -1] },
      { id: 'q1', weights: [0.2, 0.1, 0.0, 0.9, 0.8, 0.7] },
      { id: 'q2', weights: [0, 0, 0, 5, 0] },
    ];
    const file = join(work, 'weights.json');
    writeFileSync(file, JSON.stringify(weights));
    const r = await evaluate(OPTS({ data, k: 3, ranker: { kind: 'weights', file } }));
    expect(r.questions.map((q) => q.ranking)).toEqual([[4, 1, 0, 2, 3, 5], [3, 4, 5, 0, 1, 2], [3, 0, 1, 2, 4]]);
    expectMetrics(r.metrics, {
      'R@3': (1 + 1 / 3 + 1) / 3,
      'NDCG@3': (1 + dcg(3) / dcg(1, 2, 3) + 1) / 3,
      MRR: (1 + 1 / 3 + 1) / 3,
      // q0's indirect {1} at rank 2; q1's {0, 2} at ranks 4, 6.
      'indirect R@3': (1 + 0) / 2,
      'indirect NDCG@3': (dcg(2) / dcg(1) + 0) / 2,
      'indirect MRR': (1 / 2 + 1 / 4) / 2,
    });
    // k = 1: only the first-ranked passage counts.
    const k1 = await evaluate(OPTS({ data, k: 1, ranker: { kind: 'weights', file } }));
    expectMetrics(k1.metrics, { 'R@1': (1 / 2 + 0 + 1) / 3, 'NDCG@1': (1 + 0 + 1) / 3 });
  });

  it('retrieval_rank, when every candidate has one, is the retriever order', async () => {
    const file = join(work, 'ranked.jsonl');
    // q0 with its candidates listed in reverse: retrieval_rank restores the order above.
    const q0 = { ...RECORDS[0]!, ctxs: RECORDS[0]!.ctxs.map((c, i) => ({ ...c, retrieval_rank: i })).reverse() };
    writeFileSync(file, JSON.stringify(q0) + '\n');
    const r = await evaluate(OPTS({ data: file, k: 3 }));
    expect(r.questions[0]!.ranking).toEqual([5, 4, 3, 2, 1, 0]);
    expectMetrics(r.metrics, { 'R@3': 1 / 2, MRR: 1 / 2, 'indirect R@3': 1 });
  });

  it('the random baseline is seeded', async () => {
    const a = await evaluate(OPTS({ data, ranker: { kind: 'baseline', name: 'random' }, seed: 3 }));
    const b = await evaluate(OPTS({ data, ranker: { kind: 'baseline', name: 'random' }, seed: 3 }));
    expect(a.questions.map((q) => q.ranking)).toEqual(b.questions.map((q) => q.ranking));
    expect(a.questions.every((q) => [...q.ranking].sort().join() === [...Array(q.candidates).keys()].join())).toBe(true);
  });

  it('grerank eval prints the table and writes the JSON with the same metric names', () => {
    const out = join(work, 'res', 'retriever.json');
    const r = grerank(['eval', '--baseline', 'retriever-order', '--data', data, '--k', '3', '--setting', 'mining', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.setting).toBe('mining');
    expect(json.k).toBe(3);
    expectMetrics(json.metrics, RETRIEVER_K3);
    expect(json.questions).toHaveLength(3);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`mining setting, ${data}, top-3`);
    expect(lines[1]).toMatch(/^metric \(%\)\s+retriever-order$/);
    for (const name of Object.keys(json.metrics)) {
      const row = lines.find((l) => l.startsWith(name + ' '));
      expect(row, name).toBeDefined();
      expect(row!.trim().split(/\s+/).pop()).toBe((100 * json.metrics[name]).toFixed(1));
    }
    expect(lines.find((l) => l.startsWith('with indirect'))).toMatch(/\s2$/);
    expect(r.stderr).toMatch(/eval 3\/3 eta/);

    // Several saved results side by side.
    const out2 = join(work, 'res', 'random.json');
    expect(grerank(['eval', '--baseline', 'random', '--data', data, '--k', '3', '--setting', 'mining', '--out', out2]).code).toBe(0);
    const c = grerank(['eval', '--compare', out, out2]);
    expect(c.code, c.stderr).toBe(0);
    const rows = c.stdout.trim().split('\n');
    expect(rows[1]).toMatch(/^metric \(%\)\s+retriever-order\s+random$/);
    expect(rows.find((l) => l.startsWith('MRR '))!.trim().split(/\s+/)[1]).toBe((100 * RETRIEVER_K3.MRR).toFixed(1));
    const notResults = grerank(['eval', '--compare', data]);
    expect(notResults.stderr.trim()).toMatch(/^error: .*hand\.jsonl:2:1: invalid JSON/);
    const wrong = join(work, 'res', 'other.json');
    writeFileSync(wrong, JSON.stringify({ metrics: {} }));
    expect(grerank(['eval', '--compare', wrong]).stderr.trim()).toBe(`error: ${wrong}: not a results file of \`grerank eval --out\` (no "method" and "metrics")`);
  });
});

describe('the table formatter', () => {
  it('aligns text left and numbers right, and compares methods side by side', () => {
    expect(formatTable(['name', 'x'], [['a', 1.5], ['bbb', null]])).toBe('name       x\n----  ------\na     1.5000\nbbb        -\n');
    const t = formatMetricTable(
      [
        { name: 'G-Rerank', metrics: { 'R@5': 0.819, MRR: 0.959 }, counts: { questions: 100 } },
        { name: 'EMDR', metrics: { 'R@5': 0.788, EM: 0.583 }, counts: { questions: 100 } },
      ],
      { title: 'HotpotQA' },
    );
    expect(t).toBe(
      ['HotpotQA', 'metric (%)  G-Rerank  EMDR', '----------  --------  ----', 'R@5             81.9  78.8', 'MRR             95.9     -', 'EM                 -  58.3', 'questions        100   100', ''].join('\n'),
    );
  });
});

describe('reranker and generator settings on tiny models', () => {
  const WORDS = 'question title context query document who directed film born city the was in by where of person'.split(' ');
  // The reranker: the tiny reference checkpoint, scored as RankT5 with token 10.
  const model = copyModelDir(join(CHECKPOINTS, 't5-fid-tiny'), (f) => f !== 'pytorch_model.bin');
  writeFileSync(join(model, 'tokenizer.json'), t5TestTokenizerJson(WORDS));
  // The reader: a randomly initialised T5 with the tokenizer's 61 pieces as vocabulary and an untied
  // LM head (the tiny checkpoint, and a tied random T5, answer every question with </s> or <pad>).
  const readerDir = tempDir('grerank-reader-');
  const cfg = { vocab_size: 64, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 2, num_heads: 4, tie_word_embeddings: false, model_type: 't5' };
  writeFileSync(join(readerDir, 'config.json'), JSON.stringify(cfg));
  writeSafetensors(join(readerDir, 'model.safetensors'), initT5StateDict(parseT5Config(cfg), 5).tensors, { format: 'pt' });
  writeFileSync(join(readerDir, 'tokenizer.json'), t5TestTokenizerJson(WORDS));
  afterAll(() => {
    removeDir(model);
    removeDir(readerDir);
  });
  const data = join(work, 'hand-model.jsonl');
  writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n');

  beforeAll(async () => {
    await initBackend('wasm', { quiet: true });
  });

  it('scores with RankT5 in batches (the batch size does not change the scores) and answers from the top-k passages', async () => {
    const base = OPTS({ data, k: 2, ranker: { kind: 'reranker', dir: model, rankT5TokenId: 10 }, reader: readerDir, generate: true, maxAnswerTokens: 6, passageMaxLength: 24 });
    const one = await evaluate({ ...base, batchSize: 1 });
    const live = tf.memory().numTensors;
    const three = await evaluate({ ...base, batchSize: 3 });
    // Models are released and nothing a batch creates outlives it.
    expect(tf.memory().numTensors).toBe(live);
    for (let q = 0; q < 3; q++) {
      const a = one.questions[q]!;
      const b = three.questions[q]!;
      expect(a.scores).toHaveLength(RECORDS[q]!.ctxs.length);
      for (let i = 0; i < a.scores!.length; i++) expect(Math.abs(a.scores![i]! - b.scores![i]!)).toBeLessThan(1e-4);
      expect(b.ranking).toEqual([...b.ranking].sort((x, y) => b.scores![y]! - b.scores![x]! || x - y));
      expect(b.prediction).toBe(a.prediction);
    }
    for (const key of ['EM', 'SubEM', 'F1']) {
      expect(three.metrics[key], key).not.toBeNull();
      expect(three.metrics[key]!).toBeGreaterThanOrEqual(0);
      expect(three.metrics[key]!).toBeLessThanOrEqual(1);
    }
    expect(three.questions.some((q) => normalizeAnswer(q.prediction!) !== '')).toBe(true);
    // Each prediction is the reader's greedy answer from exactly the top-k passages, in ranked order.
    const reader = await FidReader.load(readerDir);
    const tok = loadTokenizer(readerDir);
    for (const [i, q] of three.questions.entries()) {
      const ex = RECORDS[i]!;
      const inputs = await encodeReaderPassages([{ question: ex.question, passages: q.ranking.slice(0, 2).map((j) => ex.ctxs[j]!) }], tok, 2, 24);
      const enc = reader.encodePassages(tf.tensor3d(inputs.ids, [1, 2, 24], 'int32'), tf.tensor3d(inputs.mask, [1, 2, 24], 'int32'));
      expect(await tok.decode(greedyDecode(reader.t5, enc, { maxLength: 6 })[0]!)).toBe(q.prediction);
    }
    reader.dispose();
    // Answer metrics: with the predictions as the gold answers, EM and SubEM are 1 (F1 too, where the answer has a token).
    const echoed = join(work, 'echo.jsonl');
    writeFileSync(echoed, RECORDS.map((r, i) => JSON.stringify({ ...r, answers: [three.questions[i]!.prediction] })).join('\n') + '\n');
    const echo = await evaluate({ ...base, data: echoed, batchSize: 3 });
    expect(echo.metrics.EM).toBe(1);
    expect(echo.metrics.SubEM).toBe(1);
    for (const q of echo.questions) expect(q.metrics.F1).toBe(normalizeAnswer(q.prediction!) === '' ? 0 : 1);
  });

  it('grerank eval --generate runs end to end and reports EM, SubEM and F1', () => {
    const out = join(work, 'gen.json');
    const r = grerank(['eval', '--reranker', model, '--rankt5-token-id', '10', '--reader', readerDir, '--data', data, '--k', '2', '--generate', '--batch-size', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--max-answer-tokens', '8', '--out', out, '--name', 'tiny-rankt5', '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(Object.keys(json.metrics)).toEqual(['R@2', 'NDCG@2', 'MRR', 'indirect R@2', 'indirect NDCG@2', 'indirect MRR', 'EM', 'SubEM', 'F1']);
    expect(json.method).toBe('tiny-rankt5');
    expect(json.questions.every((q: { prediction: unknown }) => typeof q.prediction === 'string')).toBe(true);
    expect(r.stdout).toMatch(/^EM\s+\d+\.\d$/m);
    expect(r.stdout).toMatch(/^F1\s+\d+\.\d$/m);
    const events = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ event: 'eval', done: 3, total: 3 });
  });
});

describe('grerank eval: bad input', () => {
  const lines = (r: { stderr: string }) => r.stderr.trim().split('\n').filter((l) => !l.startsWith('[grerank]'));
  const data = join(work, 'bad-hand.jsonl');
  writeFileSync(data, RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n');

  it('rejects unlabelled data, missing or conflicting rankers, --generate without a reader, and weights of other questions', () => {
    const raw = join(work, 'unlabelled.jsonl');
    writeFileSync(raw, JSON.stringify({ question: 'q?', answers: ['a'], ctxs: [{ title: 't', text: 'x' }] }) + '\n');
    const r1 = grerank(['eval', '--baseline', 'retriever-order', '--data', raw]);
    expect(r1.code).toBe(1);
    expect(lines(r1)).toEqual([`error: ${raw}: no relevance labels (no passage has a "gold" flag); convert the raw data with \`grerank prepare\`, which adds gold, has_answer and indirect`]);
    expect(lines(grerank(['eval', '--data', data]))).toEqual(['error: one of --reranker DIR, --weights FILE or --baseline retriever-order|random is required']);
    expect(lines(grerank(['eval', '--baseline', 'random', '--weights', 'w.json', '--data', data]))).toEqual(['error: give only one of --weights, --baseline']);
    expect(lines(grerank(['eval', '--baseline', 'random', '--data', data, '--generate']))).toEqual(['error: --generate needs --reader DIR (the FiD reader that answers from the top-k passages)']);
    const w = join(work, 'other-weights.json');
    writeFileSync(w, JSON.stringify([{ id: 'q0', weights: [0, 0, 0, 0, 0, 0] }]));
    expect(lines(grerank(['eval', '--weights', w, '--data', data]))).toEqual([`error: ${w}: no weights for question "q1" of ${data} (Algorithm 2 ranks the questions it was trained on)`]);
    expect(lines(grerank(['eval', '--weights', w, '--data', data, '--limit', '1', '--n-passages', '4']))).toEqual([`error: ${w}: question "q0" has 6 weights but --n-passages is 4`]);
    const missing = join(work, 'nope.jsonl');
    expect(lines(grerank(['eval', '--baseline', 'random', '--data', missing]))).toEqual([`error: ${missing}: no such file`]);
    const bad = grerank(['eval', '--baseline', 'sorted', '--data', data]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("argument 'sorted' is invalid");
  });
});
