import { Option, type Command } from 'commander';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { buildShippedReader, DEMO_DEFAULTS, DEMO_METHODS, runDemo, type DemoMethod, type DemoOptions } from '../demo/demo.js';
import { GrerankError } from '../errors.js';
import { Progress } from '../obs/progress.js';
import { action } from './run.js';
import { intArg } from './options.js';

/** Settings of `--quick`: a smoke test of every stage in a couple of minutes. */
const QUICK: Partial<DemoOptions> = { readerQuestions: 400, trainQuestions: 120, testQuestions: 40, readerSteps: 150, readerBatchSize: 4, rerankerSteps: 20 };

export function registerDemo(program: Command): void {
  const d = DEMO_DEFAULTS;
  program
    .command('demo')
    .description('the embedded default: synthetic multi-hop QA, a small FiD reader, G-Rerank and the EMDR/PDist/LOOP/ADist baselines trained on 2 CPU workers, one table (no downloads, no GPU)')
    .option('--out <dir>', 'run directory (a rerun resumes and reuses what it holds)', 'runs/demo')
    .option('--quick', `a much smaller run for a smoke test (${Object.entries(QUICK).map(([k, v]) => `${k} ${v}`).join(', ')})`)
    .option('--seed <n>', `seed of data and weights [${d.seed}]`, intArg('--seed', 0))
    .option('--reader-questions <n>', `synthetic training questions, all of which the reader learns from [${d.readerQuestions}]`, intArg('--reader-questions', 1))
    .option('--train-questions <n>', `the first n of them train the rerankers [${d.trainQuestions}]`, intArg('--train-questions', 1))
    .option('--test-questions <n>', `synthetic test questions [${d.testQuestions}]`, intArg('--test-questions', 1))
    .option('--reader-renamed-steps <n>', `the reader's second stage: steps on questions with renamed entities and chain questions (0: none) [${d.readerRenamedSteps}]`, intArg('--reader-renamed-steps', 0))
    .option('--reader-batch-size <n>', `questions per reader update [${d.readerBatchSize}]`, intArg('--reader-batch-size', 1))
    .option('--reader-steps <n>', `reader training steps when no matching reader is shipped or cached [${d.readerSteps}]`, intArg('--reader-steps', 1))
    .addOption(new Option('--reranker-init <from>', `the untrained reranker's weights: the reader's T5 (RankT5's recipe) or random [${d.rerankerInit}]`).choices(['reader', 'random']))
    .option('--reranker-steps <n>', `training steps of every method (the same budget) [${d.rerankerSteps}]`, intArg('--reranker-steps', 1))
    .option('--batch-size <n>', `questions per worker and step [${d.batchSize}]`, intArg('--batch-size', 1))
    .option('--workers <n>', `CPU worker processes of each training job (and parallel evaluations) [${d.workers}]`, intArg('--workers', 1))
    .option('--methods <list>', `comma-separated, from ${Object.keys(DEMO_METHODS).join(',')} [all]`)
    .option('--metrics-port <port>', 'Prometheus endpoint of the training jobs [a free port, printed]', intArg('--metrics-port', 0))
    .option('--eval-limit <n>', 'evaluate on the first n test questions only', intArg('--eval-limit', 1))
    .option('--no-generate', 'ranking metrics only: the reader does not answer (faster)')
    .option('--reader <dir>', "a reader trained elsewhere on this demo's tokenizer (Hugging Face T5 directory, any shape), instead of the shipped or cached one")
    .option('--build-reader', 'train the demo reader of these settings into assets/demo-reader (what the repository ships) and stop')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .addHelpText('after', '\nEvery training job runs through launcher/start.js with --cpu-workers; see docs/demo.md.')
    .action(
      action(async (o: Record<string, unknown>) => {
        await initBackend(o.backend as BackendChoice);
        const methods = o.methods === undefined ? d.methods : (o.methods as string).split(',').map((m) => m.trim()).filter(Boolean);
        for (const m of methods) if (!(m in DEMO_METHODS)) throw new GrerankError(`--methods: unknown method "${m}" (choose from ${Object.keys(DEMO_METHODS).join(', ')})`);
        const given = (k: string) => (o[k] === undefined ? {} : { [k]: o[k] });
        const bars = new Map<string, Progress>();
        const opts: DemoOptions = {
          ...d,
          ...(o.quick ? QUICK : {}),
          ...given('seed'),
          ...given('readerQuestions'),
          ...given('trainQuestions'),
          ...given('testQuestions'),
          ...given('readerSteps'),
          ...given('readerRenamedSteps'),
          ...given('readerBatchSize'),
          ...given('rerankerSteps'),
          ...given('rerankerInit'),
          ...given('batchSize'),
          ...given('workers'),
          ...given('metricsPort'),
          ...given('evalLimit'),
          ...given('reader'),
          generate: o.generate !== false,
          methods: methods as DemoMethod[],
          backend: o.backend as string,
          out: o.out as string,
          log: (line) => process.stderr.write(`[demo] ${line}\n`),
          onStep: (phase, done, total, fields) => {
            let bar = bars.get(phase);
            if (!bar) bars.set(phase, (bar = new Progress(phase, total, { every: Math.max(1, Math.round(total / 10)) })));
            bar.update(done, fields);
          },
        };
        const t0 = performance.now();
        if (o.buildReader && o.reader !== undefined) throw new GrerankError('--build-reader trains the demo reader; it cannot be combined with --reader');
        if (o.buildReader) {
          const dir = await buildShippedReader(opts);
          process.stderr.write(`[demo] wrote ${dir} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
          return;
        }
        const r = await runDemo(opts);
        process.stdout.write(`\n${r.table}\n`);
        process.stdout.write(`results: ${r.resultsFile}\ncurves:  ${r.curvesFile}\n`);
        process.stderr.write(`[demo] done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      }),
    );
}
