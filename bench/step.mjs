#!/usr/bin/env node
// One G-Rerank training step (Trainer.trainStep: GumbelObjective k=5, tau 0.5, kappa 1) per
// tfjs backend: a frozen FiD T5 reader (d 256, 8 heads x 32, d_ff 1024, 4+4 layers, vocab 32128)
// over 1 query x 20 passages x 128 tokens with a 16-token target, and a trainable RankT5
// reranker of the same size scoring the 20 (query, passage) pairs of 128 tokens. Random seeded
// weights (initT5StateDict) and token ids. Each backend runs in its own child process.
//
//   npm run bench:step                       # all backends that load, human table
//   node bench/step.mjs --backends wasm --steps 3 --warmup 1 --json
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { applyExperiments, BENCH_MODEL, bufferCounter, BENCH_SHAPE, instrumentMatMul, makeBatch, matmulRates, median, mib, parseArgs, probeShapes, round, setupBackend, stepFlops, table, topKernels, usage, wasmHeapBytes } from './lib.mjs';

const SPEC = {
  backends: { type: 'list', default: ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'], help: 'backends to try, each in its own process' },
  steps: { type: 'number', help: 'timed steps (default 5; 1 on cpu)' },
  warmup: { type: 'number', help: 'warm-up steps (default 2; 1 on cpu); the last one is profiled' },
  n: { type: 'number', default: BENCH_SHAPE.n, help: 'passages per query' },
  'passage-len': { type: 'number', default: BENCH_SHAPE.passageLen, help: 'reader tokens per passage' },
  'pair-len': { type: 'number', default: BENCH_SHAPE.pairLen, help: 'reranker tokens per pair' },
  'target-len': { type: 'number', default: BENCH_SHAPE.targetLen, help: 'target tokens' },
  profile: { type: 'boolean', default: true, help: 'profile the last warm-up step (kernels, peak memory); --no-profile to skip' },
  top: { type: 'number', default: 10, help: 'kernels to list' },
  'matmul-reps': { type: 'number', help: 'repetitions per matmul probe (default 5; 2 on cpu)' },
  experiment: { type: 'list', default: [], help: 'what-if kernel overrides in the bench process: share-identity, tidy-encoder-layers (see bench/lib.mjs)' },
  json: { type: 'boolean', default: false, help: 'one JSON object per backend per line' },
  out: { type: 'string', help: 'also append the JSON lines to this file' },
  child: { type: 'string', help: '(internal) run one backend in this process' },
  help: { type: 'boolean', default: false },
};

const HERE = fileURLToPath(import.meta.url);

function isSlow(backend) {
  return backend === 'cpu';
}

// ---------------------------------------------------------------------------------------------
// Child: one backend.

async function runChild(backend, opt) {
  const progress = (msg) => process.stderr.write(`[bench:step ${backend}] ${msg}\n`);
  const { notes } = await setupBackend(backend);
  const mem = bufferCounter();
  const experiments = await applyExperiments(opt.experiment);
  if (experiments.length) notes.push(`EXPERIMENT (not the product's kernels): ${experiments.join(', ')}`);
  const { t5Config, initT5StateDict } = await import('../dist/models/t5-init.js');
  const { T5Model } = await import('../dist/models/t5.js');
  const { FidReader } = await import('../dist/models/fid.js');
  const { RankT5, RANKT5_TOKEN_ID } = await import('../dist/models/rankt5.js');
  const { GumbelObjective } = await import('../dist/methods/gumbel.js');
  const { RerankerScorer } = await import('../dist/methods/scorer.js');
  const { Trainer } = await import('../dist/train/step.js');
  const { Rng } = await import('../dist/util/rng.js');

  const slow = isSlow(backend);
  const steps = opt.steps ?? (slow ? 1 : 5);
  const warmup = opt.warmup ?? (slow ? 1 : 2);
  const shape = { b: 1, n: opt.n, passageLen: opt['passage-len'], pairLen: opt['pair-len'], targetLen: opt['target-len'] };
  const cfg = t5Config(BENCH_MODEL);
  const gumbel = { k: 5, tau: 0.5, kappa: 1 };
  const config = { reader: { ...BENCH_MODEL, version: 'v1.0', layers: '4+4' }, reranker: 'RankT5 (same size), token 32089', ...shape, gumbel, optimizer: 'AdamW lr 1e-4 wd 0.01, clip 1.0' };

  progress('initialising weights');
  const reader = new FidReader(T5Model.fromStateDict(cfg, initT5StateDict(cfg, 1), { trainable: false }));
  const ranker = new RankT5(T5Model.fromStateDict(cfg, initT5StateDict(cfg, 2), { trainable: true }), RANKT5_TOKEN_ID);
  const batch = makeBatch(shape, cfg.vocabSize, 3);
  const trainer = new Trainer(new RerankerScorer(ranker), reader, new GumbelObjective(gumbel, new Rng(4)), {
    schedule: { lr: 1e-4, warmupSteps: 0, totalSteps: 1_000_000, kind: 'constant' },
    clipNorm: 1,
  });
  const vars = ranker.params.variables();
  // A host read of one updated weight: every backend here is synchronous, but this makes the
  // timing honest on one that is not.
  const sync = () => {
    const x = tf.slice(vars[vars.length - 1], [0], [1]);
    x.dataSync();
    x.dispose();
  };

  const ledger = stepFlops(cfg, cfg, shape);
  const gflop = ledger.total('nominal') / 1e9;
  const gflopExact = ledger.total('flops') / 1e9;

  const oneStep = async () => {
    const t0 = performance.now();
    const st = await trainer.trainStep(batch);
    sync();
    const ms = performance.now() - t0;
    return { ms, fb: st.seconds.forwardBackward * 1000, opt: st.seconds.optimizer * 1000, loss: st.loss, skipped: st.skipped };
  };

  const beforeBytes = mem.bytes;
  let profile;
  let matmulPaths;
  for (let i = 0; i < warmup; i++) {
    const last = i === warmup - 1;
    if (last && opt.profile) {
      progress(`warm-up ${i + 1}/${warmup} (profiled)`);
      const inst = instrumentMatMul();
      const startBytes = mem.bytes;
      mem.resetPeak();
      let r;
      try {
        const p = await tf.profile(async () => {
          r = await oneStep();
          return null;
        });
        profile = { peakBytes: mem.peak, tfjsPeakBytes: p.peakBytes, startBytes, newBytes: p.newBytes, newTensors: p.newTensors, top: await topKernels(p, opt.top), ms: r.ms };
      } finally {
        inst.restore();
      }
      matmulPaths = inst.stats;
      progress(`  ${r.ms.toFixed(0)} ms (profiled), loss ${r.loss.toFixed(4)}`);
    } else {
      progress(`warm-up ${i + 1}/${warmup}`);
      const r = await oneStep();
      progress(`  ${r.ms.toFixed(0)} ms, loss ${r.loss.toFixed(4)}`);
    }
  }
  const afterWarm = tf.memory();
  const residentBytes = mem.bytes;
  const timed = [];
  for (let i = 0; i < steps; i++) {
    const r = await oneStep();
    timed.push(r);
    progress(`step ${i + 1}/${steps}: ${r.ms.toFixed(0)} ms (fb ${r.fb.toFixed(0)}, opt ${r.opt.toFixed(0)}), loss ${r.loss.toFixed(4)}`);
  }
  const leaked = tf.memory().numTensors - afterWarm.numTensors;

  // Without a profiled step, sample tf.memory() around one more step (a lower bound of the peak).
  let peakBytes = profile?.peakBytes;
  let stepStart = profile?.startBytes;
  if (peakBytes === undefined) {
    stepStart = mem.bytes;
    mem.resetPeak();
    await oneStep();
    peakBytes = mem.peak;
  }

  progress('matmul probes');
  const rates = matmulRates(probeShapes(cfg, shape), opt['matmul-reps'] ?? (slow ? 2 : 5));

  const ms = median(timed.map((r) => r.ms));
  const achieved = gflop / (ms / 1000);
  const byKind = ledger.byKind('flops');
  // What the step would take if every matmul ran at its type's probed rate (and nothing else cost).
  const modelMs = Object.entries(byKind).reduce((s, [kind, f]) => s + (rates[kind] ? f / rates[kind].gflops / 1e6 : 0), 0);
  const paths = matmulPaths
    ? Object.fromEntries(Object.entries(matmulPaths).map(([k, s]) => [k, { calls: s.calls, ms: round(s.ms, 1), gflop: round(s.flops / 1e9, 2), gflops: round(s.flops / s.ms / 1e6, 2) }]))
    : undefined;

  return {
    backend,
    config: experiments.length ? { ...config, experiments } : config,
    ms_per_step: round(ms, 1),
    gflop: round(gflop, 2),
    peak_tensor_bytes: peakBytes,
    // extras
    steps,
    warmup,
    step_ms: timed.map((r) => round(r.ms, 1)),
    forward_backward_ms: round(median(timed.map((r) => r.fb)), 1),
    optimizer_ms: round(median(timed.map((r) => r.opt)), 1),
    gflop_executed: round(gflopExact, 2),
    gflop_by_part: Object.fromEntries(Object.entries(ledger.byGroup('nominal')).map(([k, v]) => [k, { fwd: round(v.fwd / 1e9, 2), bwd: round(v.bwd / 1e9, 2) }])),
    gflop_by_matmul_type: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, round(v / 1e9, 2)])),
    achieved_gflops: round(achieved, 2),
    matmul_gflops: round(rates.NN.gflops, 2),
    matmul_probe: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, { shape: v.shape, ms: round(v.ms, 2), gflops: round(v.gflops, 2) }])),
    achieved_over_matmul: round(achieved / rates.NN.gflops, 3),
    matmul_model_ms: round(modelMs, 0),
    matmul_in_step: paths,
    peak_source: 'distinct tensor buffers (engine hook), during one step',
    peak_step_bytes: peakBytes - stepStart,
    peak_tensor_bytes_tfjs_profile: profile?.tfjsPeakBytes,
    resident_tensor_bytes: residentBytes,
    resident_tensor_bytes_before_first_step: beforeBytes,
    leaked_tensors_per_step: round(leaked / Math.max(1, steps), 1),
    wasm_heap_bytes: wasmHeapBytes(),
    rss_bytes: process.memoryUsage().rss,
    profiled_step_ms: profile ? round(profile.ms, 1) : undefined,
    profiled_kernel_ms: profile ? round(profile.top.total_ms, 1) : undefined,
    top_kernels: profile?.top.kernels,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent: spawn one child per backend, print a table or JSON lines.

function nativeAvailable(backend) {
  if (backend !== 'tensorflow' && backend !== 'tensorflow-gpu') return true;
  const pkg = backend === 'tensorflow' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-node-gpu';
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function runBackend(backend, argv) {
  return new Promise((resolve) => {
    const args = [HERE, '--child', backend, ...argv];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      process.stderr.write(d);
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('@@RESULT '));
      if (line) resolve(JSON.parse(line.slice('@@RESULT '.length)));
      else {
        const lines = err.trim().split('\n').filter((l) => !l.startsWith('[bench:step'));
        const why = lines.find((l) => /Error|error:/.test(l)) ?? lines[lines.length - 1] ?? `exit ${code}`;
        resolve({ backend, error: why.trim(), exit_code: code });
      }
    });
  });
}

function stripBackends(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--backends') {
      i++;
      continue;
    }
    if (argv[i].startsWith('--backends=')) continue;
    out.push(argv[i]);
  }
  return out;
}

function printHuman(results) {
  const ok = results.filter((r) => !r.error && !r.skipped);
  if (ok.length) {
    const r0 = ok[0];
    console.log(`\nG-Rerank step: reader T5 v1.0 d${r0.config.reader.dModel}/${r0.config.reader.numHeads}x${r0.config.reader.dKv}/ff${r0.config.reader.dFf}/4+4 layers/V${r0.config.reader.vocabSize}; ` + `${r0.config.n} passages x ${r0.config.passageLen} tok, target ${r0.config.targetLen}; RankT5 reranker (same size) on ${r0.config.n} x ${r0.config.pairLen}; Gumbel k=5 tau 0.5 kappa 1`);
    console.log(`matmul FLOPs per step: ${r0.gflop} GFLOP (backward = 2x forward), ${r0.gflop_executed} GFLOP as executed (frozen reader: activation gradients only)`);
    console.log('  by part (fwd/bwd GFLOP): ' + Object.entries(r0.gflop_by_part).map(([k, v]) => `${k} ${v.fwd}/${v.bwd}`).join(', '));
    console.log('  by matmul type (GFLOP): ' + Object.entries(r0.gflop_by_matmul_type).map(([k, v]) => `${k} ${v}`).join(', ') + '  (2-D NN, 2-D with transposed operand NT/TN, batched)\n');
    console.log(
      table(
        ['backend', 'steps', 'ms/step', 'fwd+bwd ms', 'optim ms', 'GFLOP', 'GFLOP/s', 'matmul GFLOP/s', 'ratio', 'peak tensors', 'step peak'],
        ok.map((r) => [r.backend, `${r.warmup}+${r.steps}`, r.ms_per_step, r.forward_backward_ms, r.optimizer_ms, r.gflop, r.achieved_gflops, r.matmul_gflops, r.achieved_over_matmul, mib(r.peak_tensor_bytes), mib(r.peak_step_bytes)]),
      ),
    );
    for (const r of ok) {
      console.log(`\n[${r.backend}] matmul probes: ` + Object.entries(r.matmul_probe).map(([k, v]) => `${k} ${v.shape} ${v.gflops} GFLOP/s`).join('; '));
      console.log(`[${r.backend}] step time predicted from the probes (matmuls only): ${r.matmul_model_ms} ms; measured ${r.ms_per_step} ms`);
      if (r.matmul_in_step) {
        console.log(`[${r.backend}] BatchMatMul inside the profiled step, by type:`);
        console.log(table(['type', 'calls', 'ms', 'GFLOP', 'GFLOP/s'], Object.entries(r.matmul_in_step).map(([k, v]) => [k, v.calls, v.ms, v.gflop, v.gflops])));
      }
      if (r.top_kernels) {
        console.log(`[${r.backend}] top ${r.top_kernels.length} kernels of the profiled step (${r.profiled_kernel_ms} ms in kernels of ${r.profiled_step_ms} ms):`);
        console.log(table(['kernel', 'calls', 'ms', 'share'], r.top_kernels.map((k) => [k.kernel, k.calls, k.ms, `${(k.share * 100).toFixed(1)}%`])));
      }
      console.log(`[${r.backend}] peak = distinct tensor buffers during one step (tf.profile's peakBytes, which counts views and shared clones again: ${mib(r.peak_tensor_bytes_tfjs_profile)}); resident tensors ${mib(r.resident_tensor_bytes)} (weights + AdamW moments)${r.wasm_heap_bytes ? `, wasm heap ${mib(r.wasm_heap_bytes)}` : ''}, rss ${mib(r.rss_bytes)}, leaked tensors/step ${r.leaked_tensors_per_step}${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`);
    }
  }
  for (const r of results.filter((x) => x.error || x.skipped)) console.log(`\n[${r.backend}] ${r.skipped ? `skipped: ${r.skipped}` : `FAILED: ${r.error}`}`);
}

async function main() {
  const argv = process.argv.slice(2);
  const opt = parseArgs(argv, SPEC);
  if (opt.help) {
    console.log(`node bench/step.mjs [options]\n${usage(SPEC)}`);
    return;
  }
  if (opt.child) {
    try {
      const res = await runChild(opt.child, opt);
      process.stdout.write(`@@RESULT ${JSON.stringify(res)}\n`);
    } catch (e) {
      process.stderr.write(`${e.stack ?? e}\n`);
      process.exitCode = 1;
    }
    return;
  }
  const results = [];
  for (const backend of opt.backends) {
    if (!nativeAvailable(backend)) {
      const r = { backend, skipped: 'package not installed' };
      results.push(r);
      if (opt.json) console.log(JSON.stringify(r));
      continue;
    }
    const r = await runBackend(backend, stripBackends(argv));
    results.push(r);
    if (opt.json) console.log(JSON.stringify(r));
    if (opt.out) appendFileSync(opt.out, `${JSON.stringify(r)}\n`);
  }
  if (!opt.json) printHuman(results);
  if (results.every((r) => r.error || r.skipped)) process.exitCode = 1;
}

await main();
