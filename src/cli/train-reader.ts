import { Command, Option } from 'commander';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { Progress } from '../obs/progress.js';
import { READER_TRAIN_DEFAULTS, trainReader, type ReaderTrainConfig } from '../train/reader.js';
import { action } from './run.js';
import { intArg, numberArg } from './options.js';

export function registerTrainReader(program: Command): void {
  const d = READER_TRAIN_DEFAULTS;
  program
    .command('train-reader')
    .description('fine-tune a FiD reader (all passages, teacher forcing, every parameter trained), or train one from a fresh initialisation')
    .option('--config <file>', 'JSON file with any of the options below (keys as in train-reader-config.json; flags override it)')
    .option('--reader <dir>', 'reader to fine-tune: Hugging Face T5 directory with tokenizer.json')
    .option('--init-config <file>', 'instead of --reader: a T5 config.json to initialise a new reader from (needs --tokenizer)')
    .option('--tokenizer <file>', "tokenizer.json (or a directory with one): the new reader's, or one replacing the checkpoint's")
    .option('--init-seed <n>', `seed of the fresh initialisation [${d.initSeed}]`, intArg('--init-seed', 0))
    .option('--data <file>', 'training data: JSON lines or a JSON array of {question, answers|target, ctxs}')
    .option('--out <dir>', 'where the trained reader goes (a Hugging Face directory; replaced if it exists)')
    .option('--steps <n>', `optimizer updates (0 = --epochs passes) [${d.steps}]`, intArg('--steps', 0))
    .option('--epochs <n>', `passes over the data when --steps is 0 [${d.epochs}]`, intArg('--epochs', 1))
    .option('--batch-size <n>', `questions per update [${d.batchSize}]`, intArg('--batch-size', 1))
    .option('--n-passages <n>', `passages per question (the first n of ctxs) [${d.encode.nPassages}]`, intArg('--n-passages', 1))
    .option('--text-maxlength <n>', `tokens per passage [${d.encode.passageMaxLength}]`, intArg('--text-maxlength', 4))
    .option('--answer-maxlength <n>', `target tokens, </s> included [${d.encode.answerMaxLength}]`, intArg('--answer-maxlength', 2))
    .option('--lr <x>', `peak learning rate (AdamW) [${d.lr}]`, numberArg('--lr', { min: 0 }))
    .option('--warmup-steps <n>', `linear warm-up [${d.warmupSteps}]`, intArg('--warmup-steps', 0))
    .option('--weight-decay <x>', `AdamW weight decay [${d.weightDecay}]`, numberArg('--weight-decay', { min: 0 }))
    .option('--clip-norm <x>', `global gradient-norm clip, 0 = off [${d.clipNorm}]`, numberArg('--clip-norm', { min: 0 }))
    .addOption(new Option('--schedule <kind>', `learning-rate schedule [${d.schedule}]`).choices(['linear', 'constant']))
    .option('--seed <n>', `seed of the data order and the target choice [${d.seed}]`, intArg('--seed', 0))
    .option('--limit <n>', 'use only the first n examples', intArg('--limit', 1))
    .option('--log-every <n>', `steps between log lines when not on a terminal [${d.logEvery}]`, intArg('--log-every', 1))
    .addOption(new Option('--log-format <fmt>', 'progress as text or JSON lines').choices(['text', 'json']).default('text'))
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .action(
      action(async (o: Record<string, unknown>) => {
        const fromFile = o.config ? (readJsonFile(o.config as string) as Partial<ReaderTrainConfig>) : {};
        const cfg = { ...d, ...fromFile, encode: { ...d.encode, ...fromFile.encode } } as ReaderTrainConfig;
        const flags = ['reader', 'initConfig', 'tokenizer', 'initSeed', 'data', 'out', 'steps', 'epochs', 'batchSize', 'lr', 'warmupSteps', 'weightDecay', 'clipNorm', 'schedule', 'seed', 'limit', 'logEvery'] as const;
        for (const k of flags) if (o[k] !== undefined) (cfg as unknown as Record<string, unknown>)[k] = o[k];
        if (o.nPassages !== undefined) cfg.encode.nPassages = o.nPassages as number;
        if (o.textMaxlength !== undefined) cfg.encode.passageMaxLength = o.textMaxlength as number;
        if (o.answerMaxlength !== undefined) cfg.encode.answerMaxLength = o.answerMaxlength as number;
        for (const k of ['data', 'out'] as const) if (!cfg[k]) throw new GrerankError(`--${k} is required (or set "${k}" in --config)`);
        if (!cfg.reader && !cfg.initConfig) throw new GrerankError('--reader DIR or --init-config CONFIG.json is required');
        await initBackend(o.backend as BackendChoice);
        const t0 = performance.now();
        let examples = 0;
        let calls = 0;
        let progress: Progress | undefined;
        const result = await trainReader(cfg, (s, total) => {
          progress ??= new Progress('train-reader', total, { every: cfg.logEvery, format: o.logFormat as 'text' | 'json' });
          examples += s.examples;
          const secs = (performance.now() - t0) / 1000;
          const fields: Record<string, number | string> = { step: s.step, loss: s.loss, lr: s.lr, 'ex/s': examples / secs };
          if (s.skipped) fields.skipped = 'yes';
          progress.update(++calls, fields);
        });
        process.stderr.write(`trained the reader ${result.steps} steps (${result.skipped} skipped) in ${((performance.now() - t0) / 1000).toFixed(1)} s; wrote ${cfg.out}\n`);
      }),
    );
}
