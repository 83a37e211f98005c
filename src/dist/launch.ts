/**
 * Pure launch-time helpers (no I/O): SLURM environment parsing, hostlist expansion, job ports,
 * MASTER_ADDR / MASTER_PORT overrides and per-worker device assignment. launcher/start.js uses
 * them to place `workersPerNode` workers on this node. See docs/distributed.md ("Launching").
 */
import { GrerankError } from '../errors.js';
import type { RingSecurity } from './transport.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Splits on commas that are not inside brackets. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (depth < 0) throw new GrerankError(`bad hostlist "${s}": unbalanced ']'`);
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw new GrerankError(`bad hostlist "${s}": unbalanced '['`);
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x.length > 0);
}

function expandOne(item: string, whole: string): string[] {
  const open = item.indexOf('[');
  if (open < 0) return [item];
  const close = item.indexOf(']', open);
  const prefix = item.slice(0, open);
  const body = item.slice(open + 1, close);
  const rest = expandOne(item.slice(close + 1), whole);
  const values: string[] = [];
  for (const part of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new GrerankError(`bad hostlist "${whole}": range "${part}"`);
    const lo = m[1]!;
    const hi = m[2] ?? lo;
    const a = Number(lo);
    const b = Number(hi);
    if (b < a) throw new GrerankError(`bad hostlist "${whole}": range ${lo}-${hi} runs backwards`);
    const width = lo.length; // SLURM keeps the zero padding of the lower bound
    for (let v = a; v <= b; v++) values.push(String(v).padStart(width, '0'));
  }
  return values.flatMap((v) => rest.map((r) => prefix + v + r));
}

/**
 * SLURM's compressed hostlist, e.g. `gpu[01-04,07]` -> gpu01 gpu02 gpu03 gpu04 gpu07;
 * `a[1-2]-ib,b3` -> a1-ib a2-ib b3; several bracket groups expand as a product.
 */
export function expandHostlist(list: string): string[] {
  return splitTop(list).flatMap((item) => expandOne(item, list));
}

function int(env: Env, name: string, min = 0): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new GrerankError(`${name}=${v}: expected an integer >= ${min}`);
  return x;
}

export interface SlurmInfo {
  jobId: number;
  nnodes: number;
  /** This node's index in the allocation (SLURM_NODEID). */
  nodeRank: number;
  /** Node host names in node-rank order. */
  hosts: string[];
}

/** The SLURM job this process runs in, or undefined outside SLURM (no SLURM_JOB_ID). */
export function parseSlurmEnv(env: Env): SlurmInfo | undefined {
  const jobId = int(env, 'SLURM_JOB_ID') ?? int(env, 'SLURM_JOBID');
  if (jobId === undefined) return undefined;
  const list = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  const hosts = list ? expandHostlist(list) : [env.SLURMD_NODENAME ?? 'localhost'];
  const nnodes = int(env, 'SLURM_NNODES', 1) ?? int(env, 'SLURM_JOB_NUM_NODES', 1) ?? hosts.length;
  const nodeRank = int(env, 'SLURM_NODEID') ?? 0;
  if (hosts.length !== nnodes) throw new GrerankError(`SLURM_NNODES=${nnodes} but the node list names ${hosts.length} host(s): ${hosts.join(' ')}`);
  if (nodeRank >= nnodes) throw new GrerankError(`SLURM_NODEID=${nodeRank} is not below SLURM_NNODES=${nnodes}`);
  return { jobId, nnodes, nodeRank, hosts };
}

/** Default master port outside SLURM (torchrun's). */
export const DEFAULT_MASTER_PORT = 29500;

/**
 * A job-specific port so that jobs sharing a node do not collide: 15000 + (jobId mod 1000) × 40.
 * Rank r's ring socket listens on masterPort + 1 + r, so each job owns a block of 40 ports
 * (worlds up to 39 ranks without overlap with the next job's block).
 */
export function portForJob(jobId: number): number {
  return 15000 + (jobId % 1000) * 40;
}

export interface LaunchPlan {
  nnodes: number;
  nodeRank: number;
  workersPerNode: number;
  worldSize: number;
  /** Global rank of this node's first worker (nodeRank × workersPerNode). */
  rankOffset: number;
  /** Host of every global rank (ring neighbours on one host talk over ipc). */
  rankHosts: string[];
  masterAddr: string;
  masterPort: number;
  /** First ring port: rank r binds basePort + r on tcp links. */
  basePort: number;
  jobId?: number;
}

/**
 * Where this node's workers sit in the job. Under SLURM: nodes from the node list, this node's
 * rank from SLURM_NODEID, the port from the job id. MASTER_ADDR / MASTER_PORT override the
 * master (rank 0's host) and the port block in any case.
 */
export function resolveLaunch(env: Env, workersPerNode: number): LaunchPlan {
  if (!Number.isInteger(workersPerNode) || workersPerNode < 1) throw new GrerankError(`workers per node must be a positive integer, got ${workersPerNode}`);
  const slurm = parseSlurmEnv(env);
  const hosts = slurm?.hosts ?? ['127.0.0.1'];
  const nnodes = slurm?.nnodes ?? 1;
  const nodeRank = slurm?.nodeRank ?? 0;
  const masterAddr = env.MASTER_ADDR || hosts[0]!;
  const masterPort = int(env, 'MASTER_PORT', 1) ?? (slurm ? portForJob(slurm.jobId) : DEFAULT_MASTER_PORT);
  const worldSize = nnodes * workersPerNode;
  if (masterPort + worldSize > 65535) throw new GrerankError(`MASTER_PORT=${masterPort}: ports up to ${masterPort + worldSize} are needed`);
  const rankHosts = Array.from({ length: worldSize }, (_, r) => hosts[Math.floor(r / workersPerNode)]!);
  if (!slurm && env.MASTER_ADDR) rankHosts.fill(env.MASTER_ADDR);
  return { nnodes, nodeRank, workersPerNode, worldSize, rankOffset: nodeRank * workersPerNode, rankHosts, masterAddr, masterPort, basePort: masterPort + 1, jobId: slurm?.jobId };
}

/**
 * CUDA_VISIBLE_DEVICES for each of this node's workers. GPU workers get one device each, taken
 * from the list SLURM (or the user) already set in CUDA_VISIBLE_DEVICES, else SLURM_STEP_GPUS /
 * SLURM_JOB_GPUS, else 0..n-1; CPU workers get '' (no GPU visible).
 */
export function deviceAssignment(env: Env, workers: number, kind: 'gpu' | 'cpu'): string[] {
  if (kind === 'cpu') return Array.from({ length: workers }, () => '');
  const listed = env.CUDA_VISIBLE_DEVICES ?? env.SLURM_STEP_GPUS ?? env.SLURM_JOB_GPUS;
  const devices = listed !== undefined ? listed.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : Array.from({ length: workers }, (_, i) => String(i));
  if (devices.length < workers) throw new GrerankError(`--gpus ${workers}: only ${devices.length} device(s) visible (${listed === undefined ? 'none' : `CUDA_VISIBLE_DEVICES=${listed}`})`);
  return devices.slice(0, workers);
}

/** Environment variables a worker reads (the launcher sets them). */
export const WORKER_ENV = {
  rank: 'GRERANK_RANK',
  worldSize: 'GRERANK_WORLD_SIZE',
  localRank: 'GRERANK_LOCAL_RANK',
  hosts: 'GRERANK_RANK_HOSTS',
  basePort: 'GRERANK_BASE_PORT',
  ipcDir: 'GRERANK_IPC_DIR',
  secret: 'GRERANK_JOB_SECRET',
  timeoutMs: 'GRERANK_DIST_TIMEOUT_MS',
  /** How ring links are guarded: auto (default), curve or plain (launcher: --ring-security). */
  ringSecurity: 'GRERANK_RING_SECURITY',
  /** How many times the launcher has restarted this job's workers (0 on the first start). */
  restarts: 'GRERANK_RESTARTS',
} as const;

export interface WorkerIdentity {
  rank: number;
  worldSize: number;
  localRank: number;
  rankHosts: string[];
  basePort: number;
  ipcDir: string;
  secret: string;
  timeoutMs: number;
  security: WorkerRingSecurity;
}

/** The transport's ring security modes less `none` (benchmarks only): what a worker accepts. */
export type WorkerRingSecurity = Exclude<RingSecurity, 'none'>;
// A type-only tie to the transport's list, so that this module stays free of ZeroMQ.
export const WORKER_RING_SECURITY = ['auto', 'curve', 'plain'] as const satisfies readonly WorkerRingSecurity[];

/** Checks a --ring-security / GRERANK_RING_SECURITY value. */
export function parseRingSecurity(value: string | undefined, source: string): WorkerRingSecurity {
  if (value === undefined || value === '') return 'auto';
  if (!(WORKER_RING_SECURITY as readonly string[]).includes(value)) {
    throw new GrerankError(`${source} is '${value}': expected ${WORKER_RING_SECURITY.join(', ')}`);
  }
  return value as WorkerRingSecurity;
}

/** A worker's identity from its environment (GRERANK_*), with argv overrides `--rank R --world-size W`. */
export function workerIdentity(env: Env, argv: readonly string[] = []): WorkerIdentity {
  const arg = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const e: Record<string, string | undefined> = { ...env };
  if (arg('--rank') !== undefined) e[WORKER_ENV.rank] = arg('--rank');
  if (arg('--world-size') !== undefined) e[WORKER_ENV.worldSize] = arg('--world-size');
  const worldSize = int(e, WORKER_ENV.worldSize, 1) ?? 1;
  const rank = int(e, WORKER_ENV.rank) ?? 0;
  if (rank >= worldSize) throw new GrerankError(`rank ${rank} is not below the world size ${worldSize}`);
  const secret = e[WORKER_ENV.secret] ?? '';
  if (worldSize > 1 && !secret) throw new GrerankError(`${WORKER_ENV.secret} is not set: the launcher hands every rank the job secret`);
  const rankHosts = (e[WORKER_ENV.hosts] ?? '').split(',').filter((h) => h.length > 0);
  const hosts = rankHosts.length ? rankHosts : Array.from({ length: worldSize }, () => '127.0.0.1');
  if (hosts.length !== worldSize) throw new GrerankError(`${WORKER_ENV.hosts} names ${hosts.length} host(s) for ${worldSize} ranks`);
  return {
    rank,
    worldSize,
    localRank: int(e, WORKER_ENV.localRank) ?? rank,
    rankHosts: hosts,
    basePort: int(e, WORKER_ENV.basePort, 1) ?? DEFAULT_MASTER_PORT + 1,
    ipcDir: e[WORKER_ENV.ipcDir] ?? '/tmp',
    secret,
    timeoutMs: int(e, WORKER_ENV.timeoutMs, 1) ?? 60_000,
    security: parseRingSecurity(e[WORKER_ENV.ringSecurity], WORKER_ENV.ringSecurity),
  };
}
