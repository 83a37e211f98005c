#!/usr/bin/env node
// Tokenisation throughput (examples/s): encodeBatch in the main thread vs TokenizePool (piscina
// worker threads, src/data/pool.ts) with 1, 2, .. threads, on FiD-sized batches (20 passages x
// 250 reader tokens, RankT5 pairs up to 512 tokens) with the real T5 tokenizer. Text: the shared
// HotpotQA sample converted with `grerank prepare`, consecutive paragraphs joined into passages
// of ~250 tokens; synthetic text when the sample is absent. The pool keeps `--depth` batches in
// flight per thread, as a trainer that prefetches batch t+1 during step t does.
//
//   npm run bench:tokenize
//   node bench/tokenize.mjs --threads 1,2,4 --batch 4 --seconds 5 --json
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeBatch } from '../dist/data/encode.js';
import { TokenizePool } from '../dist/data/pool.js';
import { prepare } from '../dist/data/prepare/prepare.js';
import { loadTokenizer } from '../dist/io/tokenizer.js';
import { Rng } from '../dist/util/rng.js';
import { parseArgs, round, table, usage } from './lib.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.GRERANK_SHARED ?? resolve(REPO, '../shared');

const SPEC = {
  tokenizer: { type: 'string', default: join(SHARED, 'tokenizers/t5/tokenizer.json'), help: 'tokenizer.json (reader and RankT5 pairs)' },
  data: { type: 'string', default: join(SHARED, 'datasets/hotpotqa/hotpot_dev_distractor_v1.first53.json'), help: 'raw HotpotQA file for the text' },
  batch: { type: 'number', default: 4, help: 'questions per batch' },
  n: { type: 'number', default: 20, help: 'passages per question' },
  'passage-len': { type: 'number', default: 250, help: 'reader tokens per passage' },
  'pair-len': { type: 'number', default: 512, help: 'reranker tokens per pair' },
  threads: { type: 'list', default: ['1', '2'], help: 'pool sizes' },
  depth: { type: 'number', default: 2, help: 'batches in flight per pool thread' },
  seconds: { type: 'number', default: 4, help: 'timed seconds per mode (after 2 warm-up batches)' },
  json: { type: 'boolean', default: false, help: 'one JSON object per mode per line' },
  help: { type: 'boolean', default: false },
};

const args = parseArgs(process.argv.slice(2), SPEC);
if (args.help) {
  console.log(`node bench/tokenize.mjs [options]\n${usage(SPEC)}`);
  process.exit(0);
}

/** Passages of ~charsPerPassage characters from the converted sample (or synthetic). */
async function loadText() {
  const paras = [];
  const questions = [];
  if (existsSync(args.data)) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-tokenize-'));
    const out = join(dir, 'hotpot.jsonl');
    await prepare({ from: 'hotpotqa', input: args.data, output: out, seed: 0, nCandidates: 10, skipInvalid: true, progress: null });
    for (const line of readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
      const ex = JSON.parse(line);
      questions.push({ question: ex.question, answers: ex.answers, target: ex.target });
      for (const c of ex.ctxs) paras.push(c);
    }
    rmSync(dir, { recursive: true, force: true });
    return { source: `${args.data} (prepare, ${questions.length} questions, ${paras.length} paragraphs)`, paras, questions };
  }
  const rng = new Rng(1);
  const words = 'the of and in a was to is by for on as with from that his at an it were which also first city film born american known its'.split(' ');
  const text = (k) => Array.from({ length: k }, () => words[rng.int(words.length)]).join(' ');
  for (let i = 0; i < 500; i++) paras.push({ title: text(2), text: text(80) });
  for (let i = 0; i < 50; i++) questions.push({ question: `${text(12)}?`, answers: [text(2)], target: text(2) });
  return { source: 'synthetic text', paras, questions };
}

const { source, paras, questions } = await loadText();
const CHARS = 1300; // ~250-300 T5 tokens of English Wikipedia text
let cursor = 0;
function passage() {
  const first = paras[cursor++ % paras.length];
  let text = first.text;
  while (text.length < CHARS) text += ' ' + paras[cursor++ % paras.length].text;
  return { title: first.title, text };
}
const examples = questions.map((q, i) => ({ id: String(i), ...q, ctxs: Array.from({ length: args.n }, passage) }));
const spec = { nPassages: args.n, passageMaxLength: args['passage-len'], pairMaxLength: args['pair-len'], answerMaxLength: 32 };
let next = 0;
function nextBatch() {
  const idx = Array.from({ length: args.batch }, () => next++ % examples.length);
  return { exs: idx.map((i) => examples[i]), idx };
}

const tok = loadTokenizer(args.tokenizer);
let tokensPerBatch = 0;

/** Runs `submit` with up to `inFlight` batches outstanding for `seconds`; returns examples/s. */
async function measure(inFlight, submit) {
  for (let i = 0; i < 2; i++) await submit(nextBatch());
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  let done = 0;
  const loop = async () => {
    while (performance.now() - t0 < args.seconds * 1000) {
      const b = await submit(nextBatch());
      tokensPerBatch = b.passageMask.reduce((s, v) => s + v, 0) + b.pairMask.reduce((s, v) => s + v, 0);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const s = (performance.now() - t0) / 1000;
  // Main-thread event-loop utilisation: the share of the time the training thread is busy
  // (JS string building and padding, the tokenizer's result conversion) rather than free to step.
  const elu = performance.eventLoopUtilization(elu0).utilization;
  return { batches: done, seconds: s, examplesPerSec: (done * args.batch) / s, msPerBatch: (1000 * s) / done, mainBusy: elu, mainMsPerBatch: (elu * 1000 * s) / done };
}

const results = [];
const main = await measure(1, ({ exs, idx }) => encodeBatch(exs, idx, tok, { kind: 'rankt5', tokenizer: tok }, spec));
results.push({ mode: 'main thread', threads: 0, ...main });
for (const t of args.threads.map(Number)) {
  const pool = new TokenizePool({ reader: args.tokenizer, threads: t });
  const r = await measure(t * args.depth, ({ exs, idx }) => pool.encode(exs, idx, spec, 'rankt5'));
  await pool.close();
  results.push({ mode: `pool`, threads: t, ...r });
}

const base = results[0].examplesPerSec;
if (args.json) {
  for (const r of results) {
    console.log(JSON.stringify({ bench: 'tokenize', ...r, speedup: r.examplesPerSec / base, batch: args.batch, ...spec, cpus: cpus().length, tokenizersParallelism: process.env.TOKENIZERS_PARALLELISM ?? null, tokensPerBatch, source }));
  }
} else {
  console.log(`tokenize: batch ${args.batch} x ${args.n} passages, reader ${spec.passageMaxLength} + RankT5 pairs <= ${spec.pairMaxLength} tokens, ${tokensPerBatch} real tokens/batch; ${cpus().length} CPUs; TOKENIZERS_PARALLELISM=${process.env.TOKENIZERS_PARALLELISM ?? '(unset)'}; ${source}`);
  console.log(
    table(
      ['mode', 'threads', 'batches', 'ms/batch', 'examples/s', 'speedup', 'main busy', 'main ms/batch'],
      results.map((r) => [r.mode, r.threads || '-', r.batches, round(r.msPerBatch, 1), round(r.examplesPerSec, 1), `${round(r.examplesPerSec / base, 2)}x`, `${round(100 * r.mainBusy, 0)}%`, round(r.mainMsPerBatch, 1)]),
    ),
  );
}
