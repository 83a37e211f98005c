// All-reduce bandwidth of the ZeroMQ ring (src/dist) between real processes on this machine,
// next to the raw loopback limit (two Node processes blasting one TCP stream with net sockets).
//
//   npm run bench:allreduce -- [--procs 2,4] [--sizes 4,16,64,256] [--transports tcp,ipc]
//                              [--security auto[,plain,curve,none]] [--math simd[,scalar]] [--iters 5]
//                              [--json]
//
// Bus bandwidth = 2(n-1)/n x bytes / time (as nccl-tests): what each link carries per second.
// `time` is, per iteration, the slowest rank's all-reduce after a barrier; the median over the
// iterations is reported. `auto` = CURVE on tcp, PLAIN on ipc (the default); `plain` = PLAIN on
// every link (--ring-security plain); `curve` = CURVE on every link; `none` = no security at all, to measure what security costs (reference only). `--math scalar` runs the ranks
// with GRERANK_RING_MATH=scalar (plain JS loops instead of the SIMD kernels), for comparison.
// --json prints one JSON object per line: {"procs","bytes","transport","security","math","seconds",
// "busbw_GBps"} per configuration and one {"loopback_GBps"}.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const MB = 1 << 20;

function parse(argv) {
  const o = { procs: [2, 4], sizes: [4, 16, 64, 256], transports: ['tcp', 'ipc'], security: ['auto'], math: ['simd'], iters: 5, json: false, loopbackGiB: 1, timeoutMs: 120_000, frameKB: undefined, segmentMB: undefined, loopback: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => argv[++i];
    const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
    if (a === '--json') o.json = true;
    else if (a === '--procs') o.procs = list(val()).map(Number);
    else if (a === '--sizes') o.sizes = list(val()).map(Number);
    else if (a === '--transports') o.transports = list(val());
    else if (a === '--security') o.security = list(val());
    else if (a === '--math') o.math = list(val());
    else if (a === '--iters') o.iters = Number(val());
    else if (a === '--loopback-gib') o.loopbackGiB = Number(val());
    else if (a === '--no-loopback') o.loopback = false;
    else if (a === '--frame-kb') o.frameKB = Number(val());
    else if (a === '--segment-mb') o.segmentMB = Number(val());
    else if (a === '--io-threads') o.ioThreads = Number(val());
    else if (a === '--help') {
      console.log('usage: node bench/allreduce.mjs [--procs 2,4] [--sizes 4,16,64,256 (MB)] [--transports tcp,ipc] [--security auto[,plain,curve,none]] [--math simd[,scalar]] [--iters 5] [--json]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function freePorts(n) {
  return Promise.all(
    Array.from({ length: n }, () => new Promise((res) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => res(p));
      });
    })),
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------------------------------------
// Child: one rank

async function child(cfg) {
  const { RingTransport, ringAllReduce, ringBarrier } = await import('../dist/dist/index.js');
  const t = await RingTransport.open(cfg.transport);
  const buf = new Float32Array(cfg.bytes / 4).fill(t.rank + 1);
  const times = [];
  let step = 0;
  for (let it = 0; it < cfg.iters + 1; it++) {
    await ringBarrier(t, 1e6 + it);
    const t0 = performance.now();
    await ringAllReduce(t, [buf], { step: step++, segmentBytes: cfg.segmentBytes });
    const dt = (performance.now() - t0) / 1000;
    if (it > 0) times.push(dt); // the first is warm-up
  }
  await ringBarrier(t, 2e6);
  process.send({ times });
  await t.shutdown(1000);
  process.disconnect();
}

async function runConfig(o, procs, bytes, transport, security, math, dir) {
  const ports = transport === 'tcp' ? await freePorts(procs) : [];
  const addr = (r) => (transport === 'tcp' ? `tcp://127.0.0.1:${ports[r]}` : `ipc://${dir}/b${procs}-${bytes}-${security}-${r}.sock`);
  const secret = 'bench-secret-0123456789abcdef';
  const kids = [];
  const results = [];
  for (let r = 0; r < procs; r++) {
    const cfg = {
      bytes,
      iters: o.iters,
      segmentBytes: o.segmentMB ? o.segmentMB * MB : undefined,
      transport: {
        rank: r,
        worldSize: procs,
        bind: addr(r),
        connect: addr((r + 1) % procs),
        secret,
        security,
        timeoutMs: o.timeoutMs,
        connectTimeoutMs: 30_000,
        frameBytes: o.frameKB ? o.frameKB * 1024 : undefined,
        ioThreads: o.ioThreads,
      },
    };
    const env = { ...process.env, GRERANK_RING_MATH: math };
    const k = fork(SELF, ['--child', JSON.stringify(cfg)], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    kids.push(k);
    results.push(new Promise((res, rej) => {
      k.once('message', res);
      k.once('exit', (code) => (code ? rej(new Error(`rank ${r} exited with ${code}`)) : undefined));
    }));
  }
  try {
    const rs = await Promise.all(results);
    const perIter = rs[0].times.map((_, i) => Math.max(...rs.map((x) => x.times[i])));
    const seconds = median(perIter);
    return { procs, bytes, transport, security, math, seconds, busbw_GBps: ((2 * (procs - 1)) / procs) * bytes / seconds / 1e9 };
  } finally {
    await Promise.all(kids.map((k) => new Promise((res) => (k.exitCode !== null ? res() : (k.once('exit', res), setTimeout(() => k.kill('SIGKILL'), 5000).unref())))));
  }
}

// ---------------------------------------------------------------------------------------------
// Loopback: one TCP stream between two Node processes, plain net sockets.

async function loopbackChild(port, total) {
  const buf = Buffer.alloc(4 * MB, 1);
  const s = net.connect(port, '127.0.0.1', () => {
    let sent = 0;
    const go = () => {
      while (sent < total) {
        sent += buf.length;
        if (!s.write(buf)) return void s.once('drain', go);
      }
      s.end();
    };
    go();
  });
}

function loopbackOnce(total) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((c) => {
      let bytes = 0;
      let t0 = 0;
      c.on('data', (d) => {
        if (!t0) t0 = performance.now();
        bytes += d.length;
      });
      c.on('end', () => {
        const s = (performance.now() - t0) / 1000;
        srv.close();
        resolve(bytes / s / 1e9);
      });
      c.on('error', reject);
    });
    srv.listen(0, '127.0.0.1', () => {
      const k = fork(SELF, ['--loopback-child', String(srv.address().port), String(total)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      k.on('error', reject);
    });
  });
}

async function main() {
  const o = parse(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'grerank-bench-'));
  const rows = [];
  try {
    const lb = [];
    for (let i = 0; i < (o.loopback ? 3 : 0); i++) lb.push(await loopbackOnce(o.loopbackGiB * 1024 * MB));
    const loopback = o.loopback ? median(lb) : NaN;
    if (o.json) console.log(JSON.stringify({ loopback_GBps: loopback }));
    else console.log(`loopback (one TCP stream, two Node processes, median of 3 x ${o.loopbackGiB} GiB): ${loopback.toFixed(2)} GB/s\n`);
    if (!o.json) console.log('procs  transport  security  math        size     seconds   busbw GB/s   % of loopback');
    for (const math of o.math)
    for (const security of o.security)
      for (const procs of o.procs)
        for (const transport of o.transports)
          for (const size of o.sizes) {
            const row = await runConfig(o, procs, size * MB, transport, security, math, dir);
            rows.push(row);
            if (o.json) console.log(JSON.stringify(row));
            else
              console.log(
                `${String(procs).padStart(5)}  ${transport.padEnd(9)}  ${security.padEnd(8)}  ${math.padEnd(6)} ${`${size} MB`.padStart(8)}  ${row.seconds.toFixed(4).padStart(10)}  ${row.busbw_GBps.toFixed(3).padStart(11)}  ${((100 * row.busbw_GBps) / loopback).toFixed(0).padStart(13)}%`,
              );
          }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(JSON.parse(argv[1]));
else if (argv[0] === '--loopback-child') await loopbackChild(Number(argv[1]), Number(argv[2]));
else await main();
