// The launcher under a real SLURM (slurmctld + slurmd on this machine, started by
// .ci/setup-slurm.sh): an `srun` of the 2-worker launcher, and an `sbatch` job that is
// preempted with SIGUSR1, requeues itself and resumes from its checkpoint.
// Skipped, with a warning that says what is missing, when SLURM is not installed or not running.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from './helpers/cli.js';
import { REPO } from './helpers/shared.js';
import { oneWordQaLines, TINY_WORDS, tinyT5Model } from './helpers/tiny.js';

/** Why the SLURM tests cannot run here, or undefined when an idle node is available. */
function slurmMissing(): string | undefined {
  const r = spawnSync('sinfo', ['-h', '-o', '%T %n'], { encoding: 'utf8', timeout: 15_000 });
  if (r.error) return (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? '`sinfo` not found (SLURM is not installed)' : `sinfo failed: ${r.error.message}`;
  if (r.status !== 0) return `sinfo failed (is slurmctld running?): ${r.stderr.trim()}`;
  // idle (or busy with other jobs, which only queues ours); down / drained / not responding: skip.
  if (!/^(idle|mixed|allocated|completing)[^*~#!%$@^-]* /m.test(r.stdout)) return `no idle SLURM node (sinfo says: ${r.stdout.trim().replace(/\n/g, '; ') || 'nothing'})`;
  const s = spawnSync('srun', ['--version'], { encoding: 'utf8' });
  if (s.error) return '`srun` not found';
  return undefined;
}
const missing = slurmMissing();
if (missing) console.warn(`test/slurm.test.ts: skipped: ${missing}; run .ci/setup-slurm.sh (as root) to start a one-node SLURM`);

const LAUNCHER = join(REPO, 'launcher', 'start.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `scontrol show job -o ID` as key=value pairs (finished jobs stay visible for MinJobAge). */
function jobInfo(id: string): Record<string, string> {
  const r = spawnSync('scontrol', ['show', 'job', '-o', id], { encoding: 'utf8' });
  const info: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/(\w+)=(\S*)/g)) info[m[1]!] ??= m[2]!;
  return info;
}

/** Rank 0's step logs (--log-format json: a worker's {"rank":0,...}, or grerank train's {"event":"train",...}). */
function rank0Steps(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{"rank":0,') || l.startsWith('{"event":"train",'))
    .map((l) => (JSON.parse(l) as { step: number }).step);
}

describe.skipIf(missing !== undefined)('the launcher under a real SLURM', () => {
  let work = '';
  let model = '';
  let data = '';
  const jobs: string[] = [];
  beforeAll(() => {
    work = tempDir('grerank-slurm-');
    chmodSync(work, 0o755); // slurmd runs the job as root here, but keep it readable anyway
    model = tinyT5Model([...TINY_WORDS, 'person']);
    chmodSync(model, 0o755);
    data = join(work, 'train.jsonl');
    writeFileSync(data, oneWordQaLines(16));
  });
  afterAll(() => {
    for (const id of jobs) spawnSync('scancel', [id]);
    if (work) removeDir(work);
    if (model) removeDir(model);
  });

  const common = (out: string, steps: number) => ['--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--out', out, '--steps', String(steps), '--batch-size', '2', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '4', '--lr', '1e-3', '--seed', '3', '--backend', 'wasm', '--log-format', 'json', '--log-every', '1', '--metrics-port', '0'];

  it('srun -N1 -n1 node launcher/start.js --cpu-workers 2 trains, placed by SLURM\'s environment', async () => {
    const out = join(work, 'srun');
    // What the launcher's plan is inside a real step: job id, node list, node rank, job port.
    const probe = await run('srun', ['-N1', '-n1', '-J', 'grerank-test-probe', process.execPath, '--input-type=module', '-e', `const { resolveLaunch } = await import(${JSON.stringify(join(REPO, 'dist', 'dist', 'launch.js'))}); console.log(JSON.stringify({ jobId: process.env.SLURM_JOB_ID, plan: resolveLaunch(process.env, 2) }));`], 60_000);
    expect(probe.code, probe.stderr).toBe(0);
    const { jobId, plan } = JSON.parse(probe.stdout.trim().split('\n').pop()!) as { jobId: string; plan: { jobId: number; nnodes: number; nodeRank: number; worldSize: number; masterPort: number; basePort: number; rankHosts: string[] } };
    expect(plan.jobId).toBe(Number(jobId));
    expect(plan).toMatchObject({ nnodes: 1, nodeRank: 0, worldSize: 2, masterPort: 15000 + (Number(jobId) % 1000) * 40 });
    expect(plan.rankHosts).toEqual([hostname().split('.')[0], hostname().split('.')[0]]);

    const t0 = performance.now();
    const r = await run('srun', ['-N1', '-n1', '-J', 'grerank-test-srun', process.execPath, LAUNCHER, '--cpu-workers', '2', ...common(out, 3)], 120_000);
    const text = r.stdout + r.stderr;
    console.log(`srun --cpu-workers 2, 3 steps: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.code, text).toBe(0);
    // One node of one: SLURM_NNODES / SLURM_NODEID, not the defaults, gave the plan (same values here).
    expect(text).toContain('[launcher] node 0/1: starting ranks 0..1 of 2 (cpu workers)');
    expect(rank0Steps(text)).toEqual([1, 2, 3]);
    expect(existsSync(join(out, 'reranker', 'model.safetensors'))).toBe(true);
  }, 150_000);

  /**
   * sbatch a copy of slurm/train-1x8.sbatch (same slurm/preempt.sh) with the tiny model, preempt
   * it with SIGUSR1 to the batch shell after a few steps, and follow it to the end.
   * `launch`: the launcher's worker flags (['--cpu-workers', '2']), or [] for one process.
   */
  async function preemptAndResume(name: string, launch: string[], steps: number) {
    const out = join(work, name);
    const log = join(work, `${name}.out`);
    const script = join(work, `${name}.sbatch`);
    // slurm/train-1x8.sbatch with CPU workers, the tiny model and this test's paths.
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    writeFileSync(
      script,
      `#!/bin/bash
#SBATCH --job-name=grerank-test-${name}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --time=10
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=${log}
set -uo pipefail
cd ${q(REPO)}
source slurm/preempt.sh
_grerank_log "job $SLURM_JOB_ID run $(( \${SLURM_RESTART_COUNT:-0} + 1 ))"
run_preemptible srun --nodes=1 --ntasks-per-node=1 --cpus-per-task="\${SLURM_CPUS_PER_TASK:-1}" \\
  ${q(process.execPath)} launcher/start.js ${launch.join(' ')} ${common(out, steps).map(q).join(' ')} --resume auto
`,
    );
    const t0 = performance.now();
    const sub = spawnSync('sbatch', ['--parsable', script], { encoding: 'utf8' });
    expect(sub.status, sub.stderr).toBe(0);
    const id = sub.stdout.trim().split(';')[0]!;
    jobs.push(id);
    const text = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');

    // Preempt once rank 0 has logged a few steps: signal only the batch shell, as --signal=B:USR1 does.
    let signalled = false;
    for (let i = 0; i < 600 && !signalled; i++) {
      await sleep(200);
      const done = rank0Steps(text());
      if (done.length > 0 && Math.max(...done) >= 3) {
        const s = spawnSync('scancel', ['--signal=USR1', '--batch', id], { encoding: 'utf8' });
        expect(s.status, s.stderr).toBe(0);
        signalled = true;
      }
      expect(jobInfo(id).JobState, text()).not.toMatch(/FAILED|CANCELLED|COMPLETED/);
    }
    expect(signalled, `no steps logged:\n${text()}`).toBe(true);
    const tSignal = performance.now();

    // The job requeues itself, runs again and completes.
    let info: Record<string, string> = {};
    for (let i = 0; i < 600; i++) {
      await sleep(500);
      info = jobInfo(id);
      if (/COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY/.test(info.JobState ?? '')) break;
    }
    const t = text();
    console.log(`sbatch ${name} (${launch.join(' ') || 'one process'}): preempt/requeue/resume, ${steps} steps: ${((performance.now() - t0) / 1000).toFixed(1)} s (signal after ${((tSignal - t0) / 1000).toFixed(1)} s)`);
    expect(info.JobState, t).toBe('COMPLETED');
    expect(info.Restarts, t).toBe('1');
    expect(info.ExitCode).toBe('0:0');

    // First run: stopped on SIGUSR1 with a checkpoint, exit 75, requeued.
    expect(t).toContain('SIGUSR1: forwarding it to the step');
    expect(t).toContain('step exited with code 75');
    expect(t).toContain(`requeueing job ${id}`);
    // The second run resumed from the checkpoint the first one wrote.
    const resumed = /resumed from (\S+?)(?: \(step (\d+)\))?\n/.exec(t);
    expect(resumed, t).not.toBeNull();
    const k = Number(/step-(\d+)$/.exec(resumed![1]!)?.[1]);
    expect(resumed![1]).toBe(join(out, 'checkpoints', `step-${String(k).padStart(6, '0')}`));
    if (resumed![2] !== undefined) expect(Number(resumed![2])).toBe(k);
    expect(t).toContain(`job ${id} run 2`);
    // Steps 1..k before the preemption, k+1..steps after it: every step exactly once.
    const [before, after] = t.split(`job ${id} run 2`) as [string, string];
    const s1 = rank0Steps(before);
    const s2 = rank0Steps(after);
    expect(k).toBeGreaterThanOrEqual(3);
    expect(k).toBeLessThan(steps);
    expect(Math.max(...s1)).toBe(k);
    expect(s2[0]).toBe(k + 1);
    expect([...s1.filter((s) => s <= k), ...s2]).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(after).toContain('step exited with code 0');
    expect(existsSync(join(out, 'reranker', 'model.safetensors'))).toBe(true);
    expect(readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim()).toBe(`step-${String(steps).padStart(6, '0')}`);
  }

  it('sbatch --requeue, 2 CPU workers: SIGUSR1 to the batch shell checkpoints, requeues the job, and the next run resumes and finishes', async () => {
    await preemptAndResume('workers', ['--cpu-workers', '2'], 60);
  }, 170_000);

  it('sbatch --requeue, one process (grerank train, as without --cpu-workers): the same preemption and resume', async () => {
    await preemptAndResume('single', [], 40);
  }, 170_000);
});
