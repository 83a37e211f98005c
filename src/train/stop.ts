/**
 * A request to stop training after the current step, from SIGTERM or SIGUSR1 (SLURM
 * preemption). The training loops poll it between steps, save a checkpoint and exit 75.
 */

/** Signal numbers (what the data-parallel workers exchange as their stop flag). */
export const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGUSR1: 10, SIGTERM: 15 };

/**
 * The same signal may arrive twice within moments: under SLURM a step's signal reaches every
 * process of the step and the launcher forwards it as well. Repeats within this window are the
 * same request; a later signal while the step finishes stops at once (the last checkpoint stays
 * usable).
 */
export const SIGNAL_REPEAT_MS = 5000;

export class StopRequest {
  /** The first signal received (undefined while none). */
  signal: NodeJS.Signals | undefined;
  private at = 0;
  private readonly handlers: Array<[NodeJS.Signals, () => void]> = [];

  constructor(signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGUSR1'], opts: { announce?: boolean } = {}) {
    for (const sig of signals) {
      const h = (): void => {
        if (this.signal) {
          if (Date.now() - this.at < SIGNAL_REPEAT_MS) return;
          process.exit(128 + (SIGNAL_NUMBERS[sig] ?? 15));
        }
        this.signal = sig;
        this.at = Date.now();
        if (opts.announce !== false) process.stderr.write(`[grerank] ${sig}: finishing the current step, then saving a checkpoint and stopping\n`);
      };
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
  }

  /** The signal's number (0 while none). */
  get number(): number {
    return this.signal ? (SIGNAL_NUMBERS[this.signal] ?? 15) : 0;
  }

  /**
   * Between steps: lets pending signals be delivered (a step never yields to the event loop),
   * after applying the test hook GRERANK_TEST_SIGNAL_AT="STEP:SIGNAL", which has this process
   * signal itself after step STEP and waits (at most 5 s) for the handler, so that a test stops
   * at exactly that step.
   */
  async poll(step: number, testHook = true): Promise<void> {
    const at = process.env.GRERANK_TEST_SIGNAL_AT?.split(':');
    if (testHook && at && Number(at[0]) === step) {
      process.kill(process.pid, (at[1] ?? 'SIGUSR1') as NodeJS.Signals);
      for (const t0 = Date.now(); !this.signal && Date.now() - t0 < 5000; ) await new Promise<void>((r) => setTimeout(r, 5));
    }
    await new Promise<void>((r) => setImmediate(r));
  }

  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.length = 0;
  }
}
