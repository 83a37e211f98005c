import type { Command } from 'commander';
import { formatSynthSummary, generateSynth, MIN_CANDIDATES, SYNTH_DEFAULTS, writeSynth } from '../data/synth.js';
import { action } from './run.js';
import { intArg } from './options.js';

export function registerSynth(program: Command): void {
  const d = SYNTH_DEFAULTS;
  program
    .command('synth')
    .description('generate a synthetic multi-hop QA benchmark (bridge and comparison questions with hard distractors) in the training format')
    .requiredOption('--out <dir>', 'output directory: train.jsonl, dev.jsonl, test.jsonl, vocab.txt, stats.json')
    .option('--seed <n>', `seed of the world, the questions and the candidate order [${d.seed}]`, intArg('--seed', 0))
    .option('--train <n>', `training questions [${d.train}]`, intArg('--train', 0))
    .option('--dev <n>', `development questions [${d.dev}]`, intArg('--dev', 0))
    .option('--test <n>', `test questions [${d.test}]`, intArg('--test', 0))
    .option('--candidates <n>', `passages per question, gold included [${d.candidates}]`, intArg('--candidates', MIN_CANDIDATES))
    .addHelpText(
      'after',
      `
Each line of the .jsonl files is {id, question, target, answers, type, subtype, hops, entities,
bridge, ctxs: [{title, text, gold, has_answer, indirect}]}. Splits ask about disjoint entities of
one world. The same options always give byte-identical files. See docs/synth.md.
`,
    )
    .action(
      action(async (o: { out: string; seed?: number; train?: number; dev?: number; test?: number; candidates?: number }) => {
        const t0 = performance.now();
        const result = generateSynth({
          seed: o.seed ?? d.seed,
          train: o.train ?? d.train,
          dev: o.dev ?? d.dev,
          test: o.test ?? d.test,
          candidates: o.candidates ?? d.candidates,
        });
        const files = writeSynth(o.out, result);
        const secs = (performance.now() - t0) / 1000;
        process.stderr.write(`synth: wrote ${files.join(', ')} to ${o.out} (seed ${result.stats.seed}) in ${secs.toFixed(2)} s\n`);
        process.stderr.write(formatSynthSummary(result.stats));
      }),
    );
}
