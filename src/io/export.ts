import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeSafetensors } from './safetensors.js';
import type { RawTensor } from './types.js';

/** Files of a Hugging Face directory that describe the model or its tokenizer, copied as they are. */
const SIDE_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model', 'sentencepiece.bpe.model'];

/**
 * Writes a Hugging Face model directory that transformers loads unchanged: model.safetensors
 * with the checkpoint's own tensor names and layouts, plus the source directory's config and
 * tokenizer files. Written into a temporary sibling and renamed, so `out` is complete or absent.
 */
export function saveModelDir(out: string, sourceDir: string, tensors: Map<string, RawTensor>, extraFiles: Record<string, string> = {}): void {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const f of SIDE_FILES) if (existsSync(join(sourceDir, f))) copyFileSync(join(sourceDir, f), join(tmp, f));
  for (const [name, text] of Object.entries(extraFiles)) writeFileSync(join(tmp, name), text);
  writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
}
