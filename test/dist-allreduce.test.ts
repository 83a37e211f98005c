// The distributed communication layer: ring all-reduce over ZeroMQ between real processes
// (test/fixtures/dist/worker.ts, run with tsx), tcp:// and ipc://, CURVE from a job secret.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import * as zmq from 'zeromq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  RingTransport,
  ringAllReduce,
  ringAllGather,
  planBuckets,
  flattenBucket,
  unflattenBucket,
  chunkStart,
  deriveJobKeys,
  newJobSecret,
  z85Encode,
  parameterChecksum,
  ringEndpoints,
  PeerError,
  type RingSecurity,
} from '../src/dist/index.js';

/** Every worker process this file started, so none outlives it whatever fails. */
const spawned = new Set<ChildProcess>();
const WORKER = fileURLToPath(new URL('./fixtures/dist/worker.ts', import.meta.url));
const CALL_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Helpers

interface Reply {
  type: 'result' | 'error' | 'step' | 'ready';
  id?: number;
  [k: string]: unknown;
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => res(s)); })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 * 2 - 1;
  };
}

function randomBuffers(lengths: number[], seed: number): Float32Array[] {
  const r = rng(seed);
  return lengths.map((l) => Float32Array.from({ length: l }, () => r()));
}

/** The exact (float64) mean of the ranks' buffers, checked against each rank's float32 result. */
function expectMean(perRank: Float32Array[][], results: Float32Array[][]): void {
  const n = perRank.length;
  for (let b = 0; b < perRank[0]!.length; b++) {
    for (let r = 0; r < n; r++) {
      const got = results[r]![b]!;
      expect(got.length).toBe(perRank[0]![b]!.length);
      // Every rank holds bit-identical values.
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(results[0]![b]!.buffer, results[0]![b]!.byteOffset, results[0]![b]!.byteLength))).toBe(true);
    }
    const got = results[0]![b]!;
    for (let i = 0; i < got.length; i++) {
      let sum = 0;
      let abs = 0;
      for (let r = 0; r < n; r++) {
        sum += perRank[r]![b]![i]!;
        abs += Math.abs(perRank[r]![b]![i]!);
      }
      const exp = sum / n;
      if (Math.abs(got[i]! - exp) > 2e-7 * (abs + 1e-30) + 1e-38) {
        throw new Error(`buffer ${b} element ${i}: got ${got[i]}, exact mean ${exp}`);
      }
    }
  }
}

class Cluster {
  readonly procs: ChildProcess[] = [];
  readonly events: Reply[][] = [];
  private nextId = 1;
  readonly addresses: { bind: string; connect: string }[] = [];

  private constructor(
    readonly n: number,
    readonly secret: string,
  ) {}

  private static count = 0;

  static async start(n: number, kind: 'tcp' | 'ipc', opts: { timeoutMs?: number; dir: string; secret?: string; security?: RingSecurity }): Promise<Cluster> {
    const c = new Cluster(n, opts.secret ?? newJobSecret());
    const ports = kind === 'tcp' ? await freePorts(n) : [];
    const tag = Cluster.count++;
    const addr = (r: number) => (kind === 'tcp' ? `tcp://127.0.0.1:${ports[r]}` : `ipc://${opts.dir}/c${tag}-r${r}.sock`);
    const ready: Promise<Reply>[] = [];
    for (let r = 0; r < n; r++) {
      c.addresses.push({ bind: addr(r), connect: addr((r + 1) % n) });
      const cfg = { rank: r, worldSize: n, bind: addr(r), connect: addr((r + 1) % n), secret: c.secret, timeoutMs: opts.timeoutMs ?? 5000, connectTimeoutMs: 15_000, security: opts.security };
      const p = fork(WORKER, [JSON.stringify(cfg)], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      spawned.add(p);
      p.once('exit', () => spawned.delete(p));
      c.procs.push(p);
      c.events.push([]);
      p.on('message', (m: Reply) => c.events[r]!.push(m));
      ready.push(c.waitFor(r, (m) => m.type === 'ready' || m.id === -1, CALL_TIMEOUT_MS));
    }
    const rs = await Promise.all(ready);
    for (const m of rs) if (m.type !== 'ready') throw new Error(`worker failed to start: ${String(m.message)}`);
    return c;
  }

  /** Resolves with the first message of rank r matching `pred` (already received or future). */
  waitFor(r: number, pred: (m: Reply) => boolean, timeoutMs: number): Promise<Reply> {
    const seen = this.events[r]!.find(pred);
    if (seen) return Promise.resolve(seen);
    const p = this.procs[r]!;
    return new Promise((resolve, reject) => {
      const onMsg = (m: Reply) => {
        if (!pred(m)) return;
        cleanup();
        resolve(m);
      };
      const onExit = (code: number | null, sig: string | null) => {
        cleanup();
        reject(new Error(`rank ${r} exited (${code ?? sig}) while waited on`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`rank ${r}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        p.off('message', onMsg);
        p.off('exit', onExit);
      };
      p.on('message', onMsg);
      p.on('exit', onExit);
    });
  }

  call(r: number, cmd: Record<string, unknown>, timeoutMs = CALL_TIMEOUT_MS): Promise<Reply> {
    const id = this.nextId++;
    const reply = this.waitFor(r, (m) => m.id === id, timeoutMs);
    this.procs[r]!.send({ ...cmd, id });
    return reply;
  }

  all(cmd: (r: number) => Record<string, unknown>, timeoutMs = CALL_TIMEOUT_MS): Promise<Reply[]> {
    // One id for all ranks, so replies line up.
    const id = this.nextId++;
    const replies = this.procs.map((_, r) => this.waitFor(r, (m) => m.id === id, timeoutMs));
    this.procs.forEach((p, r) => p.send({ ...cmd(r), id }));
    return Promise.all(replies);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((res) => {
            if (p.exitCode !== null || p.signalCode !== null) return res();
            p.once('exit', () => res());
            p.kill('SIGKILL');
          }),
      ),
    );
  }
}

function ok(m: Reply): Reply {
  if (m.type === 'error') throw new Error(`worker error: ${String(m.message)}`);
  return m;
}

let dir: string;
const clusters: Cluster[] = [];
async function cluster(n: number, kind: 'tcp' | 'ipc', opts: { timeoutMs?: number; security?: RingSecurity } = {}): Promise<Cluster> {
  const c = await Cluster.start(n, kind, { ...opts, dir });
  clusters.push(c);
  return c;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'grerank-dist-'));
});
afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
  for (const p of spawned) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// In-process unit tests

describe('pieces', () => {
  it('cuts chunks, plans buckets in order and flattens/unflattens', () => {
    expect([0, 1, 2, 3, 4].map((c) => chunkStart(10, 4, c))).toEqual([0, 3, 6, 8, 10]);
    expect([0, 1, 2, 3, 4].map((c) => chunkStart(2, 4, c))).toEqual([0, 1, 2, 2, 2]);
    const specs = [
      { name: 'a', length: 3 },
      { name: 'b', length: 5 },
      { name: 'big', length: 20 },
      { name: 'c', length: 1 },
      { name: 'd', length: 0 },
    ];
    const plan = planBuckets(specs, 32); // 8 floats per bucket
    expect(plan.buckets.map((b) => b.entries.map((e) => e.name))).toEqual([['a', 'b'], ['big'], ['c', 'd']]);
    expect(plan.length).toBe(29);
    expect(planBuckets(specs, 32).signature).toBe(plan.signature);
    expect(planBuckets([...specs].reverse(), 32).signature).not.toBe(plan.signature);
    const src = randomBuffers(specs.map((s) => s.length), 1);
    const flat = flattenBucket(plan.buckets[0]!, src);
    expect(Array.from(flat)).toEqual([...src[0]!, ...src[1]!]);
    const views = unflattenBucket(plan.buckets[0]!, flat);
    expect(views[1]!.data.buffer).toBe(flat.buffer); // a view, not a copy
    expect(Array.from(views[1]!.data)).toEqual(Array.from(src[1]!));
    // A single-buffer bucket can reuse the source array itself.
    expect(flattenBucket(plan.buckets[1]!, src, { reuse: true })).toBe(src[2]);
    expect(() => planBuckets([{ name: 'x', length: 1 }, { name: 'x', length: 2 }])).toThrow(/twice/);
  });

  it('derives the same CURVE keys from the same secret, different ones otherwise', () => {
    const s = newJobSecret();
    const a = deriveJobKeys(s);
    expect(deriveJobKeys(s)).toEqual(a);
    expect(deriveJobKeys(newJobSecret()).serverPublic).not.toBe(a.serverPublic);
    expect(a.serverPublic).toHaveLength(40);
    expect(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld'); // RFC 32 test vector
    expect(() => deriveJobKeys('short')).toThrow(/too short/);
  });

  it('hashes parameters bit-exactly', () => {
    const p = randomBuffers([5, 7], 3);
    const h = parameterChecksum(p);
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(parameterChecksum(p.map((x) => x.slice()))).toBe(h);
    const q = p.map((x) => x.slice());
    q[1]![6] = Math.fround(q[1]![6]! + 1e-7);
    expect(parameterChecksum(q)).not.toBe(h);
  });

  it('lays out a ring over hosts: ipc within a node, tcp between nodes', () => {
    const hosts = ['n1', 'n1', 'n2', 'n2'];
    const e = (rank: number) => ringEndpoints({ rank, hosts, basePort: 7000, ipcDir: '/tmp/job' });
    expect(e(0)).toEqual({ bind: 'tcp://n1:7000', connect: 'ipc:///tmp/job/rank-1.sock' });
    expect(e(1)).toEqual({ bind: 'ipc:///tmp/job/rank-1.sock', connect: 'tcp://n2:7002' });
    expect(e(3)).toEqual({ bind: 'ipc:///tmp/job/rank-3.sock', connect: 'tcp://n1:7000' });
  });

  it('world size 1 is a no-op that still reports non-finite values', async () => {
    const t = await RingTransport.open({ rank: 0, worldSize: 1, bind: 'tcp://127.0.0.1:1', connect: 'tcp://127.0.0.1:1', secret: newJobSecret() });
    const b = Float32Array.of(1, 2, 3);
    expect(await ringAllReduce(t, [b], { step: 0 })).toEqual({ nonFinite: false });
    expect(Array.from(b)).toEqual([1, 2, 3]);
    expect(await ringAllReduce(t, [Float32Array.of(1, NaN)], { step: 1 })).toEqual({ nonFinite: true });
    expect(await ringAllReduce(t, [b], { step: 2, nonFinite: true })).toEqual({ nonFinite: true });
    expect((await ringAllGather(t, Uint8Array.of(7), { step: 3 })).map((x) => Array.from(x))).toEqual([[7]]);
    t.close();
  });

  it('a rank with another job secret cannot join the ring: the error names it', async () => {
    const [p0, p1] = await freePorts(2);
    const a0 = `tcp://127.0.0.1:${p0}`;
    const a1 = `tcp://127.0.0.1:${p1}`;
    const opts = { worldSize: 2, timeoutMs: 1000, connectTimeoutMs: 1200 };
    const [r0, r1] = await Promise.allSettled([
      RingTransport.open({ ...opts, rank: 0, bind: a0, connect: a1, secret: newJobSecret() }),
      RingTransport.open({ ...opts, rank: 1, bind: a1, connect: a0, secret: newJobSecret() }),
    ]);
    expect(r0.status).toBe('rejected');
    expect(r1.status).toBe('rejected');
    const e0 = (r0 as PromiseRejectedResult).reason as PeerError;
    expect(e0).toBeInstanceOf(PeerError);
    expect(e0.peer).toBe(1);
    expect(e0.message).toMatch(/rank 1 did not join the ring/);
    expect(e0.message).toMatch(/handshake/);
  });
});

// ---------------------------------------------------------------------------------------------
// Real processes

describe('2 processes over tcp', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await cluster(2, 'tcp');
  });

  it('averages exactly over several steps, uneven buckets and odd lengths', async () => {
    const lengths = [1, 3, 1000, 12_345, 2, 40_001];
    for (let step = 0; step < 3; step++) {
      const data = [0, 1].map((r) => randomBuffers(lengths, 100 * step + r));
      // 40 KB buckets: do not divide the buffers evenly; several buckets per step.
      const replies = (await c.all((r) => ({ cmd: 'allreduce', step, buffers: data[r], bucketBytes: 40_000, segmentBytes: step === 2 ? 10_000 : undefined }))).map(ok);
      expect(replies[0]!.buckets).toBeGreaterThan(2);
      for (const m of replies) expect(m.nonFinite).toBe(false);
      expectMean(data, replies.map((m) => m.buffers as Float32Array[]));
    }
  });

  it('the Trainer reducer: tensors in, averaged tensors out, a NaN step skipped on both ranks', async () => {
    const shapes = [[3, 5], [7], [2, 2, 2], [1]];
    const lengths = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const steps = [0, 1, 2].map((k) => [0, 1].map((r) => randomBuffers(lengths, 1000 + 10 * k + r)));
    steps[1]![1]![2]![3] = NaN; // rank 1 has a NaN gradient at the second step
    const replies = (
      await c.all((r) => ({ cmd: 'reducer', bucketBytes: 64, steps: steps.map((s) => ({ buffers: s[r], shapes, nonFinite: false })) }))
    ).map(ok);
    for (const m of replies) {
      const res = m.results as { nonFinite: boolean; buffers: Float32Array[] }[];
      expect(res.map((x) => x.nonFinite)).toEqual([false, true, false]);
      expect((m.stats as { skipped: number }).skipped).toBe(1);
      expect(m.buckets).toBeGreaterThan(1);
    }
    for (const k of [0, 2]) expectMean(steps[k]!, replies.map((m) => (m.results as { buffers: Float32Array[] }[])[k]!.buffers));
  });
});

describe('4 processes over ipc', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await cluster(4, 'ipc');
  });

  it('averages exactly: lengths smaller than the world size, uneven chunks, several steps', async () => {
    const lengths = [1, 2, 3, 5, 4099, 10_007];
    for (let step = 0; step < 3; step++) {
      const data = [0, 1, 2, 3].map((r) => randomBuffers(lengths, 7 + 31 * step + r));
      // Step 1 also cuts the buckets into 4 KB pipelining segments reduced concurrently.
      const replies = (await c.all((r) => ({ cmd: 'allreduce', step, buffers: data[r], bucketBytes: 12_000, segmentBytes: step === 1 ? 4096 : undefined }))).map(ok);
      for (const m of replies) expect(m.nonFinite).toBe(false);
      expectMean(data, replies.map((m) => m.buffers as Float32Array[]));
    }
  });

  it('a NaN on one rank, or one rank\'s local flag, makes every rank report nonFinite; the next step is clean', async () => {
    const lengths = [3, 1000];
    const data = [0, 1, 2, 3].map((r) => randomBuffers(lengths, 500 + r));
    data[2]![1]![777] = NaN;
    let replies = (await c.all((r) => ({ cmd: 'allreduce', step: 10, buffers: data[r] }))).map(ok);
    expect(replies.map((m) => m.nonFinite)).toEqual([true, true, true, true]);
    data[2]![1]![777] = Infinity;
    replies = (await c.all((r) => ({ cmd: 'allreduce', step: 11, buffers: data[r] }))).map(ok);
    expect(replies.map((m) => m.nonFinite)).toEqual([true, true, true, true]);
    data[2]![1]![777] = 0.5;
    replies = (await c.all((r) => ({ cmd: 'allreduce', step: 12, buffers: data[r], nonFinite: r === 3 }))).map(ok);
    expect(replies.map((m) => m.nonFinite)).toEqual([true, true, true, true]);
    replies = (await c.all((r) => ({ cmd: 'allreduce', step: 13, buffers: data[r] }))).map(ok);
    expect(replies.map((m) => m.nonFinite)).toEqual([false, false, false, false]);
    expectMean(data, replies.map((m) => m.buffers as Float32Array[]));
  });

  it('parameter checksums: equal on all ranks pass; a differing rank is named on every rank', async () => {
    const params = randomBuffers([10, 333], 99);
    const same = (await c.all(() => ({ cmd: 'checksum', step: 20, buffers: params }))).map(ok);
    expect(new Set(same.map((m) => m.checksum)).size).toBe(1);
    const off = params.map((p) => p.slice());
    off[1]![100] = Math.fround(off[1]![100]! * (1 + 2 ** -20));
    const replies = await c.all((r) => ({ cmd: 'checksum', step: 25, buffers: r === 2 ? off : params }));
    for (const m of replies) {
      expect(m.type).toBe('error');
      expect(m.message).toMatch(/^parameter checksum mismatch at step 25: rank 2 differs from rank 0/);
    }
    // The ring is still usable afterwards.
    ok((await c.all(() => ({ cmd: 'checksum', step: 30, buffers: params })))[0]!);
  });
});

describe('security', () => {
  it('strangers without the job secret are refused by CURVE/ZAP and cannot inject gradients', async () => {
    const c = await cluster(2, 'tcp');
    const packr = new Packr({ useRecords: false });
    const keys = deriveJobKeys(c.secret);
    const strangers: zmq.Dealer[] = [];
    const handshakes: string[] = [];
    const mk = (setup: (s: zmq.Dealer) => void, label: string) => {
      const s = new zmq.Dealer({ linger: 0, sendTimeout: 0 });
      setup(s);
      s.events.on('handshake', () => handshakes.push(label));
      strangers.push(s);
      return s;
    };
    const plain = mk(() => undefined, 'no security');
    const guess = mk((s) => {
      const k = zmq.curveKeyPair();
      s.curveServerKey = zmq.curveKeyPair().publicKey;
      s.curvePublicKey = k.publicKey;
      s.curveSecretKey = k.secretKey;
    }, 'guessed server key');
    const leaked = mk((s) => {
      // Even knowing the server's public key (never published) is not enough: ZAP wants the job's client key.
      const k = zmq.curveKeyPair();
      s.curveServerKey = keys.serverPublic;
      s.curvePublicKey = k.publicKey;
      s.curveSecretKey = k.secretKey;
    }, 'leaked server key');
    const forged = (step: number) => [
      packr.pack({ kind: 'data', step, bucket: 0, segment: 0, phase: 0, chunk: 0, rank: 1, nonFinite: false, bytes: 8 }),
      Buffer.from(Float32Array.of(1e9, 1e9).buffer),
    ];
    try {
      for (const s of strangers) for (const a of c.addresses) s.connect(a.bind);
      for (const s of [plain, guess, leaked]) for (let i = 0; i < 3; i++) await s.send(forged(i)).catch(() => undefined);
      const data = [0, 1].map((r) => randomBuffers([2, 9], 40 + r));
      const deadline = Date.now() + 5000;
      let refused = 0;
      let zapDenied = 0;
      while (Date.now() < deadline) {
        const stats = (await c.all(() => ({ cmd: 'stats' }))).map((m) => ok(m).stats as { refusedHandshakes: number; zapDenied: number });
        refused = stats.reduce((a, s) => a + s.refusedHandshakes, 0);
        zapDenied = stats.reduce((a, s) => a + s.zapDenied, 0);
        if (refused >= 6 && zapDenied >= 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(refused).toBeGreaterThanOrEqual(6); // 3 strangers x 2 ranks
      expect(zapDenied).toBeGreaterThanOrEqual(2);
      for (let step = 0; step < 3; step++) {
        const replies = (await c.all((r) => ({ cmd: 'allreduce', step, buffers: data[r] }))).map(ok);
        expectMean(data, replies.map((m) => m.buffers as Float32Array[]));
      }
      // A raw TCP client speaking garbage gets nowhere either.
      const port = Number(c.addresses[0]!.bind.split(':').pop());
      await new Promise<void>((res) => {
        const sock = net.connect(port, '127.0.0.1', () => sock.write(Buffer.alloc(64, 0xff)));
        sock.on('close', () => res());
        sock.on('error', () => res());
        setTimeout(() => { sock.destroy(); res(); }, 1000);
      });
      const after = (await c.all((r) => ({ cmd: 'allreduce', step: 3, buffers: data[r] }))).map(ok);
      expectMean(data, after.map((m) => m.buffers as Float32Array[]));
      expect(handshakes).toEqual([]);
    } finally {
      for (const s of strangers) s.close();
    }
  });
});

describe('PLAIN links', () => {
  it.each([
    ['ipc', 'auto'],
    ['tcp', 'plain'],
  ] as const)('%s links under security %s authenticate with the job token (PLAIN + ZAP): strangers are refused, results unaffected', async (kind, security) => {
    const c = await cluster(2, kind, { security });
    const stats0 = ok((await c.all(() => ({ cmd: 'stats' })))[0]!);
    expect(stats0.mechanisms).toEqual(['plain', 'plain']);
    const packr = new Packr({ useRecords: false });
    const handshakes: string[] = [];
    const strangers = [
      (s: zmq.Dealer) => undefined, // no security
      (s: zmq.Dealer) => {
        s.plainUsername = 'grerank';
        s.plainPassword = 'f'.repeat(64); // a guessed token
      },
      (s: zmq.Dealer) => {
        const k = zmq.curveKeyPair();
        s.curveServerKey = deriveJobKeys(c.secret).serverPublic;
        s.curvePublicKey = k.publicKey;
        s.curveSecretKey = k.secretKey;
      },
    ].map((setup, i) => {
      const s = new zmq.Dealer({ linger: 0, sendTimeout: 0 });
      setup(s);
      s.events.on('handshake', () => handshakes.push(String(i)));
      return s;
    });
    try {
      for (const s of strangers) {
        for (const a of c.addresses) s.connect(a.bind);
        await s
          .send([packr.pack({ kind: 'data', step: 0, bucket: 0, segment: 0, phase: 0, chunk: 0, rank: 1, nonFinite: true, bytes: 4 }), Buffer.from(Float32Array.of(1e9).buffer)])
          .catch(() => undefined);
      }
      let refused = 0;
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && refused < 6) {
        refused = (await c.all(() => ({ cmd: 'stats' }))).reduce((a, m) => a + (ok(m).stats as { refusedHandshakes: number }).refusedHandshakes, 0);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(refused).toBeGreaterThanOrEqual(6);
      const data = [0, 1].map((r) => randomBuffers([1, 5], 70 + r));
      const replies = (await c.all((r) => ({ cmd: 'allreduce', step: 0, buffers: data[r] }))).map(ok);
      expect(replies.map((m) => m.nonFinite)).toEqual([false, false]);
      expectMean(data, replies.map((m) => m.buffers as Float32Array[]));
      expect(handshakes).toEqual([]);
    } finally {
      for (const s of strangers) s.close();
    }
  });
});

describe('faults', () => {
  afterEach(async () => {
    // Fault tests leave broken rings behind: end them now.
    await Promise.all(clusters.splice(0).map((c) => c.stop()));
  });

  it.each([
    [4, 'tcp', 2],
    [2, 'ipc', 1],
  ] as const)('kill -9 of one rank mid-run (%i processes, %s): every other rank fails promptly, naming it', async (n, kind, victim) => {
    const timeoutMs = 3000;
    const c = await cluster(n, kind, { timeoutMs });
    for (let r = 0; r < n; r++) c.procs[r]!.send({ cmd: 'loop', id: 500, length: 50_000, pauseMs: 5 });
    await c.waitFor(victim, (m) => m.type === 'step' && (m.step as number) >= 5, CALL_TIMEOUT_MS);
    const killedAt = Date.now();
    c.procs[victim]!.kill('SIGKILL');
    const others = Array.from({ length: n }, (_, r) => r).filter((r) => r !== victim);
    const errs = await Promise.all(others.map((r) => c.waitFor(r, (m) => m.type === 'error' && m.id === 500, timeoutMs + 5000)));
    for (const e of errs) {
      expect(e.peer).toBe(victim);
      expect(e.message).toMatch(new RegExp(`^lost peer rank ${victim}: `));
      // The dead rank's connection closes at once: nobody has to wait for the receive timeout.
      expect((e.at as number) - killedAt).toBeLessThan(timeoutMs);
    }
  });

  it('a hung rank (SIGSTOP): the others fail after the receive timeout, naming it, no hang', async () => {
    const timeoutMs = 1500;
    const c = await cluster(3, 'ipc', { timeoutMs });
    for (let r = 0; r < 3; r++) c.procs[r]!.send({ cmd: 'loop', id: 600, length: 1000, pauseMs: 2 });
    await c.waitFor(1, (m) => m.type === 'step' && (m.step as number) >= 5, CALL_TIMEOUT_MS);
    const stoppedAt = Date.now();
    c.procs[1]!.kill('SIGSTOP');
    try {
      const errs = await Promise.all([0, 2].map((r) => c.waitFor(r, (m) => m.type === 'error' && m.id === 600, timeoutMs + 5000)));
      for (const e of errs) {
        expect(e.peer).toBe(1);
        expect(e.message).toMatch(/peer rank 1 did not answer within 1500 ms/);
        const took = (e.at as number) - stoppedAt;
        expect(took).toBeGreaterThanOrEqual(timeoutMs - 100);
        expect(took).toBeLessThan(timeoutMs + 2500);
      }
    } finally {
      c.procs[1]!.kill('SIGKILL');
    }
  });
});
