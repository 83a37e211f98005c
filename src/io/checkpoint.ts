import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CheckpointError, GrerankError } from '../errors.js';
import { readPytorchBin } from './pytorch.js';
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
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new GrerankError(`${file}: no such file`);
    throw new GrerankError(`${file}: ${err.message}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
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

type Reader = (file: string, wanted?: (name: string) => boolean) => Map<string, RawTensor>;

/** Weight files in order of preference; the first one present is used. */
const WEIGHT_FILES: ReadonlyArray<{ file: string; sharded: boolean; read: Reader }> = [
  { file: 'model.safetensors', sharded: false, read: readSafetensors },
  { file: 'model.safetensors.index.json', sharded: true, read: readSafetensors },
  { file: 'pytorch_model.bin', sharded: false, read: readPytorchBin },
  { file: 'pytorch_model.bin.index.json', sharded: true, read: readPytorchBin },
];

/**
 * All tensors of a Hugging Face model directory. Prefers model.safetensors, then a sharded
 * safetensors index, then pytorch_model.bin (read without executing any pickle code), then a
 * sharded .bin index. `source` maps each tensor to the file it was read from.
 */
export async function loadStateDict(dir: string): Promise<StateDict> {
  if (!existsSync(dir)) throw new GrerankError(`${dir}: model directory does not exist`);
  if (!statSync(dir).isDirectory()) throw new GrerankError(`${dir}: not a directory (expected a Hugging Face model directory)`);
  const tensors = new Map<string, RawTensor>();
  const source = new Map<string, string>();
  for (const w of WEIGHT_FILES) {
    const path = join(dir, w.file);
    if (!existsSync(path)) continue;
    if (!w.sharded) {
      for (const [k, v] of w.read(path)) {
        tensors.set(k, v);
        source.set(k, path);
      }
    } else {
      for (const [shard, names] of readShardIndex(path)) {
        const shardPath = join(dir, shard);
        if (!existsSync(shardPath)) {
          throw new CheckpointError(`${path}: shard ${shard} (holding ${names[0]}${names.length > 1 ? ` and ${names.length - 1} more` : ''}) is missing`);
        }
        const want = new Set(names);
        const got = w.read(shardPath, (n) => want.has(n));
        for (const n of names) {
          const t = got.get(n);
          if (!t) throw new CheckpointError(`${shardPath}: tensor ${n} (listed in ${w.file}) is missing from this shard`);
          tensors.set(n, t);
          source.set(n, shardPath);
        }
      }
    }
    return { dir, tensors, source };
  }
  throw new CheckpointError(`${dir}: no weights found (looked for ${WEIGHT_FILES.map((w) => w.file).join(', ')})`);
}

/** Shard file -> tensor names, from an index's `weight_map` ({name: shard file}). */
function readShardIndex(indexFile: string): Map<string, string[]> {
  const index = readJsonFile(indexFile) as { weight_map?: unknown } | null;
  const map = index && typeof index === 'object' ? index.weight_map : undefined;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new CheckpointError(`${indexFile}: no "weight_map" object`);
  const shards = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    // Shards live beside the index: a path elsewhere is a broken (or hostile) index.
    if (typeof shard !== 'string' || shard === '' || shard !== basename(shard) || shard === '..' || shard === '.') {
      throw new CheckpointError(`${indexFile}: weight_map entry ${name} names ${JSON.stringify(shard)}, not a file beside the index`);
    }
    const list = shards.get(shard) ?? [];
    list.push(name);
    shards.set(shard, list);
  }
  if (shards.size === 0) throw new CheckpointError(`${indexFile}: weight_map is empty`);
  return shards;
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
