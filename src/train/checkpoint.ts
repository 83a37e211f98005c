import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { GrerankError } from '../errors.js';
import { readJsonFile } from '../io/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { RawTensor } from '../io/types.js';
import type { AdamWState, ScheduleOptions } from './optimizer.js';

/**
 * Training checkpoints: OUT/checkpoints/step-000123/ holds everything a run needs to continue
 * bit-identically (weights, AdamW moments, schedule, every RNG state, the data cursor, the
 * config). See docs/checkpoints.md for the layout and the atomicity argument.
 */

export const CHECKPOINT_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
export const COMPLETE_MARKER = 'COMPLETE';
export const STATE_FILE = 'state.json';
export const CONFIG_FILE = 'train-config.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
/** The reranker as a Hugging Face directory inside the checkpoint. */
export const RERANKER_DIR = 'reranker';
/** Algorithm 2's weight table [queries, n] (tensor "weights"). */
export const WEIGHTS_FILE = 'weights.safetensors';
export const FORMAT_VERSION = 1;

/** Exit code of a run that stopped early on SIGTERM / SIGUSR1 after saving a checkpoint. */
export const EXIT_PREEMPTED = 75;

/** Files of a Hugging Face directory copied next to the checkpoint's model.safetensors. */
const SIDE_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model', 'sentencepiece.bpe.model'];

/** Config keys that do not change training and may differ on resume (dotted paths). */
export const RESUME_IGNORED_KEYS = new Set(['out', 'logEvery']);

/** Everything besides the tensors: the state.json of a checkpoint. */
export interface CheckpointState {
  format: number;
  /** Training steps taken (loop iterations, skipped updates included); the directory's number. */
  step: number;
  /** AdamW updates applied (step minus skipped). */
  optimizerStep: number;
  skippedSteps: number;
  schedule: ScheduleOptions;
  /** Learning rate of the last step taken (informational). */
  lr?: number;
  rng: {
    /** Data order: the epoch and the offset of the next batch within that epoch's permutation. */
    data: { epoch: number; cursor: number };
    /** Gumbel noise generator (xoshiro128** state). */
    gumbel: number[];
    /** Target-answer choice generator. */
    target: number[];
  };
  /** Names of the trainable variables, aligned with the optimizer moments. */
  variables: string[];
  /** "reranker" or "weights". */
  kind: 'reranker' | 'weights';
  /** Why it was written: "interval", "final", or the signal name. */
  reason: string;
  savedAt: string;
}

export interface CheckpointContents {
  state: CheckpointState;
  config: object;
  /** Reranker weights in Hugging Face names and layouts (kind "reranker"). */
  reranker?: Map<string, RawTensor>;
  /** The reranker's source directory, whose config and tokenizer files are copied. */
  rerankerSource?: string;
  /** Algorithm 2's table (kind "weights"). */
  weights?: RawTensor;
  /** AdamW moments in tfjs layout, aligned with state.variables. */
  optimizer: AdamWState;
  /** Shapes of the trainable variables (tfjs layout). */
  variableShapes: number[][];
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

/** A stage hook for tests: GRERANK_CHECKPOINT_FAULT="stage[:step][:kill|throw]". */
function fault(stage: string, step: number): void {
  const spec = process.env.GRERANK_CHECKPOINT_FAULT;
  if (!spec) return;
  const [s, at, how] = spec.split(':');
  if (s !== stage || (at !== undefined && at !== '' && Number(at) !== step)) return;
  if (how === 'throw') throw new Error(`GRERANK_CHECKPOINT_FAULT: simulated failure at ${stage} (step ${step})`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL is delivered asynchronously; never continue past the fault point.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
}

function fsyncPath(path: string): void {
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort: not every platform can fsync a directory */
  }
}

/** Writes a small file durably: temp file, fsync, rename, fsync of the directory. */
export function writeFileDurable(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    const b = Buffer.from(text, 'utf8');
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncPath(dirname(file));
}

function checkFinite(what: string, data: Float32Array | Int32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new GrerankError(`refusing to save checkpoint: ${what} has a non-finite value (${data[i]}) at index ${i}`);
  }
}

/**
 * Saves `c` as OUT/checkpoints/step-NNNNNN atomically: written into a temporary sibling
 * directory (every file fsynced), renamed into place, the COMPLETE marker written last, then
 * `latest` replaced atomically; older checkpoints beyond `keep` are removed. Returns the path.
 */
export function saveCheckpoint(out: string, c: CheckpointContents, keep: number): string {
  const step = c.state.step;
  if (c.reranker) for (const [name, t] of c.reranker) checkFinite(`step ${step}: parameter ${name}`, t.data);
  if (c.weights) checkFinite(`step ${step}: weight table`, c.weights.data);
  c.optimizer.m.forEach((m, i) => checkFinite(`step ${step}: AdamW first moment of ${c.state.variables[i]}`, m));
  c.optimizer.v.forEach((v, i) => checkFinite(`step ${step}: AdamW second moment of ${c.state.variables[i]}`, v));

  const root = join(out, CHECKPOINT_DIR);
  mkdirSync(root, { recursive: true });
  const name = stepDirName(step);
  const final = join(root, name);
  const tmp = join(root, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeFileDurable(join(tmp, CONFIG_FILE), JSON.stringify(c.config, null, 2) + '\n');
    if (c.reranker) {
      const dir = join(tmp, RERANKER_DIR);
      mkdirSync(dir);
      for (const f of SIDE_FILES) {
        if (c.rerankerSource && existsSync(join(c.rerankerSource, f))) {
          copyFileSync(join(c.rerankerSource, f), join(dir, f));
          fsyncPath(join(dir, f));
        }
      }
      writeSafetensors(join(dir, 'model.safetensors'), c.reranker, { format: 'pt' });
      fsyncPath(dir);
    }
    if (c.weights) writeSafetensors(join(tmp, WEIGHTS_FILE), new Map([['weights', c.weights]]));
    fault('weights', step);
    const moments = new Map<string, RawTensor>();
    c.state.variables.forEach((v, i) => {
      moments.set(`m.${v}`, { dtype: 'float32', shape: c.variableShapes[i]!, data: c.optimizer.m[i]! });
      moments.set(`v.${v}`, { dtype: 'float32', shape: c.variableShapes[i]!, data: c.optimizer.v[i]! });
    });
    writeSafetensors(join(tmp, OPTIMIZER_FILE), moments, { step: String(c.optimizer.step) });
    writeFileDurable(join(tmp, STATE_FILE), JSON.stringify(c.state, null, 2) + '\n');
    fsyncPath(tmp);
    fault('rename', step);
    // A checkpoint of the same step (a resumed run re-saving it) is replaced.
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(root);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fault('marker', step);
  writeFileDurable(join(final, COMPLETE_MARKER), `${step}\n`);
  fault('latest', step);
  writeFileDurable(join(root, LATEST_FILE), name + '\n');
  prune(root, keep, name);
  return final;
}

/** Complete checkpoint directories under `root`, oldest first. */
export function listCheckpoints(root: string): Array<{ step: number; dir: string }> {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(root, m[0], COMPLETE_MARKER)))
    .map((m) => ({ step: Number(m[1]), dir: join(root, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** Keeps the newest `keep` complete checkpoints (never the one `latest` names) and removes stale temporaries. */
function prune(root: string, keep: number, latest: string): void {
  const all = listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) {
    if (basename(c.dir) !== latest) rmSync(c.dir, { recursive: true, force: true });
  }
  for (const n of readdirSync(root)) {
    // Temporaries of this process are gone by now; any other is left by a killed run.
    if (n.startsWith('.tmp-step-')) rmSync(join(root, n), { recursive: true, force: true });
    else if (/^step-\d+$/.test(n) && !existsSync(join(root, n, COMPLETE_MARKER)) && n !== latest) rmSync(join(root, n), { recursive: true, force: true });
  }
}

/**
 * Resolves `--resume`: "latest" reads OUT/checkpoints/latest; otherwise a checkpoint directory
 * (or an OUT directory / its checkpoints folder, meaning its latest). The result is complete.
 */
export function resolveCheckpoint(spec: string, out: string): string {
  let dir: string;
  const latestOf = (root: string): string => {
    const file = join(root, LATEST_FILE);
    if (!existsSync(file)) throw new GrerankError(`${file}: no such file (no checkpoint to resume from)`);
    const name = readFileSync(file, 'utf8').trim();
    if (!/^step-\d+$/.test(name)) throw new GrerankError(`${file}: does not name a checkpoint ("${name}")`);
    return join(root, name);
  };
  if (spec === 'latest') dir = latestOf(join(out, CHECKPOINT_DIR));
  else if (existsSync(join(spec, STATE_FILE))) dir = spec;
  else if (existsSync(join(spec, LATEST_FILE))) dir = latestOf(spec);
  else if (existsSync(join(spec, CHECKPOINT_DIR, LATEST_FILE))) dir = latestOf(join(spec, CHECKPOINT_DIR));
  else if (!existsSync(spec)) throw new GrerankError(`${spec}: no such checkpoint`);
  else throw new GrerankError(`${spec}: not a checkpoint directory (no ${STATE_FILE})`);
  if (!existsSync(join(dir, COMPLETE_MARKER))) throw new GrerankError(`${dir}: incomplete checkpoint (no ${COMPLETE_MARKER} marker)`);
  return resolve(dir);
}

/**
 * `--resume` as given: "auto" is the latest checkpoint of `out` when one exists, else a fresh
 * start (undefined), which suits a job that may or may not have been requeued; anything else
 * is {@link resolveCheckpoint}.
 */
export function resolveResume(spec: string, out: string): string | undefined {
  if (spec === 'auto') return existsSync(join(out, CHECKPOINT_DIR, LATEST_FILE)) ? resolveCheckpoint('latest', out) : undefined;
  return resolveCheckpoint(spec, out);
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  config: Record<string, unknown>;
  reranker?: Map<string, RawTensor>;
  weights?: RawTensor;
  optimizer: AdamWState;
}

/** Reads a complete checkpoint directory. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(join(dir, COMPLETE_MARKER))) throw new GrerankError(`${dir}: incomplete checkpoint (no ${COMPLETE_MARKER} marker)`);
  const state = readJsonFile(join(dir, STATE_FILE)) as CheckpointState;
  if (state.format !== FORMAT_VERSION) throw new GrerankError(`${join(dir, STATE_FILE)}: checkpoint format ${state.format}, expected ${FORMAT_VERSION}`);
  const config = readJsonFile(join(dir, CONFIG_FILE)) as Record<string, unknown>;
  const moments = readSafetensors(join(dir, OPTIMIZER_FILE));
  const take = (n: string): Float32Array => {
    const t = moments.get(n);
    if (!t || t.dtype !== 'float32') throw new GrerankError(`${join(dir, OPTIMIZER_FILE)}: missing tensor ${n}`);
    return t.data as Float32Array;
  };
  const optimizer: AdamWState = { step: state.optimizerStep, m: state.variables.map((v) => take(`m.${v}`)), v: state.variables.map((v) => take(`v.${v}`)) };
  const res: LoadedCheckpoint = { dir, state, config, optimizer };
  if (state.kind === 'reranker') res.reranker = readSafetensors(join(dir, RERANKER_DIR, 'model.safetensors'));
  else res.weights = readSafetensors(join(dir, WEIGHTS_FILE)).get('weights');
  return res;
}

function flatten(o: unknown, prefix: string, out: Map<string, string>): void {
  if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (o !== undefined) {
    out.set(prefix, JSON.stringify(o));
  }
}

/** Dotted keys in which two training configs differ, ignoring RESUME_IGNORED_KEYS. */
export function configDifferences(saved: object, current: object): string[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(saved, '', a);
  flatten(current, '', b);
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => !RESUME_IGNORED_KEYS.has(k.split('.')[0]!) && a.get(k) !== b.get(k)).sort();
}
