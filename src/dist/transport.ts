/**
 * Ring transport: each rank binds one socket (its left neighbour connects to it) and connects one
 * socket to its right neighbour. Messages are a msgpackr header frame followed by raw payload
 * frames; payload buffers are handed to ZeroMQ by reference (no copy), so a buffer must not be
 * mutated after it has been given to {@link RingTransport.send}.
 *
 * Security: both sockets use ZeroMQ CURVE. Every rank derives the same server key pair and the
 * same client key pair from the per-job secret (HKDF-SHA256, then X25519 for the public halves);
 * the bound socket is the CURVE server and runs a ZAP handler that admits only the derived client
 * key. A process without the secret knows neither the server's public key (its CURVE HELLO cannot
 * be decrypted) nor the client secret key (ZAP refuses it), so its connection is dropped during
 * the handshake and none of its messages reaches the application.
 *
 * Fault handling: every receive has a deadline; a lost connection to the right neighbour (the
 * peer process died: the kernel closed its sockets) is noticed at once. Either failure is flooded
 * around the ring in both directions as an `abort` message naming the rank at fault, so every
 * surviving rank fails with the same error instead of waiting for its own timeout.
 *
 * The transport knows nothing about gradients: it moves tagged byte frames between neighbours.
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import * as zmq from 'zeromq';
import { GrerankError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// Errors

/** A distributed-runtime failure; the message names the rank at fault where one is known. */
export class DistError extends GrerankError {
  constructor(message: string) {
    super(message);
    this.name = 'DistError';
  }
}

/**
 * A peer rank stopped taking part: it did not answer within the timeout, or its connection went
 * away. `peer` is the rank at fault; every surviving rank reports the same one.
 */
export class PeerError extends DistError {
  constructor(
    message: string,
    readonly peer: number,
    readonly reason: 'timeout' | 'lost' | 'closed' | 'protocol',
  ) {
    super(message);
    this.name = 'PeerError';
  }
}

// ---------------------------------------------------------------------------------------------
// Keys

const Z85_CHARS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85 (ZeroMQ RFC 32) encoding of a byte string whose length is a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new DistError(`z85: length ${bytes.length} is not a multiple of 4`);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    const chunk = new Array<string>(5);
    for (let k = 4; k >= 0; k--) {
      chunk[k] = Z85_CHARS[v % 85]!;
      v = Math.floor(v / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/** The CURVE key material of one job, all derived from its secret (z85 strings, 40 chars). */
export interface JobKeys {
  serverPublic: string;
  serverSecret: string;
  clientPublic: string;
  clientSecret: string;
  /** The raw 32-byte client public key, as the ZAP handler sees it. */
  clientPublicRaw: Buffer;
  /** The PLAIN password used on ipc:// links under `security: 'auto'` (hex, 256 bits). */
  plainToken: string;
}

/** A fresh per-job secret for the launcher to hand to every rank (256 bits, base64url). */
export function newJobSecret(): string {
  return randomBytes(32).toString('base64url');
}

function x25519Pair(seed: Buffer): { secret: Buffer; public: Buffer } {
  // Clamp as X25519 does, so the secret we hand to libzmq is exactly the scalar Node used.
  const secret = Buffer.from(seed);
  secret[0]! &= 248;
  secret[31]! &= 127;
  secret[31]! |= 64;
  // PKCS#8 wrapping of a raw X25519 private key (RFC 8410): fixed 16-byte prefix + 32 bytes.
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), secret]);
  const priv = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  if (spki.length !== 44) throw new DistError('X25519 public key derivation failed');
  return { secret, public: Buffer.from(spki.subarray(12)) };
}

/**
 * Derives the job's CURVE key pairs from its secret: HKDF-SHA256 gives two 32-byte X25519 secret
 * keys (server, client); their public halves are computed with Node's X25519. Every rank holding
 * the secret derives the same keys; nobody else can.
 */
export function deriveJobKeys(secret: string | Uint8Array): JobKeys {
  const ikm = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (ikm.length < 16) throw new DistError(`the job secret is too short (${ikm.length} bytes; at least 16 needed, e.g. from newJobSecret())`);
  const salt = Buffer.from('grerank-dist-v1');
  const server = x25519Pair(Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('curve server key'), 32)));
  const client = x25519Pair(Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('curve client key'), 32)));
  return {
    serverPublic: z85Encode(server.public),
    serverSecret: z85Encode(server.secret),
    clientPublic: z85Encode(client.public),
    clientSecret: z85Encode(client.secret),
    clientPublicRaw: client.public,
    plainToken: Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('plain token'), 32)).toString('hex'),
  };
}

/** A short fingerprint of the job secret for logs (never the secret itself). */
export function secretFingerprint(secret: string | Uint8Array): string {
  return createHash('sha256').update(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret).digest('hex').slice(0, 12);
}

// ---------------------------------------------------------------------------------------------
// Addresses

/**
 * The two endpoints of `rank` in a ring laid out over `hosts` (one host name per rank): a rank
 * binds ipc:// when its left neighbour is on the same host, tcp:// otherwise, and connects to its
 * right neighbour the same way. `ipcDir` should be a private (0700) directory of the job.
 */
export function ringEndpoints(opts: { rank: number; hosts: readonly string[]; basePort: number; ipcDir: string }): { bind: string; connect: string } {
  const { rank, hosts, basePort, ipcDir } = opts;
  const n = hosts.length;
  const left = (rank - 1 + n) % n;
  const right = (rank + 1) % n;
  const addr = (r: number, sameHost: boolean, binding: boolean) =>
    sameHost ? `ipc://${ipcDir.replace(/\/$/, '')}/rank-${r}.sock` : `tcp://${binding ? hosts[r] : hosts[r]}:${basePort + r}`;
  return { bind: addr(rank, hosts[left] === hosts[rank], true), connect: addr(right, hosts[right] === hosts[rank], false) };
}

/**
 * ZAP (RFC 27) handler on a context's `inproc://zeromq.zap.01` router: every handshake on a socket
 * of that context with a zapDomain is admitted only if `admit(mechanism, credentials)` says so
 * (status 200), else refused (400). Returns when the router closes.
 */
export async function serveZap(zap: zmq.Router, admit: (mechanism: string, credentials: Buffer[]) => boolean, denied: () => void): Promise<void> {
  for (;;) {
    let req: Buffer[];
    try {
      req = await zap.receive();
    } catch {
      return; // closed
    }
    // [routing id, '', version, request id, domain, address, identity, mechanism, credentials...]
    const [id, , version, requestId, , , , mechanism, ...credentials] = req;
    const ok = admit(mechanism?.toString() ?? '', credentials);
    if (!ok) denied();
    try {
      await zap.send([id!, Buffer.alloc(0), version ?? '1.0', requestId ?? '', ok ? '200' : '400', ok ? 'OK' : 'not a member of this job', ok ? 'job-member' : '', Buffer.alloc(0)]);
    } catch {
      return;
    }
  }
}

/**
 * Makes a socket a CURVE server of the job (clients must present the job's client key, checked by
 * a ZAP handler on `zap`, which must be bound before the socket binds) or a CURVE client of it.
 */
export function curveServer(sock: zmq.Socket, keys: JobKeys): void {
  sock.curveServer = true;
  sock.curveSecretKey = keys.serverSecret;
  sock.zapDomain = 'grerank';
}
export function curveClient(sock: zmq.Socket, keys: JobKeys): void {
  sock.curveServerKey = keys.serverPublic;
  sock.curvePublicKey = keys.clientPublic;
  sock.curveSecretKey = keys.clientSecret;
}
/** Whether a ZAP request presents the job's CURVE client key. */
export function isJobClient(keys: JobKeys, mechanism: string, [publicKey]: Buffer[]): boolean {
  return mechanism === 'CURVE' && !!publicKey && publicKey.length === 32 && timingSafeEqual(publicKey, keys.clientPublicRaw);
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Phase of a message; a receive matches on (step, bucket, segment, phase, chunk). */
export const Phase = { reduceScatter: 0, allGather: 1, gather: 2, hello: 3 } as const;
export type PhaseId = (typeof Phase)[keyof typeof Phase];
const PHASE_NAMES = ['reduce-scatter', 'all-gather', 'gather', 'hello'];

/** The msgpackr header frame of a data message. */
export interface Header {
  kind: 'data';
  step: number;
  bucket: number;
  /** Pipelining slice of the bucket (large buckets are cut into segments reduced concurrently). */
  segment: number;
  phase: PhaseId;
  chunk: number;
  /** The sending rank. */
  rank: number;
  /** True when the sender (or a rank before it on this chunk's path) saw a non-finite value. */
  nonFinite: boolean;
  /** Payload bytes over all payload frames. */
  bytes: number;
}

interface ControlHeader {
  kind: 'hello' | 'bye' | 'abort' | 'stuck';
  rank: number;
  /** abort: the rank at fault, the rank that detected it, the error text, its reason, direction. */
  peer?: number;
  origin?: number;
  message?: string;
  reason?: PeerError['reason'];
  dir?: 'right' | 'left';
  /** hello: fingerprint of the job (so two jobs sharing a port cannot mix). */
  job?: string;
}

export interface Received {
  header: Header;
  /** Payload frames (ZeroMQ-owned memory handed to JS without a copy); the receiver owns them. */
  frames: Buffer[];
}

const packr = new Packr({ useRecords: false });

/** How ring links are guarded; see {@link RingTransportOptions.security}. */
export const RING_SECURITY = ['auto', 'curve', 'plain', 'none'] as const;
export type RingSecurity = (typeof RING_SECURITY)[number];

export interface RingTransportOptions {
  rank: number;
  worldSize: number;
  /** Address this rank binds (its left neighbour connects here): `tcp://host:port` or `ipc:///path`. */
  bind: string;
  /** The right neighbour's bound address. */
  connect: string;
  /** The per-job secret handed out by the launcher (see {@link newJobSecret}). */
  secret: string | Uint8Array;
  /** Default deadline of a receive, ms (default 60000). */
  timeoutMs?: number;
  /** How long {@link RingTransport.open} waits for the ring to form, ms (default 60000). */
  connectTimeoutMs?: number;
  /**
   * Payload frame size in bytes (multiple of 4). CURVE encrypts frame by frame; 64 KiB frames stay
   * in cache and measured ~2x faster than whole-chunk frames. Default 64 KiB when the outgoing
   * link uses CURVE, 1 MiB otherwise.
   */
  frameBytes?: number;
  /**
   * How links are guarded (see docs/distributed.md):
   * - `auto` (default): CURVE (authenticated + encrypted, keys from the secret) on tcp:// links;
   *   on ipc:// links (same node, kernel-local) PLAIN authentication with a token derived from
   *   the secret and checked by ZAP: strangers are refused, but payloads are not encrypted, which
   *   on one node protects against nothing root could not read anyway and saves the crypto cost.
   * - `curve`: CURVE on every link.
   * - `plain`: PLAIN with the secret's token on every link, tcp:// included: strangers are still
   *   refused and cannot inject gradients, but payloads cross the network unencrypted and someone
   *   who can read the cluster's traffic can learn the token. For trusted fabrics where CURVE's
   *   per-byte crypto would cap the all-reduce (see docs/distributed.md).
   * - `none`: no authentication at all; for measuring the cost of security only, never on a
   *   reachable port.
   */
  security?: RingSecurity;
  /**
   * ZeroMQ I/O threads of this rank's context (default 2): with two, encrypting outgoing and
   * decrypting incoming CURVE traffic run on separate threads.
   */
  ioThreads?: number;
  /** Grace period before a lost connection or an expired receive is declared a peer failure, ms. */
  graceMs?: number;
}

interface Waiter {
  resolve: (m: Received) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  what: string;
}

/** What identifies a data message: a receive waits for exactly one. */
export interface MessageId {
  step: number;
  bucket: number;
  segment: number;
  phase: PhaseId;
  chunk: number;
}

function keyOf(h: MessageId): string {
  return `${h.step}/${h.bucket}/${h.segment}/${h.phase}/${h.chunk}`;
}

/** Splits a byte range into zero-copy Buffer views of at most `frameBytes` bytes. */
export function payloadFrames(view: ArrayBufferView, frameBytes: number): Buffer[] {
  const out: Buffer[] = [];
  const total = view.byteLength;
  for (let o = 0; o < total; o += frameBytes) {
    out.push(Buffer.from(view.buffer, view.byteOffset + o, Math.min(frameBytes, total - o)));
  }
  return out;
}

/** Security statistics, for tests and logs. */
export interface TransportStats {
  /** Handshakes on the bound socket that CURVE or ZAP refused (strangers, wrong secret). */
  refusedHandshakes: number;
  /** ZAP requests denied (a CURVE client whose key is not the job's). */
  zapDenied: number;
  messagesIn: number;
  messagesOut: number;
}

/**
 * A rank's two ring sockets. Create with {@link RingTransport.open}; it resolves once the ring
 * has formed (every rank heard from its left neighbour).
 */
export class RingTransport {
  readonly rank: number;
  readonly worldSize: number;
  readonly left: number;
  readonly right: number;
  readonly timeoutMs: number;
  readonly frameBytes: number;
  readonly stats: TransportStats = { refusedHandshakes: 0, zapDenied: 0, messagesIn: 0, messagesOut: 0 };

  private readonly ctx: zmq.Context;
  private readonly inbound: zmq.Dealer;
  private readonly outbound: zmq.Dealer;
  private zap?: zmq.Router;
  private keys?: JobKeys;
  /** The mechanism of the bound (incoming) and connected (outgoing) link. */
  readonly inMech: 'curve' | 'plain' | 'none';
  readonly outMech: 'curve' | 'plain' | 'none';
  private readonly graceMs: number;
  private readonly job: string;
  private readonly pending = new Map<string, Received>();
  private readonly waiters = new Map<string, Waiter>();
  private helloWaiter?: { resolve: () => void; reject: (e: Error) => void };
  private gotHello = false;
  private sendChain: { in: Promise<void>; out: Promise<void> } = { in: Promise.resolve(), out: Promise.resolve() };
  private failure?: DistError;
  private closed = false;
  private rightHandshaken = false;
  private byeFromRight = false;
  private byeFromLeft = false;
  private lastHandshakeError?: string;
  private forwarded = { right: false, left: false };
  /** When the left neighbour last said it is itself stuck waiting (proof that it is alive). */
  private stuckFromLeftAt = -Infinity;

  private constructor(private readonly opts: RingTransportOptions) {
    const { rank, worldSize } = opts;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new DistError(`world size must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new DistError(`rank ${rank} is outside 0..${worldSize - 1}`);
    this.rank = rank;
    this.worldSize = worldSize;
    this.left = (rank - 1 + worldSize) % worldSize;
    this.right = (rank + 1) % worldSize;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    const security = opts.security ?? 'auto';
    if (!RING_SECURITY.includes(security)) throw new DistError(`unknown security mode ${String(security)} (${RING_SECURITY.join(', ')})`);
    const mech = (addr: string): 'curve' | 'plain' | 'none' =>
      security === 'none' || security === 'plain' ? security : security === 'curve' || !addr.startsWith('ipc://') ? 'curve' : 'plain';
    this.inMech = mech(opts.bind);
    this.outMech = mech(opts.connect);
    this.frameBytes = opts.frameBytes ?? (this.outMech === 'curve' ? 64 << 10 : 1 << 20);
    if (this.frameBytes <= 0 || this.frameBytes % 4 !== 0) throw new DistError(`frameBytes must be a positive multiple of 4, got ${this.frameBytes}`);
    this.graceMs = opts.graceMs ?? Math.min(500, Math.max(50, this.timeoutMs / 10));
    this.job = secretFingerprint(opts.secret);
    this.ctx = new zmq.Context({ ioThreads: opts.ioThreads ?? 2 });
    const common = { context: this.ctx, linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 };
    this.inbound = new zmq.Dealer(common);
    this.outbound = new zmq.Dealer({ ...common, sendTimeout: this.timeoutMs, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    const keys = security === 'none' ? undefined : deriveJobKeys(opts.secret);
    if (keys) this.keys = keys;
    if (keys && this.inMech === 'curve') {
      curveServer(this.inbound, keys);
    } else if (keys && this.inMech === 'plain') {
      this.inbound.plainServer = true;
    }
    if (keys && this.outMech === 'curve') {
      curveClient(this.outbound, keys);
    } else if (keys && this.outMech === 'plain') {
      this.outbound.plainUsername = 'grerank';
      this.outbound.plainPassword = keys.plainToken;
    }
    if (keys) {
      // Every handshake on the bound socket goes through our ZAP handler.
      this.inbound.zapDomain = 'grerank';
      this.zap = new zmq.Router({ context: this.ctx, linger: 0 });
    }
  }

  /** Binds, connects and waits until the ring has formed (hello from the left neighbour). */
  static async open(opts: RingTransportOptions): Promise<RingTransport> {
    const t = new RingTransport(opts);
    try {
      await t.start(opts.connectTimeoutMs ?? 60_000);
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  private async start(connectTimeoutMs: number): Promise<void> {
    if (this.worldSize === 1) return;
    if (this.zap) {
      // The ZAP handler must be in place before the CURVE server accepts anything.
      await this.zap.bind('inproc://zeromq.zap.01');
      void this.zapLoop(this.zap);
    }
    this.watchEvents();
    await this.inbound.bind(this.opts.bind).catch((e: Error) => {
      throw new DistError(`rank ${this.rank}: cannot bind ${this.opts.bind}: ${e.message}`);
    });
    this.outbound.connect(this.opts.connect);
    void this.receiveLoop(this.inbound, 'in');
    void this.receiveLoop(this.outbound, 'out');
    const hello = new Promise<void>((resolve, reject) => {
      if (this.gotHello) resolve();
      else this.helloWaiter = { resolve, reject };
    });
    void this.sendControl('out', { kind: 'hello', rank: this.rank, job: this.job });
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const hs = this.stats.refusedHandshakes ? `; ${this.stats.refusedHandshakes} handshake(s) refused on ${this.opts.bind}` : '';
        const own = this.lastHandshakeError ? `; our handshake with rank ${this.right} at ${this.opts.connect} failed: ${this.lastHandshakeError}` : '';
        reject(
          new PeerError(
            `rank ${this.rank}: rank ${this.left} did not join the ring at ${this.opts.bind} within ${connectTimeoutMs} ms ` +
              `(not started, wrong address, or a different job secret${hs}${own})`,
            this.left,
            'timeout',
          ),
        );
      }, connectTimeoutMs);
    });
    try {
      await Promise.race([hello, expired]);
    } finally {
      clearTimeout(timer);
      this.helloWaiter = undefined;
    }
  }

  /**
   * ZAP (RFC 27) handler: on a CURVE link admits only clients presenting the job's client key; on
   * a PLAIN (ipc) link only the job's token. Anything else is refused (status 400).
   */
  private async zapLoop(zap: zmq.Router): Promise<void> {
    const k = this.keys!;
    const token = Buffer.from(k.plainToken);
    await serveZap(
      zap,
      (mech, creds) =>
        this.inMech === 'curve'
          ? isJobClient(k, mech, creds)
          : this.inMech === 'plain' && mech === 'PLAIN' && !!creds[1] && creds[1].length === token.length && timingSafeEqual(creds[1], token),
      () => this.stats.zapDenied++,
    );
  }

  private watchEvents(): void {
    const inEv = this.inbound.events;
    const onRefused = () => {
      this.stats.refusedHandshakes++;
    };
    inEv.on('handshake:error:protocol', onRefused);
    inEv.on('handshake:error:auth', onRefused);
    inEv.on('handshake:error:other', onRefused);
    const outEv = this.outbound.events;
    outEv.on('handshake', () => {
      this.rightHandshaken = true;
    });
    const onOwnRefused = (e: { error: Error }) => {
      this.lastHandshakeError = e.error?.message ?? 'refused';
    };
    outEv.on('handshake:error:protocol', onOwnRefused);
    outEv.on('handshake:error:auth', onOwnRefused);
    outEv.on('handshake:error:other', onOwnRefused);
    outEv.on('disconnect', () => {
      if (!this.rightHandshaken || this.closed || this.failure) return;
      // A goodbye may still sit unread in the socket: give it a moment before calling it a loss.
      setTimeout(() => {
        if (this.byeFromRight || this.closed || this.failure) return;
        this.fail(
          new PeerError(
            `lost peer rank ${this.right}: its connection (${this.opts.connect}) closed without a goodbye (noticed by rank ${this.rank})`,
            this.right,
            'lost',
          ),
        );
      }, this.graceMs).unref();
    });
  }

  private async receiveLoop(sock: zmq.Dealer, side: 'in' | 'out'): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await sock.receive();
      } catch (e) {
        if (this.closed) return;
        this.fail(new DistError(`rank ${this.rank}: receive failed: ${(e as Error).message}`));
        return;
      }
      if (this.closed) return;
      this.stats.messagesIn++;
      try {
        this.dispatch(frames, side);
      } catch (e) {
        this.fail(e instanceof DistError ? e : new DistError(String(e)));
      }
    }
  }

  private dispatch(frames: Buffer[], side: 'in' | 'out'): void {
    let h: Header | ControlHeader;
    try {
      h = packr.unpack(frames[0]!) as Header | ControlHeader;
    } catch {
      throw new PeerError(`rank ${this.rank}: malformed header from rank ${side === 'in' ? this.left : this.right}`, side === 'in' ? this.left : this.right, 'protocol');
    }
    const expected = side === 'in' ? this.left : this.right;
    if (h.kind === 'abort') {
      this.onAbort(h);
      return;
    }
    if (h.rank !== expected) {
      throw new PeerError(`rank ${this.rank}: got a message from rank ${h.rank} where rank ${expected} was expected (ring addresses mis-wired?)`, h.rank, 'protocol');
    }
    if (h.kind === 'hello') {
      if (side !== 'in') return;
      if (h.job !== this.job) throw new PeerError(`rank ${this.rank}: rank ${h.rank} belongs to another job`, h.rank, 'protocol');
      this.gotHello = true;
      this.helloWaiter?.resolve();
      return;
    }
    if (h.kind === 'stuck') {
      if (side === 'in') this.stuckFromLeftAt = performance.now();
      return;
    }
    if (h.kind === 'bye') {
      if (side === 'out') this.byeFromRight = true;
      else {
        this.byeFromLeft = true;
        for (const [, w] of this.waiters) this.settleClosedLeft(w);
      }
      return;
    }
    if (h.kind !== 'data' || side !== 'in') throw new PeerError(`rank ${this.rank}: unexpected ${String(h.kind)} message from rank ${h.rank}`, h.rank, 'protocol');
    const payload = frames.slice(1);
    let bytes = 0;
    for (const f of payload) bytes += f.length;
    if (bytes !== h.bytes) throw new PeerError(`rank ${this.rank}: message from rank ${h.rank} carries ${bytes} bytes, header says ${h.bytes}`, h.rank, 'protocol');
    const key = keyOf(h);
    const msg: Received = { header: h, frames: payload };
    const w = this.waiters.get(key);
    if (w) {
      this.waiters.delete(key);
      clearTimeout(w.timer);
      clearTimeout(w.graceTimer);
      w.resolve(msg);
    } else {
      if (this.pending.has(key)) throw new PeerError(`rank ${this.rank}: duplicate message ${key} from rank ${h.rank}`, h.rank, 'protocol');
      this.pending.set(key, msg);
    }
  }

  private settleClosedLeft(w: Waiter): void {
    this.fail(new PeerError(`rank ${this.left} closed its transport while rank ${this.rank} was waiting for ${w.what} (ranks ran different numbers of collectives?)`, this.left, 'closed'));
  }

  private onAbort(h: ControlHeader): void {
    const err = new PeerError(h.message ?? `rank ${h.origin} aborted`, h.peer ?? -1, h.reason ?? 'lost');
    if (!this.failure) this.fail(err, false);
    // Flood onwards in the direction it travels, never to the failed rank, never back to its origin.
    const dir = h.dir ?? 'right';
    if (this.forwarded[dir]) return;
    this.forwarded[dir] = true;
    const next = dir === 'right' ? this.right : this.left;
    if (next === h.peer || next === h.origin) return;
    void this.sendControl(dir === 'right' ? 'out' : 'in', { ...h, rank: this.rank });
  }

  /** Fails the ring formation and every pending receive with `err`; drops parked messages. */
  private rejectAll(err: DistError): void {
    this.helloWaiter?.reject(err);
    for (const [, w] of this.waiters) {
      clearTimeout(w.timer);
      clearTimeout(w.graceTimer);
      w.reject(err);
    }
    this.waiters.clear();
    this.pending.clear();
  }

  /** Records the first failure, rejects every waiter, and tells the rest of the ring. */
  private fail(err: DistError, originate = true): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectAll(err);
    if (!originate || this.closed || this.worldSize === 1) return;
    const peer = err instanceof PeerError ? err.peer : this.rank;
    const reason = err instanceof PeerError ? err.reason : 'protocol';
    const base: ControlHeader = { kind: 'abort', rank: this.rank, peer, origin: this.rank, message: err.message, reason };
    if (this.right !== peer) {
      this.forwarded.right = true;
      void this.sendControl('out', { ...base, dir: 'right' });
    }
    if (this.left !== peer) {
      this.forwarded.left = true;
      void this.sendControl('in', { ...base, dir: 'left' });
    }
  }

  /** The failure that ended this transport, if any. */
  get error(): DistError | undefined {
    return this.failure;
  }

  /** Best-effort control message; never throws, never blocks on a missing peer. */
  private sendControl(side: 'in' | 'out', h: ControlHeader): Promise<void> {
    const sock = side === 'in' ? this.inbound : this.outbound;
    const p = this.sendChain[side].then(async () => {
      if (this.closed && h.kind !== 'bye') return;
      const saved = sock.sendTimeout;
      try {
        sock.sendTimeout = 0;
        await sock.send(packr.pack(h));
        this.stats.messagesOut++;
      } catch {
        /* no peer: nothing to tell */
      } finally {
        try {
          sock.sendTimeout = saved;
        } catch {
          /* closed */
        }
      }
    });
    this.sendChain[side] = p;
    return p;
  }

  /**
   * Sends a data message to the right neighbour: the header plus payload frames. The frames are
   * handed to ZeroMQ by reference: the caller must not write to their memory afterwards.
   * Resolves once ZeroMQ has queued the message.
   */
  send(h: MessageId & { nonFinite: boolean }, frames: readonly Buffer[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new DistError(`rank ${this.rank}: transport is closed`));
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    const header: Header = { kind: 'data', step: h.step, bucket: h.bucket, segment: h.segment, phase: h.phase, chunk: h.chunk, rank: this.rank, nonFinite: h.nonFinite, bytes };
    const msg = [packr.pack(header), ...frames];
    const p = this.sendChain.out.then(async () => {
      if (this.failure) throw this.failure;
      try {
        await this.outbound.send(msg);
        this.stats.messagesOut++;
      } catch (e) {
        if (this.failure) throw this.failure;
        const err = new PeerError(
          `peer rank ${this.right} did not take a message within ${this.timeoutMs} ms (rank ${this.rank} sending ${describe(h)}): ${(e as Error).message}`,
          this.right,
          'timeout',
        );
        this.fail(err);
        throw err;
      }
    });
    this.sendChain.out = p.catch(() => undefined);
    return p;
  }

  /**
   * Waits for the data message `id` from the left neighbour. Rejects with a
   * {@link PeerError} naming the rank at fault when it does not arrive within `timeoutMs` or the
   * ring fails meanwhile.
   */
  receive(id: MessageId, timeoutMs = this.timeoutMs): Promise<Received> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new DistError(`rank ${this.rank}: transport is closed`));
    const key = keyOf(id);
    const ready = this.pending.get(key);
    if (ready) {
      this.pending.delete(key);
      return Promise.resolve(ready);
    }
    if (this.waiters.has(key)) return Promise.reject(new DistError(`rank ${this.rank}: two receives wait for ${key}`));
    return new Promise<Received>((resolve, reject) => {
      const what = describe(id);
      const w: Waiter = { resolve, reject, what };
      this.waiters.set(key, w);
      if (this.byeFromLeft) {
        this.settleClosedLeft(w);
        return;
      }
      const since = performance.now();
      const blame = () => {
        if (this.waiters.get(key) !== w || this.failure) return;
        this.fail(
          new PeerError(`peer rank ${this.left} did not answer within ${timeoutMs} ms (rank ${this.rank} waiting for ${what})`, this.left, 'timeout'),
        );
      };
      w.timer = setTimeout(() => {
        // The deadline passed. Tell the right neighbour we are alive but stuck, so it does not
        // blame us; then give our left neighbour a grace period to say the same. If it did, the
        // culprit is further up the ring and its own right neighbour's abort is on its way: wait
        // for it (bounded). If it did not, the left neighbour is the one that did not answer.
        void this.sendControl('out', { kind: 'stuck', rank: this.rank });
        w.graceTimer = setTimeout(() => {
          if (this.waiters.get(key) !== w || this.failure) return;
          if (this.stuckFromLeftAt >= since) w.graceTimer = setTimeout(blame, 3 * this.graceMs);
          else blame();
        }, this.graceMs);
      }, timeoutMs);
    });
  }

  /** Says goodbye to both neighbours (so they do not mistake our exit for a crash) and closes. */
  async shutdown(lingerMs = 1000): Promise<void> {
    if (this.closed) return;
    if (this.worldSize > 1 && !this.failure) {
      await Promise.race([
        Promise.all([this.sendControl('out', { kind: 'bye', rank: this.rank }), this.sendControl('in', { kind: 'bye', rank: this.rank })]),
        new Promise((r) => setTimeout(r, lingerMs)),
      ]);
      try {
        this.outbound.linger = lingerMs;
        this.inbound.linger = lingerMs;
      } catch {
        /* already closed */
      }
    }
    this.close();
  }

  /** Closes both sockets at once (no goodbye; pending operations fail). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rejectAll(this.failure ?? new DistError(`rank ${this.rank}: transport is closed`));
    for (const s of [this.inbound, this.outbound, this.zap]) {
      try {
        s?.close();
      } catch {
        /* ignore */
      }
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

function describe(h: MessageId): string {
  return `step ${h.step}, bucket ${h.bucket}${h.segment ? ` segment ${h.segment}` : ''}, ${PHASE_NAMES[h.phase] ?? `phase ${h.phase}`} chunk ${h.chunk}`;
}
