import type { RawTensor, StateDict } from '../io/types.js';
import { Rng } from '../util/rng.js';
import { t5ParamSpecs, type T5Config } from './t5.js';

/** Standard normal from two uniforms (Box-Muller). */
function gaussian(rng: Rng): number {
  const u = Math.max(rng.uniform(), 1e-300);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.uniform());
}

/**
 * A freshly initialised T5 state dict, as transformers' T5PreTrainedModel._init_weights draws
 * it (factor 1): embeddings N(0, 1), q N(0, (d_model*d_kv)^-1/2), k/v/wi N(0, d_model^-1/2),
 * o N(0, (H*d_kv)^-1/2), wo N(0, d_ff^-1/2), relative biases N(0, d_model^-1/2), norms 1.
 * For models the project trains from scratch (tests, benchmarks, the synthetic demo).
 */
export function initT5StateDict(c: T5Config, seed: number): StateDict {
  const rng = new Rng(seed);
  const tensors = new Map<string, RawTensor>();
  const source = new Map<string, string>();
  for (const spec of t5ParamSpecs(c, false)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const name = spec.name;
    let std: number;
    if (name.endsWith('layer_norm.weight')) std = 0;
    else if (name === 'shared.weight' || name === 'lm_head.weight') std = name === 'lm_head.weight' ? c.dModel ** -0.5 : 1;
    else if (/\.q\.weight$/.test(name)) std = (c.dModel * c.dKv) ** -0.5;
    else if (/\.o\.weight$/.test(name)) std = (c.numHeads * c.dKv) ** -0.5;
    else if (/\.wo\.weight$/.test(name)) std = c.dFf ** -0.5;
    else std = c.dModel ** -0.5;
    if (std === 0) data.fill(1);
    else for (let i = 0; i < n; i++) data[i] = gaussian(rng) * std;
    tensors.set(name, { dtype: 'float32', shape: spec.shape, data });
    source.set(name, '<initialised>');
  }
  return { dir: '<initialised>', tensors, source };
}

/** A T5 v1.0 configuration with the given sizes and the usual defaults for the rest. */
export function t5Config(sizes: Partial<T5Config> & Pick<T5Config, 'vocabSize' | 'dModel' | 'dKv' | 'dFf' | 'numLayers' | 'numHeads'>): T5Config {
  return {
    numDecoderLayers: sizes.numLayers,
    numBuckets: 32,
    maxDistance: 128,
    eps: 1e-6,
    act: 'relu',
    gated: false,
    tieEmbeddings: true,
    decoderStartTokenId: 0,
    padTokenId: 0,
    eosTokenId: 1,
    ...sizes,
  };
}
