import type { Command } from 'commander';
import { writeFileSync, renameSync } from 'node:fs';
import { initBackend, type BackendChoice } from '../backend/index.js';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { INSPECT_TASKS, inspectModel, type InspectTask } from '../models/inspect.js';
import { action } from './run.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('run a Hugging Face model directory on given tensors and print its outputs, to compare with PyTorch')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json + weights)')
    .requiredOption('--task <task>', `what to run: ${INSPECT_TASKS.join(' | ')}`)
    .requiredOption('--input <file>', 'JSON with input tensors {"shape": [...], "data": [...]} under the golden names')
    .option('--output <file>', 'write the outputs here instead of stdout')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .addHelpText(
      'after',
      `
Inputs by task (names as in refcheck goldens):
  seq2seq        input_ids, attention_mask [B,L]; labels [B,T] (-100 = padding)
  fid            input_ids, attention_mask [B,N,L]; labels [B,T]; optional m [B,N] (passage mask)
  rankt5         input_ids, attention_mask [B,L]; optional token_id (default 32089)
  cross-encoder  input_ids, attention_mask [B,L]
Outputs: encoder_last_hidden_state, logits, loss, per_token_nll, cross_attention_last_layer,
  dloss_dm (fid with m), score (rankt5), logits (cross-encoder).
`,
    )
    .action(
      action(async (o: { model: string; task: string; input: string; output?: string; backend: string }) => {
        if (!INSPECT_TASKS.includes(o.task as InspectTask)) throw new GrerankError(`--task "${o.task}" is not one of ${INSPECT_TASKS.join(', ')}`);
        const input = readJsonFile(o.input);
        if (!input || typeof input !== 'object' || Array.isArray(input)) throw new GrerankError(`${o.input}: expected a JSON object of tensors`);
        await initBackend(o.backend as BackendChoice);
        const result = await inspectModel(o.model, o.task as InspectTask, input as Record<string, unknown>, o.input);
        const text = JSON.stringify(result) + '\n';
        if (o.output) {
          // Write beside the target and rename: a failed run never leaves a partial file.
          const tmp = `${o.output}.tmp-${process.pid}`;
          writeFileSync(tmp, text);
          renameSync(tmp, o.output);
        } else {
          process.stdout.write(text);
        }
      }),
    );
}
