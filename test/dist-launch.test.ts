import { describe, expect, it } from 'vitest';
import { deviceAssignment, expandHostlist, parseSlurmEnv, portForJob, resolveLaunch, workerIdentity } from '../src/dist/launch.js';
import { HeartbeatMonitor, heartbeatInterval } from '../src/dist/heartbeat.js';
import { planEpoch, stepsPerEpoch } from '../src/dist/plan.js';
import { microBatches } from '../src/train/run.js';

describe('SLURM hostlists and environment', () => {
  it('expands compressed hostlists', () => {
    expect(expandHostlist('gpu[01-04,07]')).toEqual(['gpu01', 'gpu02', 'gpu03', 'gpu04', 'gpu07']);
    expect(expandHostlist('node1')).toEqual(['node1']);
    expect(expandHostlist('a[1-2]-ib,b3')).toEqual(['a1-ib', 'a2-ib', 'b3']);
    expect(expandHostlist('gpu[08-11],cpu[1,3]')).toEqual(['gpu08', 'gpu09', 'gpu10', 'gpu11', 'cpu1', 'cpu3']);
    expect(expandHostlist('r[1-2]n[1-2]')).toEqual(['r1n1', 'r1n2', 'r2n1', 'r2n2']);
    expect(expandHostlist('x[098-101]')).toEqual(['x098', 'x099', 'x100', 'x101']);
    expect(() => expandHostlist('gpu[01-04')).toThrow(/unbalanced/);
    expect(() => expandHostlist('gpu[4-1]')).toThrow(/backwards/);
  });

  it('parses SLURM_NNODES / SLURM_NODEID / SLURM_JOB_ID', () => {
    expect(parseSlurmEnv({})).toBeUndefined();
    const s = parseSlurmEnv({ SLURM_JOB_ID: '123456', SLURM_NNODES: '4', SLURM_NODEID: '2', SLURM_JOB_NODELIST: 'gpu[01-04]' })!;
    expect(s).toEqual({ jobId: 123456, nnodes: 4, nodeRank: 2, hosts: ['gpu01', 'gpu02', 'gpu03', 'gpu04'] });
    expect(() => parseSlurmEnv({ SLURM_JOB_ID: '1', SLURM_NNODES: '3', SLURM_JOB_NODELIST: 'gpu[01-02]' })).toThrow(/SLURM_NNODES=3/);
    expect(() => parseSlurmEnv({ SLURM_JOB_ID: '1', SLURM_NNODES: '2', SLURM_NODEID: '2', SLURM_JOB_NODELIST: 'gpu[01-02]' })).toThrow(/SLURM_NODEID/);
  });

  it('places ranks: node rank × workers, job port, MASTER_ADDR/MASTER_PORT overrides', () => {
    const env = { SLURM_JOB_ID: '123456', SLURM_NNODES: '4', SLURM_NODEID: '2', SLURM_JOB_NODELIST: 'gpu[01-04]' };
    const p = resolveLaunch(env, 8);
    expect(p.worldSize).toBe(32);
    expect(p.rankOffset).toBe(16);
    expect(p.masterAddr).toBe('gpu01');
    expect(p.masterPort).toBe(portForJob(123456));
    expect(p.masterPort).toBe(15000 + 456 * 40);
    expect(p.basePort).toBe(p.masterPort + 1);
    expect(p.rankHosts[0]).toBe('gpu01');
    expect(p.rankHosts[16]).toBe('gpu03');
    expect(p.rankHosts[31]).toBe('gpu04');
    const o = resolveLaunch({ ...env, MASTER_ADDR: '10.0.0.5', MASTER_PORT: '40000' }, 8);
    expect(o.masterAddr).toBe('10.0.0.5');
    expect(o.masterPort).toBe(40000);
    expect(o.basePort).toBe(40001);
    const local = resolveLaunch({}, 2);
    expect(local).toMatchObject({ nnodes: 1, nodeRank: 0, worldSize: 2, rankOffset: 0, masterPort: 29500, rankHosts: ['127.0.0.1', '127.0.0.1'] });
    expect(() => resolveLaunch({}, 0)).toThrow();
  });

  it('assigns devices, respecting a CUDA_VISIBLE_DEVICES list SLURM already set', () => {
    expect(deviceAssignment({ CUDA_VISIBLE_DEVICES: '2,3,5,6' }, 4, 'gpu')).toEqual(['2', '3', '5', '6']);
    expect(deviceAssignment({ CUDA_VISIBLE_DEVICES: '4,5' }, 1, 'gpu')).toEqual(['4']);
    expect(deviceAssignment({}, 3, 'gpu')).toEqual(['0', '1', '2']);
    expect(deviceAssignment({ SLURM_STEP_GPUS: '1,7' }, 2, 'gpu')).toEqual(['1', '7']);
    expect(() => deviceAssignment({ CUDA_VISIBLE_DEVICES: '0' }, 2, 'gpu')).toThrow(/only 1 device/);
    expect(deviceAssignment({ CUDA_VISIBLE_DEVICES: '0,1' }, 2, 'cpu')).toEqual(['', '']);
  });

  it('reads a worker identity from env, with argv overrides', () => {
    const id = workerIdentity({ GRERANK_RANK: '1', GRERANK_WORLD_SIZE: '2', GRERANK_JOB_SECRET: 's', GRERANK_RANK_HOSTS: 'a,b', GRERANK_BASE_PORT: '3000', GRERANK_DIST_TIMEOUT_MS: '5000' });
    expect(id).toMatchObject({ rank: 1, worldSize: 2, rankHosts: ['a', 'b'], basePort: 3000, timeoutMs: 5000, secret: 's' });
    expect(workerIdentity({ GRERANK_JOB_SECRET: 's' }, ['--rank', '2', '--world-size', '3']).rank).toBe(2);
    expect(() => workerIdentity({ GRERANK_RANK: '1', GRERANK_WORLD_SIZE: '2' })).toThrow(/GRERANK_JOB_SECRET/);
    expect(() => workerIdentity({ GRERANK_RANK: '2', GRERANK_WORLD_SIZE: '2', GRERANK_JOB_SECRET: 's' })).toThrow(/not below/);
    expect(id.security).toBe('auto');
    expect(workerIdentity({ GRERANK_JOB_SECRET: 's', GRERANK_RING_SECURITY: 'plain' }).security).toBe('plain');
    // `none` exists for benchmarks only: a worker never opens an unguarded port.
    expect(() => workerIdentity({ GRERANK_JOB_SECRET: 's', GRERANK_RING_SECURITY: 'none' })).toThrow("GRERANK_RING_SECURITY is 'none': expected auto, curve, plain");
  });
});

describe('per-epoch data plan', () => {
  it('gives disjoint per-worker batches that cover the epoch, deterministically', () => {
    for (const [count, b, w] of [[16, 2, 2], [17, 3, 2], [40, 4, 4], [9, 1, 3]] as const) {
      const plan = planEpoch(count, 7, 1, b, w);
      expect(plan).toEqual(planEpoch(count, 7, 1, b, w));
      expect(plan).toHaveLength(stepsPerEpoch(count, b, w));
      const seen = new Set<number>();
      for (const shards of plan) {
        expect(shards).toHaveLength(w);
        const inStep = shards.flat();
        expect(shards.every((s) => s.length === b)).toBe(true);
        expect(new Set(inStep).size).toBe(inStep.length); // disjoint within a step
        inStep.forEach((i) => seen.add(i));
      }
      expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: count }, (_, i) => i));
      // Exact multiples: every example exactly once.
      if (count % (b * w) === 0) expect(plan.flat(2)).toHaveLength(count);
    }
    expect(planEpoch(16, 7, 1, 2, 2)).not.toEqual(planEpoch(16, 7, 2, 2, 2));
  });

  it('the global batch is the same set whatever the split (1 × 2B vs 2 × B)', () => {
    const one = planEpoch(20, 3, 0, 4, 1);
    const two = planEpoch(20, 3, 0, 2, 2);
    expect(two.map((s) => s.flat())).toEqual(one.map((s) => s.flat()));
  });

  it('with accumulation, a worker gets its micro-batches in one slice: global batch = B × workers × accumulation', () => {
    const one = planEpoch(20, 3, 0, 4, 1);
    const acc = planEpoch(20, 3, 0, 1, 2, 2);
    expect(acc).toHaveLength(stepsPerEpoch(20, 1, 2, 2));
    expect(stepsPerEpoch(20, 1, 2, 2)).toBe(5);
    expect(acc.every((s) => s.every((slice) => slice.length === 2))).toBe(true);
    expect(acc.map((s) => s.flat())).toEqual(one.map((s) => s.flat()));
    expect(microBatches(acc[0]![1]!, 1)).toEqual([[acc[0]![1]![0]], [acc[0]![1]![1]]]);
    expect(() => planEpoch(20, 3, 0, 1, 2, 0)).toThrow(/accumulation/);
  });
});

describe('heartbeat monitor', () => {
  it('names the ranks silent for longer than the timeout, ignores strangers, and forgets exited ranks', () => {
    const m = new HeartbeatMonitor([4, 5], 1000, 0);
    expect(m.overdue(900)).toEqual([]);
    m.beat({ type: 'heartbeat', rank: 4, step: 7 }, 900);
    m.beat({ type: 'heartbeat', rank: 9, step: 1 }, 900); // not one of ours
    m.beat('noise', 900);
    expect(m.overdue(1500)).toEqual([{ rank: 5, silentMs: 1500, step: undefined }]);
    expect(m.overdue(2500).map((x) => [x.rank, x.step])).toEqual([[5, undefined], [4, 7]]);
    m.forget(5);
    expect(m.overdue(2500).map((x) => x.rank)).toEqual([4]);
    expect(new HeartbeatMonitor([0], 0, 0).overdue(1e9)).toEqual([]);
    expect(heartbeatInterval(60_000)).toBe(10_000);
    expect(heartbeatInterval(600)).toBe(250);
  });
});
