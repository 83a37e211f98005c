/**
 * Liveness beyond the ring: every worker sends a heartbeat to its launcher over the IPC channel
 * the launcher opened (Node's `process.send`), from a timer on the worker's event loop. A worker
 * that is alive but stuck (a deadlock, a step that never ends, a rank 0 hung in evaluation while
 * the others wait at a barrier with a long timeout) stops beating; the launcher's monitor names
 * it after `timeoutMs` of silence, stops all workers and restarts them from the latest checkpoint.
 * The all-reduce's receive timeouts cover hangs inside collectives; this covers everything else.
 */

/** Environment variable through which the launcher tells a worker how often to beat (ms). */
export const HEARTBEAT_ENV = 'GRERANK_HEARTBEAT_MS';

export interface HeartbeatMessage {
  type: 'heartbeat';
  rank: number;
  /** Optimizer steps done when it was sent. */
  step: number;
}

/**
 * Starts beating when this process has an IPC channel to its parent and `HEARTBEAT_ENV` is set;
 * returns a function that records progress (the step number carried by later beats). The timer
 * and the channel are unref'd: neither keeps the worker alive.
 */
export function startHeartbeat(rank: number, env: NodeJS.ProcessEnv = process.env): { progress: (step: number) => void; stop: () => void } {
  const every = Number(env[HEARTBEAT_ENV] ?? '0');
  let step = 0;
  if (!process.send || !(every > 0)) return { progress: () => {}, stop: () => {} };
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
  const send = (): void => {
    // A launcher that is gone is not this worker's problem: the ring notices dead peers.
    if (process.connected) process.send!({ type: 'heartbeat', rank, step } satisfies HeartbeatMessage, undefined, undefined, () => {});
  };
  send();
  const timer = setInterval(send, every);
  timer.unref();
  return { progress: (s) => void (step = s), stop: () => clearInterval(timer) };
}

/** The launcher's side: when each rank last beat, and which have been silent too long. */
export class HeartbeatMonitor {
  private readonly last = new Map<number, number>();
  private readonly steps = new Map<number, number>();

  constructor(
    ranks: readonly number[],
    readonly timeoutMs: number,
    now: number,
  ) {
    // A rank is given the whole timeout from its start to send its first beat.
    for (const r of ranks) this.last.set(r, now);
  }

  beat(msg: unknown, now: number): void {
    const m = msg as Partial<HeartbeatMessage> | null;
    if (!m || m.type !== 'heartbeat' || typeof m.rank !== 'number' || !this.last.has(m.rank)) return;
    this.last.set(m.rank, now);
    if (typeof m.step === 'number') this.steps.set(m.rank, m.step);
  }

  /** Ranks silent for longer than the timeout, longest silence first. */
  overdue(now: number): Array<{ rank: number; silentMs: number; step?: number }> {
    if (!(this.timeoutMs > 0)) return [];
    return [...this.last]
      .map(([rank, t]) => ({ rank, silentMs: now - t, step: this.steps.get(rank) }))
      .filter((x) => x.silentMs > this.timeoutMs)
      .sort((a, b) => b.silentMs - a.silentMs);
  }

  /** Stops watching a rank (it exited). */
  forget(rank: number): void {
    this.last.delete(rank);
  }
}

/** How often a worker beats for a launcher timeout: several beats per timeout, at most every 250 ms. */
export function heartbeatInterval(timeoutMs: number): number {
  return Math.max(250, Math.floor(timeoutMs / 6));
}
