/**
 * The job's coordinator: the one place that decides, for the launchers of all nodes, when the
 * workers start, when they all stop, whether they restart from the latest checkpoint, and how the
 * job ends. It runs inside node 0's launcher; the other nodes' launchers reach it over ZeroMQ
 * (ROUTER/DEALER on MASTER_ADDR:MASTER_PORT, CURVE with the job's keys, so only holders of the job
 * secret get in).
 *
 * Why here and not in the workers: a worker that fails cannot report its own failure, and the
 * survivors only learn of it when the ring breaks (after a timeout, on another node). Each launcher
 * sees its own workers exit (and their heartbeats), so it reports the failure at once; the
 * coordinator orders every node to stop, waits until all have, and restarts all together under one
 * job-wide restart budget, or ends the job on every node with the same message naming the rank.
 *
 * What the workers do among themselves (per-step statistics, checkpoint decisions on rank 0, the
 * data plan each rank derives from (seed, epoch)) goes over the ring, not through here: it needs
 * no extra hop per step.
 */
import { Packr } from 'msgpackr';
import * as zmq from 'zeromq';
import { curveClient, curveServer, deriveJobKeys, DistError, isJobClient, serveZap } from './transport.js';

/** Exit code of a worker that stopped because another rank failed (the ring broke or timed out). */
export const EXIT_PEER_FAILED = 3;
const EXIT_BAD_INPUT = 2;
const EXIT_PREEMPTED = 75;

/** A worker failure as a node's launcher saw it. */
export interface Failure {
  node: number;
  rank: number;
  /** "was killed by signal SIGKILL", "exited with code 1", "sent no heartbeat for 61.0 s ...". */
  cause: string;
  code?: number | null;
  /** The launcher had been asked to stop (SIGTERM/SIGUSR1) when it happened: no restart. */
  stopping?: boolean;
}

/** What a launcher tells the coordinator. */
export type Report =
  | { kind: 'hello'; node: number }
  | ({ kind: 'failed'; gen: number } & Failure)
  /** All of the node's workers of generation `gen` have exited. */
  | { kind: 'ended'; node: number; gen: number; outcome: 'finished' | 'preempted' | 'stopped' }
  | { kind: 'alive'; node: number }
  /** The exit order arrived (node 0 waits for these before it exits, so that none is lost). */
  | { kind: 'bye'; node: number };

/** What the coordinator tells every launcher. */
export type Order =
  /** Start generation `gen` of the workers (gen > 0: a restart after `after`). */
  | { kind: 'start'; gen: number; restarts: number; after?: Failure }
  /** Kill this generation's workers now (another node's worker failed). */
  | { kind: 'stop'; gen: number }
  | { kind: 'exit'; code: number; message?: string }
  | { kind: 'alive' };

/** How a failure reads in logs: "worker rank 3 (node 1) was killed by signal SIGKILL". */
export function describeFailure(f: Failure, nodes: number): string {
  return `worker rank ${f.rank}${nodes > 1 ? ` (node ${f.node})` : ''} ${f.cause}`;
}

/**
 * The coordinator's decisions, free of sockets and clocks: reports in, orders out (each order goes
 * to every launcher).
 */
export class JobCoordinator {
  private readonly joined = new Set<number>();
  private gen = -1;
  private restarts = 0;
  private readonly failures: Failure[] = [];
  private readonly ended = new Map<number, 'finished' | 'preempted' | 'stopped'>();
  private finished = false;

  constructor(
    readonly nodes: number,
    readonly maxRestarts: number,
    private readonly broadcast: (o: Order) => void,
  ) {}

  get generation(): number {
    return this.gen;
  }

  get done(): boolean {
    return this.finished;
  }

  report(r: Report): void {
    if (this.finished) return;
    switch (r.kind) {
      case 'hello':
        this.joined.add(r.node);
        if (this.gen < 0 && this.joined.size === this.nodes) this.start();
        return;
      case 'failed': {
        if (r.gen !== this.gen) return;
        const { kind: _k, gen: _g, ...failure } = r;
        if (this.failures.length === 0) this.broadcast({ kind: 'stop', gen: this.gen });
        this.failures.push(failure);
        return;
      }
      case 'ended':
        if (r.gen !== this.gen) return;
        this.ended.set(r.node, r.outcome);
        if (this.ended.size === this.nodes) this.endGeneration();
        return;
      case 'alive':
      case 'bye':
        return;
    }
  }

  /** A node's launcher is gone (stopped answering): its workers cannot be restarted from here. */
  nodeLost(node: number, why: string): void {
    if (this.finished) return;
    if (this.gen >= 0) this.broadcast({ kind: 'stop', gen: this.gen });
    this.exit(1, `the launcher of node ${node} ${why}`);
  }

  /**
   * The failure to name: a rank that died or hung on its own, rather than one that stopped because
   * it lost its ring neighbour (exit 3), which is only a consequence, whatever arrived first.
   */
  private culprit(): Failure {
    return this.failures.find((f) => f.code !== EXIT_PEER_FAILED) ?? this.failures[0]!;
  }

  private start(after?: Failure): void {
    this.gen++;
    this.ended.clear();
    this.failures.length = 0;
    this.broadcast({ kind: 'start', gen: this.gen, restarts: this.restarts, ...(after ? { after } : {}) });
  }

  private endGeneration(): void {
    if (this.failures.length === 0) {
      const preempted = [...this.ended.values()].includes('preempted');
      this.exit(preempted ? EXIT_PREEMPTED : 0);
      return;
    }
    const f = this.culprit();
    const retry = !this.failures.some((x) => x.stopping || x.code === EXIT_BAD_INPUT) && this.restarts < this.maxRestarts;
    if (!retry) {
      this.exit(1, `${describeFailure(f, this.nodes)}${this.restarts > 0 ? ` (after ${this.restarts} restart(s))` : ''}`);
      return;
    }
    this.restarts++;
    this.start(f);
  }

  private exit(code: number, message?: string): void {
    this.finished = true;
    this.broadcast({ kind: 'exit', code, ...(message ? { message } : {}) });
  }
}

/** A launcher's line to the coordinator. */
export interface CoordinatorLink {
  send(r: Report): void;
  /** The next order (in arrival order). */
  next(): Promise<Order>;
  close(): Promise<void>;
}

/** Orders waiting for a reader. */
class OrderQueue {
  private readonly items: Order[] = [];
  private readonly waiters: ((o: Order) => void)[] = [];
  push(o: Order): void {
    const w = this.waiters.shift();
    if (w) w(o);
    else this.items.push(o);
  }
  next(): Promise<Order> {
    const o = this.items.shift();
    return o ? Promise.resolve(o) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** A link to a coordinator in this process (reports are handled after the caller's turn, as a socket would). */
function inProcessLink(c: JobCoordinator, q: OrderQueue, close: () => Promise<void>): CoordinatorLink {
  return { send: (r) => queueMicrotask(() => c.report(r)), next: () => q.next(), close };
}

/** A single node's coordinator in the launcher's own process: no sockets. */
export function localCoordinator(maxRestarts: number): CoordinatorLink {
  const q = new OrderQueue();
  return inProcessLink(new JobCoordinator(1, maxRestarts, (o) => q.push(o)), q, async () => {});
}

const packr = new Packr({ structuredClone: false });

export interface CoordinatorOptions {
  /** e.g. tcp://gpu01:15000 (node 0 binds it, the others connect to it). */
  address: string;
  secret: string;
  nodes: number;
  maxRestarts: number;
  /** A launcher (or the coordinator) silent this long is lost; 0: never (no liveness pings). */
  silenceMs: number;
  /** How long node 0 waits for every node's launcher to join. */
  joinTimeoutMs: number;
}

/** Liveness pings every silence/6 (at least 250 ms), like the workers' heartbeats. */
const pingEvery = (silenceMs: number) => Math.max(250, Math.floor(silenceMs / 6));

/**
 * Node 0's side: the coordinator behind a CURVE ROUTER socket, plus node 0's own link to it.
 * Strangers (no job secret) fail the CURVE handshake or are refused by the ZAP handler (`refused`).
 */
export class CoordinatorServer {
  /** Connections refused: failed CURVE handshakes (wrong server key, no CURVE) and ZAP denials (wrong client key). */
  refused = 0;
  private readonly ctx = new zmq.Context({ ioThreads: 1 });
  private readonly router = new zmq.Router({ context: this.ctx, linger: 2000 });
  private readonly zap = new zmq.Router({ context: this.ctx, linger: 0 });
  private readonly peers = new Map<number, { id: Buffer; seen: number }>();
  private readonly byes = new Set<number>();
  private readonly local = new OrderQueue();
  private readonly coordinator: JobCoordinator;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  private constructor(private readonly o: CoordinatorOptions) {
    this.coordinator = new JobCoordinator(o.nodes, o.maxRestarts, (order) => this.broadcast(order));
  }

  static async start(o: CoordinatorOptions): Promise<CoordinatorServer> {
    const s = new CoordinatorServer(o);
    const keys = deriveJobKeys(o.secret);
    await s.zap.bind('inproc://zeromq.zap.01');
    void serveZap(s.zap, (mech, creds) => isJobClient(keys, mech, creds), () => s.refused++);
    curveServer(s.router, keys);
    for (const ev of ['handshake:error:protocol', 'handshake:error:auth', 'handshake:error:other'] as const) s.router.events.on(ev, () => s.refused++);
    await s.router.bind(o.address).catch((e: Error) => {
      s.router.close();
      s.zap.close();
      throw new DistError(`coordinator: cannot bind ${o.address}: ${e.message}`);
    });
    void s.receiveLoop();
    const t0 = Date.now();
    s.timers.push(
      setTimeout(() => {
        if (s.coordinator.generation >= 0) return;
        const missing = Array.from({ length: o.nodes }, (_, n) => n).filter((n) => n !== 0 && !s.peers.has(n));
        s.coordinator.nodeLost(missing[0]!, `did not join the coordinator at ${o.address} within ${((Date.now() - t0) / 1000).toFixed(0)} s (not started, wrong MASTER_ADDR/MASTER_PORT, or another job secret); missing: node(s) ${missing.join(', ')}`);
      }, o.joinTimeoutMs),
    );
    if (o.silenceMs > 0) {
      s.timers.push(
        setInterval(() => {
          const now = Date.now();
          for (const [node, p] of s.peers) {
            if (now - p.seen > o.silenceMs) {
              s.coordinator.nodeLost(node, `sent nothing for ${((now - p.seen) / 1000).toFixed(1)} s (its host died, or the network between the nodes is down)`);
              return;
            }
          }
          s.broadcast({ kind: 'alive' });
        }, pingEvery(o.silenceMs)),
      );
    }
    return s;
  }

  /** Node 0's launcher's link (in process). */
  link(): CoordinatorLink {
    return inProcessLink(this.coordinator, this.local, () => this.close());
  }

  private broadcast(o: Order): void {
    if (o.kind !== 'alive') this.local.push(o);
    if (this.closed) return;
    const bytes = packr.pack(o);
    for (const [, p] of this.peers) this.router.send([p.id, bytes]).catch(() => {});
  }

  private receiveLoop(): Promise<void> {
    return receiveEach<Report>(this.router, (r, [id]) => {
      if (!Number.isInteger(r.node) || r.node < 1 || r.node >= this.o.nodes) return;
      this.peers.set(r.node, { id: id!, seen: Date.now() });
      if (r.kind === 'bye') this.byes.add(r.node);
      this.coordinator.report(r);
    });
  }


  /**
   * Closes the socket. After an exit order, first waits (up to `waitMs`) until every other node
   * has confirmed it: a process that exits right after a send may take the message with it.
   */
  async close(waitMs = 3000): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearTimeout(t);
    if (this.coordinator.done) {
      const until = Date.now() + waitMs;
      while (Date.now() < until && [...this.peers.keys()].some((n) => !this.byes.has(n))) await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    this.router.close();
    this.zap.close();
  }
}

/** Nodes 1..N-1: a launcher's link to the coordinator on node 0. */
export class CoordinatorClient implements CoordinatorLink {
  private readonly ctx = new zmq.Context({ ioThreads: 1 });
  private readonly sock = new zmq.Dealer({ context: this.ctx, linger: 2000, reconnectInterval: 100, reconnectMaxInterval: 1000 });
  private readonly q = new OrderQueue();
  private seen = Date.now();
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly o: CoordinatorOptions,
    private readonly node: number,
  ) {
    curveClient(this.sock, deriveJobKeys(o.secret));
    this.sock.connect(o.address);
    void this.receiveLoop();
    const started = Date.now();
    let joined = false;
    this.timer = setInterval(
      () => {
        const now = Date.now();
        if (!joined && now - started > o.joinTimeoutMs) {
          this.lost(`no answer from the coordinator at ${o.address} within ${((now - started) / 1000).toFixed(0)} s (node 0 not started, wrong MASTER_ADDR/MASTER_PORT, or another job secret)`);
          return;
        }
        joined ||= this.seen > started;
        if (joined && o.silenceMs > 0 && now - this.seen > o.silenceMs) {
          this.lost(`lost the coordinator at ${o.address}: nothing for ${((now - this.seen) / 1000).toFixed(1)} s (node 0's launcher died, or the network is down)`);
          return;
        }
        if (o.silenceMs > 0) this.send({ kind: 'alive', node });
      },
      pingEvery(o.silenceMs > 0 ? o.silenceMs : 6000),
    );
  }

  private lost(message: string): void {
    clearInterval(this.timer);
    this.q.push({ kind: 'exit', code: 1, message });
  }

  send(r: Report): void {
    if (!this.closed) this.sock.send(packr.pack(r)).catch(() => {});
  }

  next(): Promise<Order> {
    return this.q.next();
  }

  private receiveLoop(): Promise<void> {
    return receiveEach<Order>(this.sock, (o) => {
      this.seen = Date.now();
      if (o.kind === 'exit') this.send({ kind: 'bye', node: this.node });
      if (o.kind !== 'alive') this.q.push(o);
    });
  }


  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.sock.close();
  }
}

/**
 * Hands each message's decoded last frame (and all frames) to `handle` until the socket closes.
 * An undecodable body is dropped: CURVE lets only job members this far, so it is a bug, and one
 * bad message must not end the loop.
 */
async function receiveEach<T>(sock: { receive(): Promise<Buffer[]> }, handle: (body: T, frames: Buffer[]) => void): Promise<void> {
  for (;;) {
    let msg: Buffer[];
    try {
      msg = await sock.receive();
    } catch {
      return; // closed
    }
    let body: T;
    try {
      body = packr.unpack(msg[msg.length - 1]!) as T;
    } catch {
      continue;
    }
    handle(body, msg);
  }
}
