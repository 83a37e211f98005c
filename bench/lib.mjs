// Shared helpers of the benchmarks (bench/step.mjs, bench/memory.mjs): argument parsing, the
// benchmark configuration, seeded batches, an analytic matmul FLOP count, matmul-rate probes,
// a BatchMatMul timing wrapper, and table formatting. Plain ESM on the compiled dist/.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../dist/backend/index.js';
import { Rng } from '../dist/util/rng.js';

// ---------------------------------------------------------------------------------------------
// Arguments

/** `--key value`, `--key=value` and bare `--flag` (true); `--no-flag` is false. */
export function parseArgs(argv, spec) {
  const out = {};
  for (const [k, v] of Object.entries(spec)) out[k] = v.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    let key = a.slice(2);
    let val;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      val = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    let neg = false;
    if (!(key in spec) && key.startsWith('no-') && key.slice(3) in spec) {
      key = key.slice(3);
      neg = true;
    }
    const s = spec[key];
    if (!s) throw new Error(`unknown option --${key} (known: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
    if (s.type === 'boolean') {
      out[key] = neg ? false : val === undefined ? true : val !== 'false';
      continue;
    }
    if (val === undefined) val = argv[++i];
    if (val === undefined) throw new Error(`--${key} needs a value`);
    if (s.type === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n)) throw new Error(`--${key}: not a number: ${val}`);
      out[key] = n;
    } else if (s.type === 'list') out[key] = val.split(',').map((x) => x.trim()).filter(Boolean);
    else out[key] = val;
  }
  return out;
}

export function usage(spec) {
  return Object.entries(spec)
    .map(([k, s]) => `  --${k}${s.type === 'boolean' ? '' : ` <${s.type}>`}  ${s.help ?? ''}${s.default !== undefined && s.type !== 'boolean' ? ` (default ${Array.isArray(s.default) ? s.default.join(',') : s.default})` : ''}`)
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// Backends

/**
 * initBackend(name) plus what the project registers for the cpu backend: the fast
 * UnsortedSegmentSum (tfjs' own is O(numSegments*n*d), minutes for a 32k-row embedding
 * gradient). Returns notes for the report.
 */
export async function setupBackend(name) {
  const notes = [];
  const info = await initBackend(name, { quiet: true });
  if (name === 'cpu') {
    try {
      const k = await import('../dist/backend/kernels/index.js');
      if (typeof k.registerCpuKernels === 'function') {
        k.registerCpuKernels();
        notes.push('cpu: registerCpuKernels() (project UnsortedSegmentSum)');
      }
    } catch (e) {
      notes.push(`cpu: no registerCpuKernels (${e.message.split('\n')[0]})`);
    }
  }
  if (name === 'wasm') {
    try {
      const w = await import('@tensorflow/tfjs-backend-wasm');
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      notes.push(`wasm: simd=${simd} threads=${w.getThreadsCount()}`);
    } catch {
      /* informational only */
    }
  }
  return { info, notes };
}

/** Bytes of the wasm heap (grows, never shrinks), or undefined on other backends. */
export function wasmHeapBytes() {
  const be = tf.backend();
  return be?.wasm?.HEAPU8?.buffer?.byteLength;
}

// ---------------------------------------------------------------------------------------------
// Configuration and data

/** The benchmark reader / reranker: T5 v1.0, d 256, d_kv 32, 8 heads, d_ff 1024, 4+4 layers. */
export const BENCH_MODEL = { vocabSize: 32128, dModel: 256, dKv: 32, dFf: 1024, numLayers: 4, numHeads: 8 };
export const BENCH_SHAPE = { b: 1, n: 20, passageLen: 128, pairLen: 128, targetLen: 16 };

/** A seeded RerankBatch with random token ids (no padding; labels end with </s> = 1). */
export function makeBatch(shape, vocabSize, seed) {
  const rng = new Rng(seed);
  const { b, n, passageLen, pairLen, targetLen } = shape;
  // ids 3..min(vocab, 32000)-1: clear of pad/eos/unk and of the sentinel tokens.
  const hi = Math.min(vocabSize, 32000) - 3;
  const tok = () => 3 + rng.int(hi);
  const passageIds = new Int32Array(b * n * passageLen).map(tok);
  const pairIds = new Int32Array(b * n * pairLen).map(tok);
  const labels = new Int32Array(b * targetLen).map(tok);
  for (let i = 0; i < b; i++) labels[i * targetLen + targetLen - 1] = 1;
  return {
    b,
    n,
    pairIds,
    pairMask: new Int32Array(b * n * pairLen).fill(1),
    pairLen,
    passageIds,
    passageMask: new Int32Array(b * n * passageLen).fill(1),
    passageLen,
    labels,
    targetLen,
    index: Int32Array.from({ length: b }, (_, i) => i),
  };
}

// ---------------------------------------------------------------------------------------------
// Analytic matmul FLOPs

/**
 * The type of a BatchMatMul call: 2-D without transposes ('NN'), 2-D with a transposed operand
 * ('NT', 'TN'), or batched. Stock tfjs-backend-wasm 4.22 (batch_mat_mul_impl.cc) sends only NN
 * to XNNPACK and the rest to a scalar blocked loop (~2.5 GFLOP/s); the project's wasm
 * BatchMatMul wrapper (src/backend/kernels/batch_mat_mul.ts) routes the rest onto XNNPACK too.
 */
function kindOf(batch, ta, tb) {
  if (batch > 1) return 'batched';
  return ta ? 'TN' : tb ? 'NT' : 'NN';
}

/**
 * A ledger of matmuls. `add` records one forward product a[batch,m,k] x b[batch,k,n] (with
 * tfjs' transpose flags) and, when taped, its backward per tfjs' BatchMatMul gradient: dA and/or
 * dB as needed (`grads`). `nominal` counts backward as 2x forward regardless of which inputs
 * need a gradient (the usual "3x forward" rule); `exact` counts only the products tfjs runs.
 */
export class FlopLedger {
  constructor() {
    this.rows = [];
  }

  add(group, name, { batch = 1, m, k, n, ta = false, tb = false }, { taped = false, dA = false, dB = false } = {}) {
    const f = 2 * batch * m * k * n;
    const fwdKind = kindOf(batch, ta, tb);
    this.rows.push({ group, name, pass: 'fwd', kind: fwdKind, flops: f, nominal: f });
    if (!taped) return;
    // tfjs-core matMul gradient: which product computes dA and dB for each transpose pattern.
    const dAKind = batch > 1 ? 'batched' : !ta && !tb ? 'NT' : !ta && tb ? 'NN' : ta && !tb ? 'NT' : 'TN';
    const dBKind = batch > 1 ? 'batched' : !ta && !tb ? 'TN' : !ta && tb ? 'TN' : ta && !tb ? 'NN' : 'TN';
    this.rows.push({ group, name, pass: 'bwd-dA', kind: dAKind, flops: dA ? f : 0, nominal: f });
    this.rows.push({ group, name, pass: 'bwd-dB', kind: dBKind, flops: dB ? f : 0, nominal: f });
  }

  total(field = 'nominal', pred = () => true) {
    return this.rows.filter(pred).reduce((s, r) => s + r[field], 0);
  }

  /** { group: { fwd, bwd } } in FLOPs (nominal). */
  byGroup(field = 'nominal') {
    const out = {};
    for (const r of this.rows) {
      const g = (out[r.group] ??= { fwd: 0, bwd: 0 });
      g[r.pass === 'fwd' ? 'fwd' : 'bwd'] += r[field];
    }
    return out;
  }

  /** { kind: FLOPs } (exact: what the backend really runs). */
  byKind(field = 'flops') {
    const out = {};
    for (const r of this.rows) out[r.kind] = (out[r.kind] ?? 0) + r[field];
    return out;
  }
}

/**
 * T5 encoder over `rows` sequences of `len` tokens. `taped`/`trainable`: whether backward runs
 * and whether weights get gradients (dB of the weight products).
 */
function t5Encoder(L, group, c, rows, len, { taped, trainable }) {
  const S = rows * len;
  const inner = c.numHeads * c.dKv;
  const g = { taped, dA: taped, dB: taped && trainable };
  const att = { taped, dA: taped, dB: taped };
  for (let i = 0; i < c.numLayers; i++) {
    for (const p of ['q', 'k', 'v']) L.add(group, `enc.${i}.${p}`, { m: S, k: c.dModel, n: inner }, g);
    L.add(group, `enc.${i}.qk`, { batch: rows * c.numHeads, m: len, k: c.dKv, n: len, tb: true }, att);
    L.add(group, `enc.${i}.pv`, { batch: rows * c.numHeads, m: len, k: len, n: c.dKv }, att);
    L.add(group, `enc.${i}.o`, { m: S, k: inner, n: c.dModel }, g);
    L.add(group, `enc.${i}.wi`, { m: S, k: c.dModel, n: c.dFf }, g);
    L.add(group, `enc.${i}.wo`, { m: S, k: c.dFf, n: c.dModel }, g);
  }
}

/** Cross-attention K/V of every decoder layer over `S` encoder states. */
function t5CrossKV(L, group, c, S, opts) {
  const inner = c.numHeads * c.dKv;
  const g = { taped: opts.taped, dA: opts.taped, dB: opts.taped && opts.trainable };
  for (let i = 0; i < c.numDecoderLayers; i++) {
    L.add(group, `kv.${i}.k`, { m: S, k: c.dModel, n: inner }, g);
    L.add(group, `kv.${i}.v`, { m: S, k: c.dModel, n: inner }, g);
  }
}

/**
 * T5 decoder: `rows` sequences of `t` steps attending to `s` keys each. For the frozen reader
 * under the G-Rerank mask only what lies between the mask and the loss needs a gradient: in
 * layer 0 the self-attention and the cross-attention query do not (`maskOnly`).
 */
function t5Decoder(L, group, c, rows, t, s, { taped, trainable, maskOnly = false, kvNeedsGrad = false }) {
  const inner = c.numHeads * c.dKv;
  const R = rows * t;
  for (let i = 0; i < c.numDecoderLayers; i++) {
    const onPath = !maskOnly || i > 0; // does this layer's input depend on the trainable side?
    const w = (hasPath) => ({ taped, dA: taped && hasPath, dB: taped && trainable });
    for (const p of ['q', 'k', 'v']) L.add(group, `dec.${i}.self.${p}`, { m: R, k: c.dModel, n: inner }, w(onPath));
    L.add(group, `dec.${i}.self.qk`, { batch: rows * c.numHeads, m: t, k: c.dKv, n: t, tb: true }, { taped, dA: taped && onPath, dB: taped && onPath });
    L.add(group, `dec.${i}.self.pv`, { batch: rows * c.numHeads, m: t, k: t, n: c.dKv }, { taped, dA: taped && onPath, dB: taped && onPath });
    L.add(group, `dec.${i}.self.o`, { m: R, k: inner, n: c.dModel }, w(onPath));
    L.add(group, `dec.${i}.cross.q`, { m: R, k: c.dModel, n: inner }, w(onPath));
    // scores = q k^T (+ mask bias); ctx = probs v. The probs always depend on the mask.
    L.add(group, `dec.${i}.cross.qk`, { batch: rows * c.numHeads, m: t, k: c.dKv, n: s, tb: true }, { taped, dA: taped && onPath, dB: taped && kvNeedsGrad });
    L.add(group, `dec.${i}.cross.pv`, { batch: rows * c.numHeads, m: t, k: s, n: c.dKv }, { taped, dA: taped, dB: taped && kvNeedsGrad });
    L.add(group, `dec.${i}.cross.o`, { m: R, k: inner, n: c.dModel }, w(true));
    L.add(group, `dec.${i}.wi`, { m: R, k: c.dModel, n: c.dFf }, w(true));
    L.add(group, `dec.${i}.wo`, { m: R, k: c.dFf, n: c.dModel }, w(true));
  }
}

/**
 * Matmul FLOPs of one G-Rerank step: reader encoder + cross K/V (outside the tape, forward only),
 * reader decoder (taped, frozen: activation gradients only), LM head (frozen), and a RankT5
 * reranker (encoder + cross K/V + one decoder step, all trainable). Element-wise ops, softmaxes,
 * norms, gathers and the optimizer are not counted.
 */
export function stepFlops(readerCfg, rankerCfg, shape) {
  const L = new FlopLedger();
  const { b, n, passageLen: l, pairLen, targetLen: t } = shape;
  // Reader: encoder and cross K/V are computed before the tape opens.
  t5Encoder(L, 'reader.encoder+kv', readerCfg, b * n, l, { taped: false });
  t5CrossKV(L, 'reader.encoder+kv', readerCfg, b * n * l, { taped: false });
  t5Decoder(L, 'reader.decoder', readerCfg, b, t, n * l, { taped: true, trainable: false, maskOnly: true });
  // LM head: x [b*t, d] . E^T [d, V] (tied, transposeB); frozen: dA only.
  L.add('reader.lm_head', 'lm_head', { m: b * t, k: readerCfg.dModel, n: readerCfg.vocabSize, tb: true }, { taped: true, dA: true, dB: false });
  // Reranker (RankT5): encoder over b*n pairs, cross K/V, decoder with one step, one-token head.
  const rows = b * n;
  t5Encoder(L, 'reranker.encoder+kv', rankerCfg, rows, pairLen, { taped: true, trainable: true });
  t5CrossKV(L, 'reranker.encoder+kv', rankerCfg, rows * pairLen, { taped: true, trainable: true });
  t5Decoder(L, 'reranker.decoder', rankerCfg, rows, 1, pairLen, { taped: true, trainable: true, kvNeedsGrad: true });
  L.add('reranker.decoder', 'score_head', { m: rows, k: rankerCfg.dModel, n: 1, tb: true }, { taped: true, dA: true, dB: true });
  return L;
}

// ---------------------------------------------------------------------------------------------
// Matmul-rate probes and a BatchMatMul timing wrapper

/** The shapes the probe times, one per matmul type (representative of the step). */
export function probeShapes(c, shape) {
  const S = shape.n * shape.passageLen;
  return {
    NN: { a: [S, c.dModel], b: [c.dModel, c.dFf], ta: false, tb: false }, // forward projection (XNNPACK on wasm)
    NT: { a: [S, c.dFf], b: [c.dModel, c.dFf], ta: false, tb: true }, // dX = dY W^T
    TN: { a: [S, c.dModel], b: [S, c.dFf], ta: true, tb: false }, // dW = X^T dY
    batched: { a: [shape.n * c.numHeads, shape.passageLen, c.dKv], b: [shape.n * c.numHeads, shape.passageLen, c.dKv], ta: false, tb: true }, // attention scores
  };
}

function productFlops(a, b, ta, tb) {
  const batch = a.length === 3 ? a[0] : 1;
  const m = ta ? a[a.length - 1] : a[a.length - 2];
  const k = ta ? a[a.length - 2] : a[a.length - 1];
  const n = tb ? b[b.length - 2] : b[b.length - 1];
  return 2 * batch * m * k * n;
}

/** GFLOP/s of repeated matMul for each probe shape (after one warm-up call). */
export function matmulRates(shapes, reps) {
  const out = {};
  for (const [kind, { a, b, ta, tb }] of Object.entries(shapes)) {
    const A = tf.randomNormal(a);
    const B = tf.randomNormal(b);
    const run = () => {
      const o = tf.matMul(A, B, ta, tb);
      o.dataSync();
      o.dispose();
    };
    run();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    const ms = (performance.now() - t0) / reps;
    const flops = productFlops(a, b, ta, tb);
    out[kind] = { shape: `${fmtShape(a)}${ta ? 'ᵀ' : ''}x${fmtShape(b)}${tb ? 'ᵀ' : ''}`, ms, gflops: flops / ms / 1e6 };
    tf.dispose([A, B]);
  }
  return out;
}

function fmtShape(s) {
  return `[${s.join(',')}]`;
}

/**
 * Wraps the current backend's BatchMatMul kernel to time every call by type (NN, NT, TN,
 * batched) with its FLOPs. Returns { stats, restore }. Kernel setup already ran at backend
 * init, so re-registering with the same setupFunc and a wrapped kernelFunc is safe.
 */
export function instrumentMatMul() {
  const backendName = tf.getBackend();
  const orig = tf.getKernel('BatchMatMul', backendName);
  const stats = {};
  if (!orig) return { stats, restore: () => {} };
  const wrapped = {
    ...orig,
    kernelFunc: (args) => {
      const { a, b } = args.inputs;
      const { transposeA: ta, transposeB: tb } = args.attrs;
      const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
      const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
      const batch = Math.max(batchA, batchB);
      const kind = kindOf(batch, ta, tb);
      const m = ta ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
      const k = ta ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
      const n = tb ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
      const t0 = performance.now();
      const out = orig.kernelFunc(args);
      const ms = performance.now() - t0;
      const s = (stats[kind] ??= { calls: 0, ms: 0, flops: 0 });
      s.calls++;
      s.ms += ms;
      s.flops += 2 * batch * m * k * n;
      return out;
    },
  };
  tf.unregisterKernel('BatchMatMul', backendName);
  tf.registerKernel(wrapped);
  return {
    stats,
    restore: () => {
      tf.unregisterKernel('BatchMatMul', backendName);
      tf.registerKernel(orig);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Memory: bytes of distinct data buffers

let counter;

/**
 * Live bytes of distinct tensor data buffers, and their peak. tf.memory().numBytes and
 * tf.profile()'s peakBytes count bytes per tensor handle, so a reshape or a shared clone of a
 * 100 MB tensor counts 200 MB; this counts each buffer once. It hooks the engine's
 * trackTensor/removeDataId (where tfjs registers and forgets a buffer). Installed once.
 */
export function bufferCounter() {
  if (counter) return counter;
  const e = tf.engine();
  const st = { bytes: 0, peak: 0 };
  // Buffers alive before installation.
  st.bytes = e.state.numBytes;
  st.peak = st.bytes;
  const track = e.trackTensor;
  const remove = e.removeDataId;
  e.trackTensor = function (a, backend) {
    const isNew = !this.state.tensorInfo.has(a.dataId);
    const r = track.call(this, a, backend);
    if (isNew) {
      st.bytes += this.state.tensorInfo.get(a.dataId)?.bytes ?? 0;
      if (st.bytes > st.peak) st.peak = st.bytes;
    }
    return r;
  };
  e.removeDataId = function (dataId, backend) {
    const info = this.state.tensorInfo.get(dataId);
    const r = remove.call(this, dataId, backend);
    if (info && !this.state.tensorInfo.has(dataId)) st.bytes -= info.bytes;
    return r;
  };
  counter = {
    get bytes() {
      return st.bytes;
    },
    get peak() {
      return st.peak;
    },
    resetPeak() {
      st.peak = st.bytes;
    },
  };
  return counter;
}

// ---------------------------------------------------------------------------------------------
// What-if experiments (bench-only kernel overrides in the benchmark's own process; not product
// code). They quantify where wasm time and memory go.

/**
 * 'share-identity': Identity (tf.clone; the engine clones every tensor it saves for backward)
 * shares the buffer (incRef) as the cpu backend does, instead of wasm's copy.
 * 'tidy-encoder-layers': T5Model.encode runs each layer in its own tf.tidy, so that outside the
 * tape (the reader's encoder) a layer's intermediates are freed before the next layer runs
 * (dist's encode keeps every layer's until encodePassages' tidy ends). Ignores `capture`.
 */
export async function applyExperiments(names) {
  const applied = [];
  const be = tf.getBackend();
  for (const name of names) {
    if (name === 'share-identity') {
      const orig = tf.getKernel('Identity', be);
      tf.unregisterKernel('Identity', be);
      tf.registerKernel({
        ...orig,
        kernelFunc: ({ inputs, backend }) => {
          const x = inputs.x;
          if (x.dtype === 'string') return orig.kernelFunc({ inputs, backend, attrs: {} });
          backend.incRef(x.dataId);
          return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
        },
      });
      applied.push(name);
    } else if (name === 'tidy-encoder-layers') {
      const { T5Model } = await import('../dist/models/t5.js');
      const { maskToBias } = await import('../dist/models/layers.js');
      T5Model.prototype.encode = function (inputIds, attentionMask) {
        const c = this.config;
        const len = inputIds.shape[1];
        let h = this.embed(inputIds);
        const pos = this.positionBias('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', len, len, true);
        const bias = tf.add(pos, maskToBias(attentionMask));
        for (let i = 0; i < c.numLayers; i++) {
          const prev = h;
          const b = `encoder.block.${i}`;
          h = tf.tidy(() => {
            const { out } = this.attend(`${b}.layer.0.SelfAttention`, this.norm(`${b}.layer.0.layer_norm.weight`, prev), null, bias);
            const x = tf.add(prev, out);
            return tf.add(x, this.ffn(`${b}.layer.1`, this.norm(`${b}.layer.1.layer_norm.weight`, x)));
          });
        }
        return this.norm('encoder.final_layer_norm.weight', h);
      };
      applied.push(name);
    } else {
      throw new Error(`unknown experiment ${name} (share-identity, tidy-encoder-layers)`);
    }
  }
  return applied;
}

/** Top kernels of a tf.profile() result by total time. */
export async function topKernels(profile, top) {
  const agg = new Map();
  for (const k of profile.kernels) {
    const ms = await k.kernelTimeMs;
    const t = typeof ms === 'number' ? ms : (ms?.error ? 0 : Number(ms) || 0);
    const a = agg.get(k.name) ?? { kernel: k.name, calls: 0, ms: 0 };
    a.calls++;
    a.ms += t;
    agg.set(k.name, a);
  }
  const all = [...agg.values()].sort((x, y) => y.ms - x.ms);
  const total = all.reduce((s, x) => s + x.ms, 0);
  return { total_ms: total, kernels: all.slice(0, top).map((x) => ({ ...x, ms: round(x.ms, 1), share: round(x.ms / total, 3) })) };
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function round(x, d = 2) {
  if (x === undefined || x === null || !Number.isFinite(x)) return x;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function mib(bytes) {
  return bytes === undefined ? '-' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** A plain-text table: header row, rows of strings/numbers, right-aligned numbers. */
export function table(header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? '-' : String(c))));
  const w = header.map((_, j) => Math.max(...cells.map((r) => r[j].length)));
  const isNum = header.map((_, j) => rows.every((r) => typeof r[j] === 'number' || /^[-+]?[\d.,]+( ?[a-zA-Z%/×x]+)?$/.test(String(r[j] ?? ''))));
  const line = (r) => r.map((c, j) => (isNum[j] ? c.padStart(w[j]) : c.padEnd(w[j]))).join('  ');
  return [line(cells[0]), w.map((x) => '-'.repeat(x)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
