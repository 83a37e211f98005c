import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { saveModelDir } from '../io/export.js';
import { readSafetensors } from '../io/safetensors.js';
import { RERANKER_DIR, resolveCheckpoint, STATE_FILE, type CheckpointState } from '../train/checkpoint.js';
import { action } from './run.js';

/**
 * `grerank export --checkpoint PATH --out DIR`: the trained reranker of a training checkpoint as
 * a Hugging Face directory (config.json, model.safetensors, tokenizer files) that transformers
 * loads unchanged. PATH is a checkpoint directory, an OUT/checkpoints folder or an OUT directory
 * (meaning its latest checkpoint).
 */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write the reranker of a training checkpoint as a Hugging Face model directory')
    .requiredOption('--checkpoint <path>', 'checkpoint directory (OUT/checkpoints/step-N), or OUT / OUT/checkpoints for the latest')
    .requiredOption('--out <dir>', 'directory to write (replaced atomically)')
    .action(
      action(async (o: { checkpoint: string; out: string }) => {
        const dir = resolveCheckpoint(o.checkpoint, o.checkpoint);
        const state = readJsonFile(join(dir, STATE_FILE)) as CheckpointState;
        if (state.kind !== 'reranker') throw new GrerankError(`${dir}: checkpoint of method "weights" holds Algorithm 2's weight table, not a reranker`);
        const src = join(dir, RERANKER_DIR);
        const file = join(src, 'model.safetensors');
        if (!existsSync(join(src, 'config.json'))) throw new GrerankError(`${src}: missing config.json`);
        const tensors = readSafetensors(file);
        for (const [name, t] of tensors) {
          if (!t.data.every((x) => Number.isFinite(x))) throw new GrerankError(`${file}: tensor ${name} has non-finite values`);
        }
        saveModelDir(o.out, src, tensors);
        process.stderr.write(`exported step ${state.step} of ${dir} to ${o.out}\n`);
      }),
    );
}
