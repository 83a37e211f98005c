import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { batchTokens, TrainingMetrics } from '../obs/metrics.js';
import { startMetricsServer, type MetricsServer } from '../obs/metrics-server.js';
import { Progress } from '../obs/progress.js';
import { EXIT_PREEMPTED } from '../train/checkpoint.js';
import { readerConfigOf, trainJoint, READER_LR_DEFAULT } from '../train/joint.js';
import { trainReader } from '../train/reader.js';
import { METHODS, normaliseAccumulation, TRAIN_DEFAULTS, TRAIN_TARGETS, trainReranker, type TrainConfig, type TrainEvalEvent, type TrainHooks, type TrainTarget } from '../train/run.js';
import { action } from './run.js';
import { intArg, numberArg } from './options.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function registerTrain(program: Command): void {
  const d = TRAIN_DEFAULTS;
  program
    .command('train')
    .description('train a reranker with Gumbel Reranking (or a baseline: emdr, pdist, loop, adist) against a frozen FiD reader, in this process')
    .option('--config <file>', 'JSON file with any of the options below (flags override it)')
    .option('--reader <dir>', 'FiD reader: Hugging Face T5 directory with tokenizer.json')
    .option('--reranker <dir>', 'reranker to train: RankT5 (model_type t5) or BGE (xlm-roberta) directory')
    .option('--rankt5-token-id <id>', `RankT5 scoring token [${d.rankT5TokenId}]`, intArg('--rankt5-token-id', 0))
    .option('--freeze-embeddings', "keep the reranker's word embeddings fixed (saves memory; BGE's table is 250k rows)")
    .option('--data <file>', 'training data: JSON lines or a JSON array of {question, answers, ctxs}')
    .option('--out <dir>', 'where the trained reranker (out/reranker) or weights (out/weights.json) go')
    .addOption(new Option('--method <name>', 'objective').choices([...METHODS]))
    .option('--steps <n>', `optimizer updates (0 = --epochs passes) [${d.steps}]`, intArg('--steps', 0))
    .option('--epochs <n>', `passes over the data when --steps is 0 [${d.epochs}]`, intArg('--epochs', 1))
    .option('--batch-size <n>', `questions per update [${d.batchSize}]`, intArg('--batch-size', 1))
    .option('--accumulation-steps <n>', 'micro-batches of --batch-size summed into one update (gradient accumulation) [1]', intArg('--accumulation-steps', 1))
    .option('--n-passages <n>', `candidates per question (top-k of n) [${d.encode.nPassages}]`, intArg('--n-passages', 1))
    .option('--text-maxlength <n>', `reader tokens per passage [${d.encode.passageMaxLength}]`, intArg('--text-maxlength', 4))
    .option('--pair-maxlength <n>', `reranker tokens per (query, passage) pair [${d.encode.pairMaxLength}]`, intArg('--pair-maxlength', 4))
    .option('--answer-maxlength <n>', `target tokens [${d.encode.answerMaxLength}]`, intArg('--answer-maxlength', 2))
    .option('--k <n>', `passages the reader sees (relaxed top-k) [${d.gumbel.k}]`, intArg('--k', 1))
    .option('--tau <x>', `Gumbel-softmax temperature [${d.gumbel.tau}]`, numberArg('--tau', { min: 1e-6 }))
    .option('--kappa <x>', `scale of the reranker scores [${d.gumbel.kappa}]`, numberArg('--kappa', { min: 0 }))
    .option('--lr <x>', `peak learning rate (AdamW) [${d.lr}]`, numberArg('--lr', { min: 0 }))
    .option('--warmup-steps <n>', `linear warm-up [${d.warmupSteps}]`, intArg('--warmup-steps', 0))
    .option('--weight-decay <x>', `AdamW weight decay [${d.weightDecay}]`, numberArg('--weight-decay', { min: 0 }))
    .option('--clip-norm <x>', `global gradient-norm clip, 0 = off [${d.clipNorm}]`, numberArg('--clip-norm', { min: 0 }))
    .addOption(new Option('--schedule <kind>', `learning-rate schedule [${d.schedule}]`).choices(['linear', 'constant']))
    .option('--temperature-score <x>', `baselines: T_s of the student softmax(w / T_s) [${d.temperatureScore}]`, numberArg('--temperature-score', { min: 1e-6 }))
    .option('--temperature-gold <x>', `baselines: T_g of the target softmax(s / T_g) [${d.temperatureGold}]`, numberArg('--temperature-gold', { min: 1e-6 }))
    .option('--seed <n>', `seed of data order and Gumbel noise [${d.seed}]`, intArg('--seed', 0))
    .option('--limit <n>', 'use only the first n examples', intArg('--limit', 1))
    .option('--log-every <n>', `steps between log lines when not on a terminal [${d.logEvery}]`, intArg('--log-every', 1))
    .addOption(new Option('--log-format <fmt>', 'progress as text or JSON lines').choices(['text', 'json']).default('text'))
    .option('--save-every <n>', 'write a checkpoint to OUT/checkpoints every n steps (0: only at the end and on SIGTERM/SIGUSR1) [0]', intArg('--save-every', 0))
    .option('--keep <n>', 'complete checkpoints kept, newest first [3]', intArg('--keep', 1))
    .option('--resume <latest|auto|dir>', 'continue from OUT/checkpoints/latest or a checkpoint directory (bit-identical to an uninterrupted run); auto: the latest if there is one, else start fresh (for requeued jobs)')
    .option('--no-checkpoints', 'write no checkpoints and ignore SIGTERM/SIGUSR1 handling')
    .addOption(new Option('--train <what>', 'reranker (against the frozen reader), reader (as train-reader, to OUT/reader) or both jointly (OUT/reranker and OUT/reader) [reranker]').choices([...TRAIN_TARGETS]))
    .option('--reader-lr <x>', `the reader's peak learning rate with --train reader|both [${READER_LR_DEFAULT}]`, numberArg('--reader-lr', { min: 0 }))
    .option('--eval-every <n>', 'evaluate the current reranker on --eval-data every n steps and at the end (0: only at the end); metrics to OUT/eval.jsonl', intArg('--eval-every', 0))
    .option('--eval-data <file>', 'labelled eval data (gold flags, from `grerank prepare`) for --eval-every')
    .option('--eval-k <n>', 'top-k of the eval metrics [5]', intArg('--eval-k', 1))
    .option('--eval-limit <n>', 'evaluate on the first n eval questions only', intArg('--eval-limit', 1))
    .option('--eval-generate', 'also let the reader answer from the top-k during evaluation (EM, SubEM, F1)')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--metrics-port <port>', 'serve Prometheus metrics of this run on http://HOST:PORT/metrics while it trains (docs/metrics.md); 0 = off [0]', intArg('--metrics-port', 0))
    .action(
      action(async (o: Record<string, unknown>) => {
        const fromFile = o.config ? (readJsonFile(o.config as string) as Partial<TrainConfig>) : {};
        const cfg: TrainConfig = {
          ...d,
          ...fromFile,
          encode: { ...d.encode, ...fromFile.encode },
          gumbel: { ...d.gumbel, ...fromFile.gumbel },
        } as TrainConfig;
        const flag = <K extends keyof TrainConfig>(key: K, value: unknown) => {
          if (value !== undefined) cfg[key] = value as TrainConfig[K];
        };
        if (o.rankt5TokenId !== undefined) cfg.rankT5TokenId = o.rankt5TokenId as number;
        if (o.freezeEmbeddings) cfg.freezeEmbeddings = true;
        for (const k of ['reader', 'reranker', 'data', 'out', 'method', 'steps', 'epochs', 'batchSize', 'lr', 'warmupSteps', 'weightDecay', 'clipNorm', 'schedule', 'seed', 'limit', 'logEvery', 'temperatureScore', 'temperatureGold'] as const) flag(k, o[k]);
        if (o.accumulationSteps !== undefined) cfg.accumulationSteps = o.accumulationSteps as number;
        normaliseAccumulation(cfg);
        if (o.nPassages !== undefined) cfg.encode.nPassages = o.nPassages as number;
        if (o.textMaxlength !== undefined) cfg.encode.passageMaxLength = o.textMaxlength as number;
        if (o.pairMaxlength !== undefined) cfg.encode.pairMaxLength = o.pairMaxlength as number;
        if (o.answerMaxlength !== undefined) cfg.encode.answerMaxLength = o.answerMaxlength as number;
        if (o.k !== undefined) cfg.gumbel.k = o.k as number;
        if (o.tau !== undefined) cfg.gumbel.tau = o.tau as number;
        if (o.kappa !== undefined) cfg.gumbel.kappa = o.kappa as number;
        if (o.train !== undefined && o.train !== 'reranker') cfg.train = o.train as TrainTarget;
        else if (o.train === 'reranker') delete cfg.train;
        if (o.readerLr !== undefined) cfg.readerLr = o.readerLr as number;
        for (const k of ['reader', 'data', 'out'] as const) if (!cfg[k]) throw new GrerankError(`--${k} is required (or set "${k}" in --config)`);
        const target: TrainTarget = cfg.train ?? 'reranker';
        if (target !== 'reranker' && cfg.accumulationSteps) throw new GrerankError(`--accumulation-steps applies to reranker training only (not --train ${target})`);
        const hooks: TrainHooks = {};
        if (o.evalEvery !== undefined || o.evalData !== undefined) {
          if (o.evalData === undefined) throw new GrerankError('--eval-every needs --eval-data FILE (labelled eval data)');
          if (target === 'reader') throw new GrerankError('--eval-every evaluates a reranker; it does not apply to --train reader');
          hooks.eval = { every: (o.evalEvery as number | undefined) ?? 0, data: o.evalData as string, k: (o.evalK as number | undefined) ?? 5, limit: o.evalLimit as number | undefined, generate: o.evalGenerate === true };
        }
        if (target === 'both' && o.resume) throw new GrerankError('--resume is not supported with --train both (joint training writes no checkpoints)');
        if (target !== 'reranker' && (o.saveEvery as number | undefined)) throw new GrerankError(`--save-every is not supported with --train ${target} (it writes no checkpoints)`);
        if (target === 'reader' && o.resume) throw new GrerankError('--resume is not supported with --train reader (the reader trainer writes no checkpoints)');
        const metricsPort = (o.metricsPort as number | undefined) ?? 0;
        if (metricsPort > 65535) throw new GrerankError(`--metrics-port must be at most 65535, got ${metricsPort}`);
        const backend = await initBackend(o.backend as BackendChoice);
        // Single process: it is rank 0 and serves its own metrics (no snapshots from other ranks).
        let metrics: TrainingMetrics | undefined;
        let server: MetricsServer | undefined;
        if (metricsPort > 0) {
          metrics = new TrainingMetrics({ rank: 0 });
          metrics.buildInfo(pkg.version, backend.name);
          // A --resume run is this process restarted (after preemption or a failure).
          if (o.resume) metrics.recordRestart();
          server = await startMetricsServer(metricsPort, metrics);
          process.stderr.write(`[grerank] metrics: http://${hostname()}:${server.port}/metrics\n`);
        }
        try {
          const t0 = performance.now();
          let examples = 0;
          let calls = 0;
          let progress: Progress | undefined;
          const format = o.logFormat as 'text' | 'json';
          hooks.onEval = (e: TrainEvalEvent) => {
            if (format === 'json') {
              process.stderr.write(JSON.stringify({ event: 'eval', step: e.step, total: e.total, final: e.final, ...e.metrics, ...e.counts, seconds: e.seconds }) + '\n');
            } else {
              const shown = Object.entries(e.metrics).map(([key, v]) => `${key} ${v === null ? '-' : (100 * v).toFixed(1)}`);
              process.stderr.write(`eval step ${e.step}/${e.total}: ${shown.join(', ')} (${e.counts.questions} questions, ${e.seconds.toFixed(1)} s)\n`);
            }
            metrics?.recordEval(e.metrics, 'reranker');
          };
          if (target === 'reader') {
            const rcfg = readerConfigOf(cfg);
            const r = await trainReader(rcfg, (s, total) => {
              metrics?.recordStep(s);
              progress ??= new Progress('train-reader', total, { every: cfg.logEvery, format });
              examples += s.examples;
              const fields: Record<string, number | string> = { step: s.step, loss: s.loss, lr: s.lr, 'ex/s': examples / ((performance.now() - t0) / 1000) };
              if (s.skipped) fields.skipped = 'yes';
              progress.update(++calls, fields);
            });
            process.stderr.write(`trained the reader ${r.steps} steps (${r.skipped} skipped); wrote ${rcfg.out}\n`);
            return;
          }
          if (target === 'both') {
            const r = await trainJoint(
              cfg,
              (s, total) => {
                metrics?.recordStep(s);
                progress ??= new Progress('train', total, { every: cfg.logEvery, format });
                examples += s.examples;
                const fields: Record<string, number | string> = { step: s.step, loss: s.loss, lr: s.lr, reader_lr: s.readerLr, 'ex/s': examples / ((performance.now() - t0) / 1000) };
                if (s.maxWeight !== undefined) fields.max_weight = s.maxWeight;
                if (s.skipped) fields.skipped = 'yes';
                progress.update(++calls, fields);
              },
              hooks,
            );
            process.stderr.write(`trained reader and reranker jointly ${r.steps} steps (${r.skipped} skipped); wrote ${cfg.out}/reranker and ${cfg.out}/reader\n`);
            return;
          }
          const ckpt = o.checkpoints === false && !o.resume ? undefined : { saveEvery: (o.saveEvery as number | undefined) ?? 0, keep: (o.keep as number | undefined) ?? 3, resume: o.resume as string | undefined };
          // The data phase and token count of the step about to run, from the batch hook.
          let batchInfo: { seconds: number; tokens: number } | undefined;
          if (metrics) {
            hooks.onBatch = (batches, seconds) => (batchInfo = { seconds, tokens: batches.reduce((a, b) => a + batchTokens(b), 0) });
            hooks.onCheckpoint = () => metrics!.recordCheckpoint();
          }
          const result = await trainReranker(cfg, (s, total) => {
            metrics?.recordStep({ ...s, tokens: batchInfo?.tokens, seconds: { ...s.seconds, data: batchInfo?.seconds } });
            batchInfo = undefined;
            progress ??= new Progress('train', total, { every: cfg.logEvery, format });
            examples += s.examples;
            const fields: Record<string, number | string> = { step: s.step, loss: s.loss, lr: s.lr, 'ex/s': examples / ((performance.now() - t0) / 1000) };
            if (s.maxWeight !== undefined) fields.max_weight = s.maxWeight;
            if (s.skipped) fields.skipped = 'yes';
            progress.update(++calls, fields);
          }, ckpt, hooks);
          if (result.resumedFrom) process.stderr.write(`resumed from ${result.resumedFrom}\n`);
          if (result.interrupted) {
            process.stderr.write(`stopped on ${result.interrupted} after ${result.steps} updates; checkpoint ${result.checkpoint}; continue with --resume latest\n`);
            process.exitCode = EXIT_PREEMPTED;
            return;
          }
          process.stderr.write(`trained ${result.steps} steps (${result.skipped} skipped); wrote ${cfg.method === 'weights' ? `${cfg.out}/weights.json` : `${cfg.out}/reranker`}\n`);
        } finally {
          await server?.close();
        }
      }),
    );
}
