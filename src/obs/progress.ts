/** Formats seconds as 1h02m, 3m05s or 12s. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/**
 * Progress of long work: on a terminal a bar redrawn in place with ETA and the given fields;
 * elsewhere (logs, CI, SLURM output files) one line every `every` updates, as text or JSON.
 */
export class Progress {
  private readonly start = performance.now();
  private count = 0;
  private readonly tty: boolean;

  constructor(
    readonly label: string,
    readonly total: number,
    readonly opts: { stream?: NodeJS.WriteStream; every?: number; format?: 'text' | 'json' } = {},
  ) {
    this.tty = Boolean((opts.stream ?? process.stderr).isTTY) && opts.format !== 'json';
  }

  /** Records `done` of `total` units finished, with fields to show (loss, examples/s, ...). */
  update(done: number, fields: Record<string, number | string> = {}): void {
    this.count++;
    const stream = this.opts.stream ?? process.stderr;
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const shown = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`);
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * Math.min(done, this.total)) / Math.max(1, this.total));
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      stream.write(`\r\x1b[2K${this.label} ${bar} ${done}/${this.total} eta ${formatDuration(eta)} ${shown.join(' ')}`);
      if (done >= this.total) stream.write('\n');
      return;
    }
    const every = this.opts.every ?? 1;
    if (this.count % every !== 0 && done < this.total) return;
    if (this.opts.format === 'json') {
      stream.write(JSON.stringify({ event: this.label, done, total: this.total, elapsed_s: round(elapsed), eta_s: round(eta), ...fields }) + '\n');
    } else {
      stream.write(`${this.label} ${done}/${this.total} eta ${formatDuration(eta)} ${shown.join(' ')}\n`);
    }
  }
}

function round(x: number): number | null {
  return Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null;
}

function fmt(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}
