/**
 * A small fixed-width text table (no dependencies): left-aligned text, right-aligned numbers,
 * a rule under the header. Used by `grerank eval` for one method and for comparing several.
 */

export type Cell = string | number | null | undefined;

export interface TableOptions {
  /** Per-column alignment; default: 'left' for the first column, 'right' for the others. */
  align?: ReadonlyArray<'left' | 'right'>;
  /** How numbers are shown (default: integers as they are, others with 4 decimals). */
  format?: (value: number, row: number, column: number) => string;
  /** Text of a missing or NaN value. */
  missing?: string;
  /** Spaces between columns. */
  gap?: number;
}

function defaultFormat(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

/** Formats `rows` under `header` as lines of equal-width columns (ends with a newline). */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[], opts: TableOptions = {}): string {
  const missing = opts.missing ?? '-';
  const fmt = opts.format ?? defaultFormat;
  const gap = ' '.repeat(opts.gap ?? 2);
  const cols = Math.max(header.length, ...rows.map((r) => r.length));
  const text = rows.map((r, i) =>
    Array.from({ length: cols }, (_, j) => {
      const v = r[j];
      if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return missing;
      return typeof v === 'number' ? fmt(v, i, j) : v;
    }),
  );
  const head = Array.from({ length: cols }, (_, j) => header[j] ?? '');
  const width = head.map((h, j) => Math.max(h.length, ...text.map((r) => r[j]!.length)));
  const align = (j: number) => opts.align?.[j] ?? (j === 0 ? 'left' : 'right');
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (align(j) === 'left' ? c.padEnd(width[j]!) : c.padStart(width[j]!)))
      .join(gap)
      .trimEnd();
  const rule = width.map((w) => '-'.repeat(w)).join(gap);
  return [line(head), rule, ...text.map(line)].join('\n') + '\n';
}

/** One method's numbers for a comparison table: metric name -> value (fractions in [0, 1]), null when undefined. */
export interface MethodMetrics {
  name: string;
  metrics: Record<string, number | null>;
  /** Counts shown as integers below the metrics (e.g. questions evaluated). */
  counts?: Record<string, number>;
}

/**
 * Metrics as rows and methods as columns (the layout of the paper's tables): values as
 * percentages with `digits` decimals, counts as integers, "-" where a metric is undefined or a
 * method lacks it. Metric order: first appearance across the methods.
 */
export function formatMetricTable(methods: readonly MethodMetrics[], opts: { digits?: number; title?: string } = {}): string {
  const digits = opts.digits ?? 1;
  const names: string[] = [];
  const countNames: string[] = [];
  for (const m of methods) {
    for (const k of Object.keys(m.metrics)) if (!names.includes(k)) names.push(k);
    for (const k of Object.keys(m.counts ?? {})) if (!countNames.includes(k)) countNames.push(k);
  }
  const rows: Cell[][] = names.map((k) => [k, ...methods.map((m) => m.metrics[k] ?? null)]);
  const countRows: Cell[][] = countNames.map((k) => [k, ...methods.map((m) => m.counts?.[k] ?? null)]);
  const table = formatTable(['metric (%)', ...methods.map((m) => m.name)], [...rows, ...countRows], {
    format: (v, row) => (row < rows.length ? (100 * v).toFixed(digits) : String(v)),
  });
  return (opts.title ? opts.title + '\n' : '') + table;
}
