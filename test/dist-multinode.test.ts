import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { freePort } from './helpers/cli.js';
import { REPO } from './helpers/shared.js';
import { relDiff, tinyTrainingJob } from './helpers/tiny.js';

// Two "nodes" on this host: two launchers started the way `srun` starts one per node (the same
// SLURM job environment, SLURM_NODEID 0 and 1). The node list names this host twice under two
// spellings, so the launchers take each other for separate hosts: the ring runs over ipc within
// a node and over tcp between the nodes, as on a cluster, and each launcher only sees its own
// workers.
const job = tinyTrainingJob();
const work = job.work;
afterAll(job.remove);

const LAUNCHER = join(REPO, 'launcher', 'start.js');
const NODES = ['localhost', '127.0.0.1'];
const common = (out: string, steps: number, batch: number) => [...job.args(out, steps, batch), '--metrics-port', '0'];

interface NodeRun {
  code: number | null;
  stderr: string;
  /** When the launcher exited (performance.now()). */
  at: number;
}

/** Starts one launcher per node with 2 CPU workers each; `act` sees every node's stderr as it grows. */
async function twoNodes(args: string[], act?: (node: number, stderr: string, child: ChildProcess) => void): Promise<NodeRun[]> {
  const port = await freePort();
  const env = {
    ...process.env,
    SLURM_JOB_ID: '4242',
    SLURM_NNODES: '2',
    SLURM_JOB_NODELIST: NODES.join(','),
    MASTER_PORT: String(port),
    GRERANK_JOB_SECRET: 'c0ffee'.repeat(10) + 'abcd',
    GRERANK_DIST_TIMEOUT_MS: '8000',
  };
  return Promise.all(
    NODES.map(
      (_, node) =>
        new Promise<NodeRun>((resolve) => {
          const child = spawn(process.execPath, [LAUNCHER, '--cpu-workers', '2', ...args], { env: { ...env, SLURM_NODEID: String(node) }, stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr!.on('data', (d: Buffer) => {
            stderr += d.toString();
            act?.(node, stderr, child);
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), 280_000);
          child.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, stderr, at: performance.now() });
          });
        }),
    ),
  );
}

const weights = (out: string) => readSafetensors(join(out, 'reranker', 'model.safetensors'));

describe('two nodes (two launchers, tcp between them, ipc within each)', () => {
  it('2 nodes × 2 workers × batch 1 train the same reranker as 1 worker × batch 4 (with --ring-security plain)', async () => {
    const steps = 4;
    const single = spawnSync(process.execPath, [LAUNCHER, '--cpu-workers', '1', ...common(join(work, 'one'), steps, 4)], { encoding: 'utf8', timeout: 240_000 });
    expect(single.status, single.stderr).toBe(0);
    const out = join(work, 'nodes');
    const runs = await twoNodes([...common(out, steps, 1), '--ring-security', 'plain']);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(runs[0]!.stderr).toContain('node 0/2: starting ranks 0..1 of 4');
    expect(runs[1]!.stderr).toContain('node 1/2: starting ranks 2..3 of 4');
    // Within a node over ipc, between the nodes over tcp: rank 1 sends to rank 2, rank 3 to rank 0.
    expect(runs[0]!.stderr).toMatch(/rank 0: joining the ring \(listening on tcp:\/\/localhost:\d+, sending to ipc:\/\/\S+\/rank-1\.sock; ring security plain\)/);
    expect(runs[0]!.stderr).toMatch(/rank 1: joining the ring \(listening on ipc:\/\/\S+\/rank-1\.sock, sending to tcp:\/\/127\.0\.0\.1:\d+; ring security plain\)/);
    expect(runs[1]!.stderr).toMatch(/rank 3: joining the ring \(listening on ipc:\/\/\S+\/rank-3\.sock, sending to tcp:\/\/localhost:\d+; ring security plain\)/);
    const a = weights(out);
    for (const [name, t] of weights(join(work, 'one'))) expect(relDiff(a.get(name)!.data as Float32Array, t.data as Float32Array), name).toBeLessThanOrEqual(1e-5);
    const cfg = JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8')) as { distributed: { worldSize: number; globalBatch: number } };
    expect(cfg.distributed).toMatchObject({ worldSize: 4, globalBatch: 4 });
  }, 300_000);

  it('kill -9 of a worker on node 1: both launchers restart their workers from the latest checkpoint, and the job ends as the uninterrupted one', async () => {
    const STEPS = 40;
    const args = (out: string) => [...common(out, STEPS, 1), '--save-every', '10', '--max-restarts', '1'];
    const ref = await twoNodes(args(join(work, 'ref')));
    for (const r of ref) expect(r.code, r.stderr).toBe(0);

    let killed = false;
    const out = join(work, 'restart');
    const runs = await twoNodes(args(out), (node, stderr) => {
      const pid = /rank 3 pid (\d+)/.exec(stderr)?.[1];
      if (node === 1 && !killed && pid && /"rank":3,"step":13,/.test(stderr)) {
        killed = true;
        process.kill(Number(pid), 'SIGKILL');
      }
    });
    expect(killed).toBe(true);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(runs[1]!.stderr).toContain('; ring security auto)'); // CURVE between the nodes
    // The coordinator (in node 0's launcher) named the rank that died, on both nodes, not the ranks
    // of node 0 that only lost their ring neighbour, and restarted both nodes together.
    for (const r of runs) expect(r.stderr).toContain('worker rank 3 (node 1) was killed by signal SIGKILL; restarting all workers from the latest checkpoint (1/1)');
    expect(runs[0]!.stderr).toMatch(/resumed from \S+step-0000\d0 \(step \d+\)/);
    const a = weights(out);
    for (const [name, t] of weights(join(work, 'ref'))) expect(Buffer.from((a.get(name)!.data as Float32Array).buffer).equals(Buffer.from((t.data as Float32Array).buffer)), name).toBe(true);
  }, 600_000);

  it('SIGUSR1 to both launchers (srun forwarding a preemption signal): a checkpoint, and both exit 75', async () => {
    const out = join(work, 'preempt');
    const children: ChildProcess[] = [];
    let signalled = false;
    const runs = await twoNodes(common(out, 100000, 1), (node, stderr, child) => {
      children[node] = child;
      if (!signalled && node === 0 && children[1] && /"rank":0,"step":5,/.test(stderr)) {
        signalled = true;
        for (const c of children) c.kill('SIGUSR1');
      }
    });
    expect(signalled).toBe(true);
    for (const r of runs) expect(r.code, r.stderr).toBe(75);
    expect(runs[0]!.stderr).toMatch(/stopped on SIGUSR1 after \d+ steps .*checkpoint \S+step-\d+/);
  }, 300_000);

  it('restarts used up: both launchers exit 1 at once with the same message naming the rank that died', async () => {
    let killedAt = 0;
    const runs = await twoNodes([...common(join(work, 'budget'), 100000, 1), '--max-restarts', '0'], (node, stderr) => {
      const pid = /rank 3 pid (\d+)/.exec(stderr)?.[1];
      if (node === 1 && !killedAt && pid && /"rank":3,"step":3,/.test(stderr)) {
        killedAt = performance.now();
        process.kill(Number(pid), 'SIGKILL');
      }
    });
    expect(killedAt).toBeGreaterThan(0);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('error: worker rank 3 (node 1) was killed by signal SIGKILL\n');
      // Ordered to stop by the coordinator, not left to find the broken ring (8 s timeout).
      expect(r.at - killedAt).toBeLessThan(6000);
    }
    expect(runs[0]!.stderr).toContain("stopping this node's workers: a worker on another node failed");
  }, 300_000);

  it('the launcher of node 1 dies: node 0 names it after --heartbeat-timeout and ends the job; node 1\'s workers exit too', async () => {
    let killedAt = 0;
    const pids: number[] = [];
    const runs = await twoNodes([...common(join(work, 'lost'), 100000, 1), '--heartbeat-timeout', '3'], (node, stderr, child) => {
      if (node === 1 && !killedAt && /"rank":3,"step":3,/.test(stderr)) {
        pids.push(...[...stderr.matchAll(/rank [23] pid (\d+)/g)].map((m) => Number(m[1])));
        killedAt = performance.now();
        child.kill('SIGKILL');
      }
    });
    expect(killedAt).toBeGreaterThan(0);
    expect(runs[0]!.code, runs[0]!.stderr).toBe(1);
    expect(runs[0]!.stderr).toMatch(/error: the launcher of node 1 sent nothing for \d+\.\d s/);
    expect(runs[0]!.at - killedAt).toBeGreaterThan(2500);
    expect(runs[0]!.at - killedAt).toBeLessThan(20_000);
    // The orphaned workers noticed their launcher was gone and exited.
    expect(pids).toHaveLength(2);
    for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive)).toEqual([]);
  }, 300_000);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
