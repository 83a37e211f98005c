import { Command, Option } from 'commander';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { BASELINES, EVAL_DEFAULTS, EVAL_SETTINGS, evaluate, formatResults, type Baseline, type EvalResult, type EvalSetting, type RankerSource } from '../eval/evaluate.js';
import { Progress } from '../obs/progress.js';
import { action } from './run.js';
import { intArg } from './options.js';

interface EvalFlags {
  reranker?: string;
  weights?: string;
  baseline?: Baseline;
  rankt5TokenId?: number;
  reader?: string;
  data?: string;
  k: number;
  setting: EvalSetting;
  generate?: boolean;
  out?: string;
  name?: string;
  batchSize: number;
  limit?: number;
  nPassages?: number;
  pairMaxlength: number;
  textMaxlength: number;
  maxAnswerTokens: number;
  seed: number;
  logEvery?: number;
  logFormat: 'text' | 'json';
  backend: string;
  compare?: string[];
}

/** A results file written by --out (only what the table needs is checked). */
function readResult(file: string): EvalResult {
  const r = readJsonFile(file) as Partial<EvalResult> | null;
  if (!r || typeof r !== 'object' || typeof r.method !== 'string' || !r.metrics || typeof r.metrics !== 'object') {
    throw new GrerankError(`${file}: not a results file of \`grerank eval --out\` (no "method" and "metrics")`);
  }
  return r as EvalResult;
}

/** The result as JSON: the summary indented, one line per question. */
export function resultJson(result: EvalResult): string {
  const { questions, ...head } = result;
  const lines = questions.map((q) => '    ' + JSON.stringify(q)).join(',\n');
  return JSON.stringify(head, null, 2).replace(/\n\}$/, `,\n  "questions": [\n${lines}\n  ]\n}`) + '\n';
}

export function registerEval(program: Command): void {
  const d = EVAL_DEFAULTS;
  program
    .command('eval')
    .description('evaluate a reranker (or Algorithm 2 weights, or a baseline order): Recall/NDCG/MRR@k over gold and indirect passages, optionally EM/SubEM/F1 of the reader on the top-k')
    .option('--reranker <dir>', 'reranker to evaluate: RankT5 (model_type t5) or BGE (xlm-roberta) directory')
    .option('--weights <file>', 'weights.json of `grerank train --method weights` (Algorithm 2) instead of a reranker')
    .addOption(new Option('--baseline <order>', 'rank without a model').choices([...BASELINES]))
    .option('--rankt5-token-id <id>', 'RankT5 scoring token [32089]', intArg('--rankt5-token-id', 0))
    .option('--reader <dir>', 'FiD reader (Hugging Face T5 directory with tokenizer.json); needed with --generate')
    .option('--data <file>', 'labelled data (ctxs with gold / has_answer, as `grerank prepare` writes)')
    .option('--k <n>', `passages kept (top-k) [${d.k}]`, intArg('--k', 1), d.k)
    .addOption(new Option('--setting <name>', 'which queries these are: mining = training queries, reranker = test queries (recorded only)').choices([...EVAL_SETTINGS]).default(d.setting))
    .option('--generate', 'generator setting: the reader answers from the top-k passages (greedy) -> EM, SubEM, F1')
    .option('--out <file>', 'write the results as JSON (metric names as in the table)')
    .option('--name <label>', 'name of the method in the table and the JSON')
    .option('--batch-size <n>', `questions per forward pass [${d.batchSize}]`, intArg('--batch-size', 1), d.batchSize)
    .option('--limit <n>', 'evaluate only the first n questions', intArg('--limit', 1))
    .option('--n-passages <n>', 'candidates per question: the first n of ctxs [all; weights: as many as learned]', intArg('--n-passages', 1))
    .option('--pair-maxlength <n>', `reranker tokens per (query, passage) pair [${d.pairMaxLength}]`, intArg('--pair-maxlength', 4), d.pairMaxLength)
    .option('--text-maxlength <n>', `reader tokens per passage [${d.passageMaxLength}]`, intArg('--text-maxlength', 4), d.passageMaxLength)
    .option('--max-answer-tokens <n>', `greedy decoding limit [${d.maxAnswerTokens}]`, intArg('--max-answer-tokens', 1), d.maxAnswerTokens)
    .option('--seed <n>', `seed of the random baseline [${d.seed}]`, intArg('--seed', 0), d.seed)
    .option('--log-every <n>', 'batches between progress lines when not on a terminal [about 20 lines in all]', intArg('--log-every', 1))
    .addOption(new Option('--log-format <fmt>', 'progress as text or JSON lines').choices(['text', 'json']).default('text'))
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--compare <results...>', 'print one table comparing saved results (JSON files of --out) and exit')
    .addHelpText(
      'after',
      `
Exactly one of --reranker, --weights, --baseline. The table (stdout) shows percentages; the
JSON holds fractions in [0, 1], null where a metric is undefined (e.g. no question has an
indirectly relevant passage), plus each question's ranking. See docs/evaluation.md.
`,
    )
    .action(
      action(async (o: EvalFlags) => {
        if (o.compare) {
          process.stdout.write(formatResults(o.compare.map(readResult)));
          return;
        }
        const given = [o.reranker && '--reranker', o.weights && '--weights', o.baseline && '--baseline'].filter(Boolean);
        if (given.length !== 1) throw new GrerankError(given.length ? `give only one of ${given.join(', ')}` : 'one of --reranker DIR, --weights FILE or --baseline retriever-order|random is required');
        if (!o.data) throw new GrerankError('--data is required');
        const ranker: RankerSource = o.reranker
          ? { kind: 'reranker', dir: o.reranker, ...(o.rankt5TokenId !== undefined ? { rankT5TokenId: o.rankt5TokenId } : {}) }
          : o.weights
            ? { kind: 'weights', file: o.weights }
            : { kind: 'baseline', name: o.baseline! };
        if (ranker.kind === 'reranker' || o.generate) await initBackend(o.backend as BackendChoice);
        let progress: Progress | undefined;
        const result = await evaluate(
          {
            data: o.data,
            ranker,
            reader: o.reader,
            k: o.k,
            setting: o.setting,
            generate: Boolean(o.generate),
            batchSize: o.batchSize,
            limit: o.limit,
            nPassages: o.nPassages,
            pairMaxLength: o.pairMaxlength,
            passageMaxLength: o.textMaxlength,
            maxAnswerTokens: o.maxAnswerTokens,
            seed: o.seed,
            name: o.name,
          },
          (p) => {
            const batches = Math.ceil(p.total / o.batchSize);
            progress ??= new Progress('eval', p.total, { every: o.logEvery ?? Math.max(1, Math.ceil(batches / 20)), format: o.logFormat });
            progress.update(p.done, p.running);
          },
        );
        process.stdout.write(formatResults([result]));
        if (o.out) {
          mkdirSync(dirname(o.out), { recursive: true });
          const tmp = `${o.out}.tmp-${process.pid}`;
          writeFileSync(tmp, resultJson(result));
          renameSync(tmp, o.out);
        }
        process.stderr.write(`evaluated ${result.counts.questions} questions in ${result.seconds.toFixed(1)} s${o.out ? `; wrote ${o.out}` : ''}\n`);
      }),
    );
}
