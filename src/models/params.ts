import * as tf from '@tensorflow/tfjs-core';
import { expectTensor } from '../io/checkpoint.js';
import type { RawTensor, StateDict } from '../io/types.js';

/**
 * How a parameter is stored in tfjs relative to the checkpoint: PyTorch's nn.Linear keeps
 * weights as [out, in]; we keep them as [in, out] so every projection is a plain x @ W.
 */
export type Layout = 'same' | 'transposed';

/** One named parameter: its Hugging Face name, its layout here, and the tensor. */
export interface Param {
  readonly name: string;
  readonly layout: Layout;
  readonly tensor: tf.Tensor;
}

/**
 * The parameters of one model, by Hugging Face name. A frozen model holds plain tensors; a
 * trainable one holds tf.Variables (`trainable`), which is what gradients are taken against.
 * Loading validates every shape first and creates tensors only when all are right, so a
 * mismatching checkpoint never leaves a half-loaded model behind.
 */
export class ParamStore {
  readonly params = new Map<string, Param>();
  /** Parameters kept fixed although the store is trainable (e.g. a 250k-row embedding). */
  readonly frozen = new Set<string>();

  constructor(readonly trainable: boolean) {}

  /**
   * Loads `specs` (HF name -> checkpoint shape, layout) from `sd`; `aliases` maps names that
   * may be absent to the name whose tensor they share (tied weights, as transformers ties them).
   */
  static fromStateDict(
    sd: StateDict,
    specs: ReadonlyArray<{ name: string; shape: readonly number[]; layout?: Layout }>,
    opts: { trainable: boolean; aliases?: Record<string, string> },
  ): ParamStore {
    const raws: Array<[string, RawTensor, Layout]> = [];
    for (const spec of specs) {
      let name = spec.name;
      if (!sd.tensors.has(name) && opts.aliases?.[name] && sd.tensors.has(opts.aliases[name]!)) name = opts.aliases[name]!;
      const raw = expectTensor(sd, name, spec.shape);
      raws.push([spec.name, raw, spec.layout ?? 'same']);
    }
    const store = new ParamStore(opts.trainable);
    for (const [name, raw, layout] of raws) store.set(name, layout, rawToTensor(raw, layout));
    return store;
  }

  set(name: string, layout: Layout, t: tf.Tensor): void {
    const tensor = this.trainable ? tf.variable(t, true, undefined) : t;
    if (this.trainable) t.dispose();
    const old = this.params.get(name);
    if (old) old.tensor.dispose();
    this.params.set(name, { name, layout, tensor });
  }

  get<R extends tf.Rank = tf.Rank>(name: string): tf.Tensor<R> {
    const p = this.params.get(name);
    if (!p) throw new Error(`parameter ${name} not loaded`);
    return p.tensor as tf.Tensor<R>;
  }

  /** The trainable variables, in a stable (insertion) order. */
  variables(): tf.Variable[] {
    if (!this.trainable) return [];
    return [...this.params.values()].filter((p) => !this.frozen.has(p.name)).map((p) => p.tensor as tf.Variable);
  }

  /** Names of the trainable variables, aligned with variables(). */
  variableNames(): string[] {
    if (!this.trainable) return [];
    return [...this.params.values()].filter((p) => !this.frozen.has(p.name)).map((p) => p.name);
  }

  /** Keeps the named parameters fixed during training (they stay in the store and in exports). */
  freeze(names: Iterable<string>): void {
    for (const n of names) {
      if (!this.params.has(n)) throw new Error(`cannot freeze ${n}: no such parameter`);
      this.frozen.add(n);
    }
  }

  /** Parameters back in checkpoint layout and names (for saving and export). */
  toRaw(): Map<string, RawTensor> {
    const out = new Map<string, RawTensor>();
    for (const p of this.params.values()) {
      const t = p.layout === 'transposed' ? tf.tidy(() => tf.transpose(p.tensor)) : p.tensor;
      out.set(p.name, { dtype: 'float32', shape: t.shape, data: t.dataSync() as Float32Array });
      if (t !== p.tensor) t.dispose();
    }
    return out;
  }

  numParams(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.tensor.size;
    return n;
  }

  dispose(): void {
    for (const p of this.params.values()) p.tensor.dispose();
    this.params.clear();
  }
}

export function rawToTensor(raw: RawTensor, layout: Layout = 'same'): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(raw.data, [...raw.shape], raw.dtype);
    return layout === 'transposed' ? tf.transpose(t) : t;
  });
}
