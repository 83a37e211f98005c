import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's CommonJS bundle registers no gradient functions, and its ES-module files cannot be
// loaded by Node (extensionless imports). The union package's Node bundle registers all of them
// against the same tfjs-core instance (versions are pinned to match).
import '@tensorflow/tfjs';
import { GrerankError } from '../errors.js';
import { registerCpuKernels, registerGradients, registerWasmKernels } from './kernels/index.js';

/** The backends in the order they are tried: fastest first. */
export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/** What initBackend chose, for logs and metrics. */
export interface BackendInfo {
  /** Our name: tensorflow-gpu | tensorflow | wasm | cpu. */
  name: BackendName;
  /** The tfjs backend name (tfjs-node and tfjs-node-gpu both register 'tensorflow'). */
  tfjsName: string;
  /** Why earlier candidates were passed over (auto mode). */
  skipped: string[];
}

let chosen: BackendInfo | undefined;

async function tryLoad(name: BackendName): Promise<string> {
  switch (name) {
    case 'tensorflow-gpu':
      // The native packages are optional dependencies: import by variable so that TypeScript
      // and bundlers do not require them to exist.
      await import(/* @vite-ignore */ ['@tensorflow', 'tfjs-node-gpu'].join('/'));
      return 'tensorflow';
    case 'tensorflow':
      await import(/* @vite-ignore */ ['@tensorflow', 'tfjs-node'].join('/'));
      return 'tensorflow';
    case 'wasm':
      await import('@tensorflow/tfjs-backend-wasm');
      registerWasmKernels();
      return 'wasm';
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      registerCpuKernels();
      return 'cpu';
  }
}

/**
 * Chooses and initialises the tfjs backend once per process: the first of tensorflow-gpu,
 * tensorflow, wasm, cpu that loads (`auto`), or exactly the one asked for. Logs the choice once
 * (to stderr, unless `quiet`). Later calls return the first choice.
 */
export async function initBackend(choice: BackendChoice = 'auto', opts: { quiet?: boolean } = {}): Promise<BackendInfo> {
  if (chosen) {
    if (choice !== 'auto' && choice !== chosen.name) {
      throw new GrerankError(`backend ${choice} requested, but this process already uses ${chosen.name}`);
    }
    return chosen;
  }
  if (choice !== 'auto' && !BACKENDS.includes(choice)) {
    throw new GrerankError(`unknown backend "${choice}" (choose auto, ${BACKENDS.join(', ')})`);
  }
  const candidates: BackendName[] = choice === 'auto' ? [...BACKENDS] : [choice];
  const skipped: string[] = [];
  for (const name of candidates) {
    let tfjsName: string;
    try {
      tfjsName = await tryLoad(name);
      if (!(await tf.setBackend(tfjsName))) throw new Error(`tf.setBackend('${tfjsName}') failed`);
      await tf.ready();
    } catch (e) {
      const why = `${name}: ${(e as Error).message.split('\n')[0]}`;
      if (choice !== 'auto') throw new GrerankError(`backend ${why}`);
      skipped.push(why);
      continue;
    }
    // Upstream's gradients of broadcasting matMul/maximum/minimum and a few others are wrong or
    // missing on every backend; ours replace them whatever the backend.
    registerGradients();
    if (name === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false; // no "install tfjs-node" banner
    chosen = { name, tfjsName, skipped };
    if (!opts.quiet) {
      process.stderr.write(`[grerank] backend: ${name}${skipped.length ? ` (skipped ${skipped.map((s) => s.split(':')[0]).join(', ')})` : ''}\n`);
    }
    return chosen;
  }
  throw new GrerankError(`no tfjs backend could be initialised: ${skipped.join('; ')}`);
}

/** The backend chosen by initBackend, or undefined before it ran. */
export function currentBackend(): BackendInfo | undefined {
  return chosen;
}
