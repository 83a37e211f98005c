import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, GrerankError } from '../errors.js';
import { readSafetensors } from './safetensors.js';
import type { RawTensor, StateDict } from './types.js';

/** Reads and parses `dir/config.json`, with one-line errors. */
export function readConfig(dir: string): Record<string, unknown> {
  const file = join(dir, 'config.json');
  if (!existsSync(dir)) throw new GrerankError(`${dir}: model directory does not exist`);
  if (!existsSync(file)) throw new GrerankError(`${file}: missing (not a Hugging Face model directory)`);
  return readJsonFile(file) as Record<string, unknown>;
}

/** Reads a JSON file strictly: UTF-8 checked, parse errors reported with line and column. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(file));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new GrerankError(`${file}: no such file`);
    if (err.code) throw new GrerankError(`${file}: ${err.message}`);
    throw new GrerankError(`${file}: not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      throw new GrerankError(`${file}:${line}:${col}: invalid JSON (${msg.replace(/ in JSON at position \d+.*$/, '')})`);
    }
    throw new GrerankError(`${file}: invalid JSON (${msg})`);
  }
}

/**
 * All tensors of a Hugging Face model directory. Prefers model.safetensors, then a sharded
 * safetensors index, then pytorch_model.bin (read without executing any pickle code).
 */
export async function loadStateDict(dir: string): Promise<StateDict> {
  const tensors = new Map<string, RawTensor>();
  const source = new Map<string, string>();
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) {
    for (const [k, v] of readSafetensors(single)) {
      tensors.set(k, v);
      source.set(k, single);
    }
    return { dir, tensors, source };
  }
  throw new CheckpointError(`${dir}: no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin)`);
}

/**
 * Takes a tensor by name and checks its shape; `file: tensor NAME has shape [..], expected [..]`
 * or `dir: tensor NAME missing` otherwise.
 */
export function expectTensor(sd: StateDict, name: string, shape: readonly number[]): RawTensor {
  const t = sd.tensors.get(name);
  if (!t) throw new CheckpointError(`${sd.dir}: tensor ${name} is missing (architecture does not match the config)`);
  if (t.dtype !== 'float32') throw new CheckpointError(`${sd.source.get(name)}: tensor ${name} has integer dtype, expected floating point`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new CheckpointError(`${sd.source.get(name)}: tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return t;
}
