#!/usr/bin/env node
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerInspect } from './inspect.js';
import { registerSynth } from './synth.js';
import { registerPrepare } from './prepare.js';
import { registerTrain } from './train.js';
import { registerDemo } from './demo.js';
import { registerEval } from './eval.js';
import { registerTrainReader } from './train-reader.js';
import { registerExport } from './export.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command();
program
  .name('grerank')
  .description('Train rerankers end to end with Gumbel Reranking (G-Rerank) against a frozen Fusion-in-Decoder reader')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)');

registerInspect(program);
registerSynth(program);
registerPrepare(program);
registerTrain(program);
registerEval(program);
registerDemo(program);
registerTrainReader(program);
registerExport(program);

await program.parseAsync(process.argv);
