#!/usr/bin/env node
// Entry point for `srun node launcher/start.js ...` and local runs.
//
//   node launcher/start.js --demo [--quick]                 the embedded default (npm start)
//   node launcher/start.js --config FILE                    one training process (grerank train --config)
//   node launcher/start.js --cpu-workers N --config FILE    N data-parallel CPU workers on this node
//   node launcher/start.js --gpus N --config FILE           N data-parallel workers, one GPU each
//
// With N > 1 (or under SLURM with several nodes) the launcher starts N worker processes
// (dist/dist/worker.js) with ranks nodeRank × N + i, a fresh job secret (or GRERANK_JOB_SECRET
// when several nodes must share one) and a private ipc directory, and waits for all. A job-wide
// coordinator (src/dist/coordinator.ts; in node 0's launcher, reached over ZeroMQ at
// MASTER_ADDR:MASTER_PORT by the others) decides: when a worker fails, every node stops its
// workers and all start again from the latest checkpoint, up to --max-restarts times; then every
// launcher exits non-zero naming the rank. SIGTERM/SIGUSR1 (SLURM
// preemption) are forwarded: the workers save a checkpoint and exit 75, and so does the
// launcher. See docs/distributed.md.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const workerJs = join(root, 'dist', 'dist', 'worker.js');
const args = process.argv.slice(2);

function usage() {
  process.stdout.write(`usage: node launcher/start.js --demo [--quick] [demo options]
       node launcher/start.js --config FILE [grerank train options]
       node launcher/start.js --cpu-workers N --config FILE [train options]
       node launcher/start.js --gpus N --config FILE [train options]
       node launcher/start.js --help

--demo     runs the embedded default end to end (see 'grerank demo --help')
--config   trains with the settings of FILE (see 'grerank train --help')
--cpu-workers N, --gpus N
           N data-parallel workers on this node (under SLURM: on every node of the job);
           --batch-size is then per worker, the global batch is
           batch-size x world size x --accumulation-steps (default 1)
--metrics-port P
           with workers: rank 0 serves Prometheus metrics of every rank on http://HOST:P/metrics
           (default 9464; 0 turns it off)
--max-restarts N
           with workers: when a worker fails, stop the workers of every node and restart all
           from the latest checkpoint of --out, up to N times for the whole job (default 2);
           then every node's launcher exits 1 naming the rank
--heartbeat-timeout S
           with workers: a worker that sends no heartbeat for S seconds (alive but hung) is
           named and killed, and all restart as after a failure; with several nodes, a node's
           launcher (or node 0's coordinator) silent for S seconds ends the job (default 60;
           0 turns both off)
--ring-security auto|curve|plain
           with workers: how the gradient ring's links are guarded (all need the job secret).
           auto (default): CURVE (authenticated and encrypted) between nodes, PLAIN (a token
           derived from the secret, unencrypted) within a node. curve: CURVE everywhere.
           plain: the token everywhere, for trusted cluster networks where CURVE's crypto
           would limit the all-reduce (about 2.8x faster over tcp here; docs/distributed.md)
--resume latest|auto|DIR, --save-every N, --keep N, --eval-every N --eval-data FILE
           as in 'grerank train'; SIGTERM or SIGUSR1 makes the workers save a checkpoint and
           exit 75 (EX_TEMPFAIL), for SLURM preemption and requeue
`);
}

if (args.includes('--help') || args.includes('-h') || args.length === 0) {
  usage();
  process.exit(args.length === 0 ? 2 : 0);
}
let workers = 1;
let kind = 'cpu';
let asked = false;
for (const flag of ['--gpus', '--cpu-workers']) {
  const i = args.indexOf(flag);
  if (i >= 0) {
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(`error: ${flag} needs a positive integer\n`);
      process.exit(2);
    }
    workers = n;
    asked = true;
    kind = flag === '--gpus' ? 'gpu' : 'cpu';
    args.splice(i, 2);
  }
}
/** Removes `flag VALUE` (the launcher's own options) from args; exits 2 on a bad value. */
function takeOption(flag, fallback, ok, needs, parse = Number) {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const v = parse(args[i + 1] ?? '');
  if (!ok(v)) {
    process.stderr.write(`error: ${flag} needs ${needs}\n`);
    process.exit(2);
  }
  args.splice(i, 2);
  return v;
}
const maxRestarts = takeOption('--max-restarts', 2, (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
const heartbeatTimeout = takeOption('--heartbeat-timeout', 60, (v) => Number.isFinite(v) && v >= 0, 'a non-negative number of seconds');
// Checked against the modes once the dist modules are loaded (parseRingSecurity below).
let ringSecurity = takeOption('--ring-security', process.env.GRERANK_RING_SECURITY, () => true, 'a mode', String);
const distributed = asked || Number(process.env.SLURM_NNODES ?? '1') > 1;
if (!distributed || args.includes('--demo')) {
  const rest = args.filter((a) => a !== '--demo');
  const command = args.includes('--demo') ? ['demo', ...rest] : ['train', ...rest];
  const r = spawnSync(process.execPath, [cli, ...command], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { resolveLaunch, deviceAssignment, parseRingSecurity, WORKER_ENV } = await import(join(root, 'dist', 'dist', 'launch.js'));
const { newJobSecret } = await import(join(root, 'dist', 'dist', 'transport.js'));
const { HeartbeatMonitor, HEARTBEAT_ENV, heartbeatInterval } = await import(join(root, 'dist', 'dist', 'heartbeat.js'));
const { CoordinatorServer, CoordinatorClient, localCoordinator, describeFailure, EXIT_PEER_FAILED } = await import(join(root, 'dist', 'dist', 'coordinator.js'));
let plan;
let devices;
try {
  plan = resolveLaunch(process.env, workers);
  devices = deviceAssignment(process.env, workers, kind);
  ringSecurity = parseRingSecurity(ringSecurity, '--ring-security');
  if (plan.nnodes > 1 && !process.env[WORKER_ENV.secret]) {
    throw new Error(`${plan.nnodes} nodes: export ${WORKER_ENV.secret} (e.g. from openssl rand -hex 32) before srun so that every node's launcher hands out the same secret`);
  }
} catch (e) {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(2);
}
const secret = process.env[WORKER_ENV.secret] || newJobSecret();
if (!args.includes('--metrics-port')) args.push('--metrics-port', '9464');
const log = (m) => process.stderr.write(`[launcher] ${m}\n`);
const EXIT_PREEMPTED = 75;
let children = [];
let stopping; // the signal this launcher was asked to stop with
let generation = -1;
let stopGeneration = () => {};

/**
 * Starts generation `gen` of this node's workers. The first failure is reported to the coordinator
 * at once (and this node's other workers are killed); resolves with the outcome when all exited.
 */
function runGeneration(gen, restarts) {
  const ipcDir = mkdtempSync(join(tmpdir(), 'grerank-ring-')); // 0700
  log(`node ${plan.nodeRank}/${plan.nnodes}: starting ranks ${plan.rankOffset}..${plan.rankOffset + workers - 1} of ${plan.worldSize} (${kind} workers)${restarts ? `, restart ${restarts}/${maxRestarts}` : ''}`);
  return new Promise((resolve) => {
    let failed = false;
    let preempted = 0;
    let remaining = workers;
    children = [];
    const ranks = Array.from({ length: workers }, (_, i) => plan.rankOffset + i);
    const monitor = new HeartbeatMonitor(ranks, heartbeatTimeout * 1000, Date.now());
    const fail = (f, except) => {
      if (failed) return;
      failed = true;
      link.send({ kind: 'failed', gen, node: plan.nodeRank, stopping: !!stopping, ...f });
      killAll(except);
    };
    // Ordered to stop (a worker of another node failed): the exits that follow are not failures.
    stopGeneration = () => {
      if (!failed) log(`stopping this node's workers: a worker on another node failed`);
      failed = true;
      killAll();
    };
    const watch = setInterval(() => {
      const [late] = monitor.overdue(Date.now());
      if (!late || failed) return;
      const cause = `sent no heartbeat for ${(late.silentMs / 1000).toFixed(1)} s${late.step !== undefined ? ` (last at step ${late.step})` : ''}: hung or stopped`;
      log(`rank ${late.rank} ${cause}; stopping all workers`);
      fail({ rank: late.rank, cause });
    }, Math.min(1000, heartbeatInterval(heartbeatTimeout * 1000)));
    for (let i = 0; i < workers; i++) {
      const rank = plan.rankOffset + i;
      const env = {
        ...process.env,
        [WORKER_ENV.rank]: String(rank),
        [WORKER_ENV.localRank]: String(i),
        [WORKER_ENV.worldSize]: String(plan.worldSize),
        [WORKER_ENV.hosts]: plan.rankHosts.join(','),
        [WORKER_ENV.basePort]: String(plan.basePort),
        [WORKER_ENV.ipcDir]: ipcDir,
        [WORKER_ENV.secret]: secret,
        [WORKER_ENV.ringSecurity]: ringSecurity,
        [WORKER_ENV.restarts]: String(restarts),
        [HEARTBEAT_ENV]: heartbeatTimeout > 0 ? String(heartbeatInterval(heartbeatTimeout * 1000)) : '0',
        CUDA_VISIBLE_DEVICES: devices[i],
        // One compute thread per worker.
        OMP_NUM_THREADS: '1',
        TF_NUM_INTRAOP_THREADS: '1',
        TF_NUM_INTEROP_THREADS: '1',
        UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '2',
      };
      // The fourth stdio entry is the IPC channel the heartbeats travel on.
      const child = spawn(process.execPath, [workerJs, ...args], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env });
      log(`rank ${rank} pid ${child.pid}`);
      children.push(child);
      child.on('message', (m) => monitor.beat(m, Date.now()));
      child.on('exit', (code, signal) => {
        remaining--;
        monitor.forget(rank);
        if (code === EXIT_PREEMPTED) preempted++;
        else if ((code !== 0 || signal) && !failed) {
          const cause = signal ? `was killed by signal ${signal}` : code === EXIT_PEER_FAILED ? `stopped: it lost its ring neighbour (exit ${code})` : `exited with code ${code}`;
          log(`rank ${rank} failed (${cause}); stopping the other workers`);
          fail({ rank, code, cause }, child);
        }
        if (remaining === 0) {
          clearInterval(watch);
          rmSync(ipcDir, { recursive: true, force: true });
          resolve(failed ? 'stopped' : preempted > 0 ? 'preempted' : 'finished');
        }
      });
    }
  });
}

function killAll(except) {
  for (const c of children) if (c !== except && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGUSR1']) {
  process.on(sig, () => {
    stopping ??= sig;
    // The workers agree on a step, rank 0 saves a checkpoint, all exit 75.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig === 'SIGINT' ? 'SIGTERM' : sig);
  });
}

// The coordinator decides for all nodes: in this process for one node, else in node 0's launcher,
// which the others reach over ZeroMQ at MASTER_ADDR:MASTER_PORT (see src/dist/coordinator.ts).
const coordinatorAddress = `tcp://${plan.masterAddr}:${plan.masterPort}`;
const silenceMs = heartbeatTimeout * 1000;
const joinTimeoutMs = Math.max(silenceMs, 120_000);
let link;
try {
  if (plan.nnodes === 1) link = localCoordinator(maxRestarts);
  else {
    const o = { address: coordinatorAddress, secret, nodes: plan.nnodes, maxRestarts, silenceMs, joinTimeoutMs };
    link = plan.nodeRank === 0 ? (await CoordinatorServer.start(o)).link() : new CoordinatorClient(o, plan.nodeRank);
    log(`node ${plan.nodeRank}: ${plan.nodeRank === 0 ? 'coordinating' : 'joining the coordinator'} at ${coordinatorAddress}`);
  }
} catch (e) {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
}
link.send({ kind: 'hello', node: plan.nodeRank });
for (;;) {
  const order = await link.next();
  if (order.kind === 'start') {
    if (order.after) {
      log(`${describeFailure(order.after, plan.nnodes)}; restarting all workers from the latest checkpoint (${order.restarts}/${maxRestarts})`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    generation = order.gen;
    void runGeneration(order.gen, order.restarts).then((outcome) => link.send({ kind: 'ended', node: plan.nodeRank, gen: order.gen, outcome }));
  } else if (order.kind === 'stop') {
    if (order.gen === generation) stopGeneration();
  } else if (order.kind === 'exit') {
    killAll();
    if (order.code === EXIT_PREEMPTED) log(`stopped${stopping ? ` on ${stopping}` : ''}: the workers saved a checkpoint; continue with --resume latest (or auto)`);
    if (order.message) process.stderr.write(`error: ${order.message}\n`);
    await link.close();
    process.exit(order.code);
  }
}
