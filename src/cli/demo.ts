import type { Command } from 'commander';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { DEMO_DEFAULTS, runDemo } from '../demo/demo.js';
import { GrerankError } from '../errors.js';
import { Progress } from '../obs/progress.js';
import { action } from './run.js';

function int(name: string): (v: string) => number {
  return (v: string) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) throw new GrerankError(`${name} must be a positive integer, got "${v}"`);
    return x;
  };
}

export function registerDemo(program: Command): void {
  const d = DEMO_DEFAULTS;
  program
    .command('demo')
    .description('the embedded default: synthetic multi-hop QA, a reader trained from scratch, G-Rerank, evaluation (no downloads, no GPU)')
    .option('--out <dir>', 'run directory', 'runs/demo')
    .option('--quick', 'a much smaller run (about a minute), for a smoke test')
    .option('--seed <n>', `seed of data and weights [${d.seed}]`, (v) => Number(v))
    .option('--train-questions <n>', `synthetic training questions [${d.trainQuestions}]`, int('--train-questions'))
    .option('--test-questions <n>', `synthetic test questions [${d.testQuestions}]`, int('--test-questions'))
    .option('--reader-steps <n>', `reader training steps (reused when unchanged) [${d.readerSteps}]`, int('--reader-steps'))
    .option('--reranker-steps <n>', `G-Rerank steps [${d.rerankerSteps}]`, int('--reranker-steps'))
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .action(
      action(async (o: Record<string, unknown>) => {
        await initBackend(o.backend as BackendChoice);
        const quick = o.quick ? { trainQuestions: 120, testQuestions: 40, readerSteps: 150, rerankerSteps: 40 } : {};
        const pick = <T>(v: unknown, dflt: T): T => (v === undefined ? dflt : (v as T));
        const opts = {
          ...d,
          ...quick,
          out: o.out as string,
          seed: pick(o.seed, d.seed),
          ...(o.trainQuestions !== undefined && { trainQuestions: o.trainQuestions as number }),
          ...(o.testQuestions !== undefined && { testQuestions: o.testQuestions as number }),
          ...(o.readerSteps !== undefined && { readerSteps: o.readerSteps as number }),
          ...(o.rerankerSteps !== undefined && { rerankerSteps: o.rerankerSteps as number }),
        };
        const bars = new Map<string, Progress>();
        const t0 = performance.now();
        const r = await runDemo({
          ...opts,
          log: (line) => process.stderr.write(`[demo] ${line}\n`),
          onStep: (phase, done, total, fields) => {
            let bar = bars.get(phase);
            if (!bar) bars.set(phase, (bar = new Progress(phase, total, { every: Math.max(1, Math.round(total / 10)) })));
            bar.update(done, fields);
          },
        });
        process.stdout.write(`\n${r.table}\n`);
        process.stdout.write(`results: ${r.resultsFile}\ncurves:  ${r.curvesFile}\n`);
        process.stderr.write(`[demo] done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      }),
    );
}
