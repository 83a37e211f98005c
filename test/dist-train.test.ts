import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { REPO } from './helpers/shared.js';
import { ONE_WORD_ANSWERS, oneWordQaLines, relDiff, tinyTrainingJob } from './helpers/tiny.js';

const job = tinyTrainingJob();
const { work, model, data } = job;
afterAll(job.remove);

const LAUNCHER = join(REPO, 'launcher', 'start.js');
const common = job.args;

interface Log {
  rank: number;
  step: number;
  loss: number;
  globalLoss: number;
}
function launch(workers: number, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [LAUNCHER, '--cpu-workers', String(workers), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000 });
  const logs: Log[] = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{"rank"'))
    .map((l) => JSON.parse(l));
  return { code: r.status, stderr: r.stderr, logs };
}

describe('data-parallel training over the ZeroMQ ring', () => {
  it('2 CPU workers × batch B train the same reranker as 1 worker × batch 2B', () => {
    const steps = 4;
    const one = launch(1, common(join(work, 'one'), steps, 4));
    expect(one.code, one.stderr).toBe(0);
    const two = launch(2, common(join(work, 'two'), steps, 2));
    expect(two.code, two.stderr).toBe(0);
    // Per-step loss: the single worker's loss over 2B examples is the mean of the two workers'.
    for (let s = 1; s <= steps; s++) {
      const single = one.logs.find((l) => l.step === s)!.loss;
      const r0 = two.logs.find((l) => l.step === s && l.rank === 0)!;
      const r1 = two.logs.find((l) => l.step === s && l.rank === 1)!;
      expect(Math.abs((r0.loss + r1.loss) / 2 - single) / Math.abs(single)).toBeLessThan(1e-5);
      expect(r0.globalLoss).toBeCloseTo((r0.loss + r1.loss) / 2, 10);
      expect(r0.loss).not.toBe(r1.loss);
    }
    const a = readSafetensors(join(work, 'two', 'reranker', 'model.safetensors'));
    const b = readSafetensors(join(work, 'one', 'reranker', 'model.safetensors'));
    const original = readSafetensors(join(model, 'model.safetensors'));
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    let moved = 0;
    for (const [name, t] of b) {
      const x = a.get(name)!.data as Float32Array;
      const y = t.data as Float32Array;
      expect(relDiff(x, y), name).toBeLessThanOrEqual(1e-5);
      if (relDiff(y, original.get(name)!.data as Float32Array) > 1e-4) moved++;
    }
    expect(moved).toBeGreaterThan(0);

    // Gradient accumulation: 2 workers × 2 micro-batches of 1 make the same global batch of 4.
    const acc = launch(2, [...common(join(work, 'acc'), steps, 1), '--accumulation-steps', '2']);
    expect(acc.code, acc.stderr).toBe(0);
    for (let s = 1; s <= steps; s++) {
      const single = one.logs.find((l) => l.step === s)!.loss;
      expect(Math.abs(acc.logs.find((l) => l.step === s && l.rank === 0)!.globalLoss - single) / Math.abs(single)).toBeLessThan(1e-5);
    }
    const c = readSafetensors(join(work, 'acc', 'reranker', 'model.safetensors'));
    for (const [name, t] of b) expect(relDiff(c.get(name)!.data as Float32Array, t.data as Float32Array), name).toBeLessThanOrEqual(1e-5);
    const accCfg = JSON.parse(readFileSync(join(work, 'acc', 'train-config.json'), 'utf8')) as { accumulationSteps: number; distributed: { globalBatch: number } };
    expect(accCfg.accumulationSteps).toBe(2);
    expect(accCfg.distributed.globalBatch).toBe(4);
  }, 420_000);

  it('answers of different lengths: the update is the gradient of the global token mean (ranks weighted by their target tokens)', () => {
    // Answers of 1 to 4 words: the two workers' shards hold different numbers of target tokens,
    // so the plain mean of the per-rank means would differ from the single worker's token mean.
    const A = ONE_WORD_ANSWERS;
    const uneven = join(work, 'uneven.jsonl');
    writeFileSync(
      uneven,
      oneWordQaLines(16)
        .trim()
        .split('\n')
        .map((l, i) => JSON.stringify({ ...JSON.parse(l), answers: [A.slice(0, 1 + ((i * 7) % 4)).join(' ')] }))
        .join('\n') + '\n',
    );
    const steps = 3;
    const withData = (args: string[]) => args.map((a) => (a === data ? uneven : a));
    const one = launch(1, withData(common(join(work, 'uneven-one'), steps, 4)));
    expect(one.code, one.stderr).toBe(0);
    const two = launch(2, withData(common(join(work, 'uneven-two'), steps, 2)));
    expect(two.code, two.stderr).toBe(0);
    // The logged global loss is the token-weighted mean too: the single worker's loss.
    for (let st = 1; st <= steps; st++) {
      const single = one.logs.find((l) => l.step === st)!.loss;
      expect(Math.abs(two.logs.find((l) => l.step === st && l.rank === 0)!.globalLoss - single) / single).toBeLessThan(1e-5);
    }
    const a = readSafetensors(join(work, 'uneven-two', 'reranker', 'model.safetensors'));
    for (const [name, t] of readSafetensors(join(work, 'uneven-one', 'reranker', 'model.safetensors'))) {
      expect(relDiff(a.get(name)!.data as Float32Array, t.data as Float32Array), name).toBeLessThanOrEqual(1e-5);
    }
  }, 300_000);

  it('rank 0 serves every rank\'s Prometheus metrics while the job runs', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const child = spawn(process.execPath, [LAUNCHER, '--cpu-workers', '2', '--metrics-port', String(port), ...common(join(work, 'metrics'), 400, 1), '--log-every', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let text = '';
    try {
      for (let i = 0; i < 600 && !/grerank_train_steps_total\{[^}]*rank="1"[^}]*\} [3-9]/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 200));
        text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      }
    } finally {
      child.kill('SIGTERM');
      await done;
    }
    for (const rank of ['0', '1']) {
      expect(text, stderr).toMatch(new RegExp(`grerank_train_steps_total\\{[^}]*rank="${rank}"[^}]*\\} \\d+`));
      expect(text).toMatch(new RegExp(`grerank_train_loss\\{[^}]*rank="${rank}"[^}]*\\} [0-9.]+`));
    }
    expect(text).toMatch(/grerank_build_info\{[^}]*backend="wasm"/);
    expect(text).toMatch(/grerank_train_step_phase_seconds_bucket\{[^}]*phase="allreduce"/);
  }, 180_000);

  it('--eval-every: rank 0 evaluates the in-memory reranker and writes OUT/eval.jsonl', () => {
    const evalData = join(work, 'eval.jsonl');
    const rows = readFileSync(data, 'utf8').trim().split('\n').slice(0, 4).map((l, i) => {
      const ex = JSON.parse(l) as { ctxs: Array<Record<string, unknown>> };
      ex.ctxs.forEach((c, j) => (c.gold = j === i % 5));
      return JSON.stringify(ex);
    });
    writeFileSync(evalData, rows.join('\n') + '\n');
    const out = join(work, 'eval');
    const r = launch(2, [...common(out, 6, 1), '--eval-every', '3', '--eval-data', evalData, '--eval-k', '2', '--metrics-port', '0']);
    expect(r.code, r.stderr).toBe(0);
    const evals = readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; final: boolean; metrics: Record<string, number> });
    expect(evals.map((e) => [e.step, e.final])).toEqual([[3, false], [6, true]]);
    for (const e of evals) expect(e.metrics['R@2']).toBeGreaterThanOrEqual(0);
  }, 300_000);

  /**
   * Starts a 2-worker launcher that would run for ever; once rank 1 has logged step 2, sends it
   * `signal`. Resolves with the launcher's exit code, its stderr, rank 1's pid and the time
   * from the signal to the launcher's exit.
   */
  async function signalRank1(signal: NodeJS.Signals, extra: string[], out: string, env: Record<string, string>) {
    const child = spawn(process.execPath, [LAUNCHER, '--cpu-workers', '2', '--max-restarts', '0', ...extra, ...common(join(work, out), 100000, 1)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let signalledAt = 0;
    let pid = 0;
    const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no step from rank 1 in time:\n${stderr}`)), 120_000);
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        pid ||= Number(/rank 1 pid (\d+)/.exec(stderr)?.[1] ?? 0);
        if (!signalledAt && pid && /"rank":1,"step":2,/.test(stderr)) {
          process.kill(pid, signal);
          signalledAt = performance.now();
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const code = await done;
    return { code, stderr, pid, elapsed: performance.now() - signalledAt };
  }

  it('kill -9 of one worker mid-run: the launcher exits non-zero, naming the rank, within the all-reduce timeout', async () => {
    const timeoutMs = 5000;
    const r = await signalRank1('SIGKILL', [], 'fault', { GRERANK_DIST_TIMEOUT_MS: String(timeoutMs) });
    expect(r.code).not.toBe(0);
    expect(r.elapsed).toBeLessThan(timeoutMs);
    expect(r.stderr).toContain('error: worker rank 1 was killed by signal SIGKILL');
  }, 180_000);

  it('a worker that is alive but hung (SIGSTOP) is named by the heartbeat monitor and all are stopped', async () => {
    // The ring would notice only after an hour here: the heartbeat is what catches it.
    const r = await signalRank1('SIGSTOP', ['--heartbeat-timeout', '3'], 'hung', { GRERANK_DIST_TIMEOUT_MS: '3600000' });
    expect(r.code).toBe(1);
    expect(r.elapsed).toBeGreaterThan(2500);
    expect(r.elapsed).toBeLessThan(30_000);
    expect(r.stderr).toMatch(/error: worker rank 1 sent no heartbeat for \d+\.\d s \(last at step \d+\): hung or stopped/);
    // The stopped process was killed, not left behind.
    expect(() => process.kill(r.pid, 0)).toThrow();
  }, 180_000);
});

describe('restarts and preemption of a data-parallel job', () => {
  const STEPS = 200;
  const args = (out: string) => [...common(out, STEPS, 1), '--save-every', '10', '--metrics-port', '0'];
  const weights = (out: string) => readFileSync(join(out, 'reranker', 'model.safetensors'));
  let reference: Buffer;

  /** Runs the launcher; `act(stderrSoFar, child)` is called on every chunk of its stderr. */
  async function run(extra: string[], out: string, act?: (stderr: string, child: ChildProcess) => void, env: Record<string, string> = {}) {
    const child = spawn(process.execPath, [LAUNCHER, '--cpu-workers', '2', ...args(out), ...extra], { env: { ...process.env, GRERANK_DIST_TIMEOUT_MS: '5000', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      act?.(stderr, child);
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stderr };
  }

  it('an uninterrupted run (the reference)', async () => {
    const r = await run([], join(work, 'ref'));
    expect(r.code, r.stderr).toBe(0);
    reference = weights(join(work, 'ref'));
  }, 300_000);

  it('kill -9 of a worker: the launcher restarts all from the latest checkpoint and ends bit-identical to the reference', async () => {
    let killed = false;
    const out = join(work, 'restart');
    const r = await run(['--max-restarts', '1'], out, (stderr) => {
      const pid = /rank 1 pid (\d+)/.exec(stderr)?.[1];
      if (!killed && pid && /"rank":1,"step":13,/.test(stderr)) {
        killed = true;
        process.kill(Number(pid), 'SIGKILL');
      }
    });
    expect(killed).toBe(true);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('worker rank 1 was killed by signal SIGKILL; restarting all workers from the latest checkpoint (1/1)');
    expect(r.stderr).toMatch(/resumed from \S+step-0000\d0 \(step \d+\)/);
    expect(weights(out).equals(reference)).toBe(true);
  }, 300_000);

  it('SIGUSR1 to the launcher: a checkpoint, exit 75; --resume latest ends bit-identical to the reference', async () => {
    const out = join(work, 'preempt');
    let signalled = false;
    const first = await run([], out, (stderr, child) => {
      if (!signalled && /"rank":0,"step":7,/.test(stderr)) {
        signalled = true;
        child.kill('SIGUSR1');
      }
    });
    expect(first.code, first.stderr).toBe(75);
    expect(first.stderr).toMatch(/stopped on SIGUSR1 after \d+ steps/);
    const stoppedAt = Number(/checkpoint \S+step-(\d+)/.exec(first.stderr)?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(7);
    expect(stoppedAt).toBeLessThan(STEPS);
    expect(existsSync(join(out, 'reranker'))).toBe(false);
    const second = await run(['--resume', 'latest'], out);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`(step ${stoppedAt})`);
    expect(weights(out).equals(reference)).toBe(true);
    // A checkpoint of another world size is refused in one line.
    const one = spawnSync(process.execPath, [LAUNCHER, '--cpu-workers', '1', ...args(out), '--resume', 'latest'], { encoding: 'utf8' });
    expect(one.status).toBe(1);
    expect(one.stderr).toMatch(/cannot resume: the training config differs in distributed\.worldSize/);
  }, 300_000);
});
