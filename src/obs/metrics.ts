/**
 * Prometheus metrics of a training job (prom-client). Every process owns one `TrainingMetrics`;
 * its series carry the labels `rank` and `node`. Workers ship their registry as prom-client metric
 * JSON (`toJSON()`, e.g. over the ZeroMQ ring every few steps) and the coordinator merges it
 * (`mergeFromJSON`) so that one /metrics endpoint covers the whole job, one series per rank.
 * The metric table is in docs/metrics.md.
 */
import { hostname } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every metric name starts with this. */
export const METRIC_PREFIX = 'grerank_';

/** Buckets of the whole-step histogram (seconds): steps take from tens of ms to minutes. */
export const STEP_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
/** Buckets of the per-phase histogram (seconds): data and all-reduce can take under a millisecond. */
export const PHASE_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, ...STEP_SECONDS_BUCKETS];

/** The step phases of `grerank_train_step_phase_seconds{phase}`. */
export const STEP_PHASES = ['data', 'forward_backward', 'allreduce', 'optimizer'] as const;

/**
 * The fields of a training step the metrics read: `StepStats` of src/train/step.ts fits as is;
 * `tokens` and `seconds.data` are measured by the loop around `trainStep` (batch encoding).
 */
export interface StepStatsLike {
  step?: number;
  loss: number;
  lr: number;
  gradNorm: number;
  skipped: boolean;
  examples: number;
  tokens?: number;
  maxWeight?: number;
  entropy?: number;
  maskMax?: number;
  /** `allReduce` is left out by loops that have none (the reader trainer): no series for that phase. */
  seconds: { data?: number; forwardBackward: number; allReduce?: number; optimizer: number };
}

/** One metric of prom-client's `registry.getMetricsAsJSON()`. */
export interface MetricJSON {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary';
  aggregator?: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

export interface MetricLabels {
  rank: string | number;
  node: string;
}

export interface TrainingMetricsOptions {
  /** Global rank of this process (default 0). */
  rank?: number | string;
  /** Node name (default: the host name). */
  node?: string;
}

const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);

/** Eval metric keys (`R@5`, `NDCG@5`, `MRR`, `EM`, `indirect R@5`, ...) as label values: `recall_at_5`, ... */
export function evalMetricLabel(name: string): string {
  return name
    .trim()
    .replace(/^R@/i, 'recall@')
    .replace(/^indirect R@/i, 'indirect recall@')
    .toLowerCase()
    .replace(/@/g, '_at_')
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/**
 * Non-padding input tokens of an encoded batch, as `grerank_train_tokens_total` counts them: the
 * reader's passage tokens (`passageMask`) plus the target tokens that are not padding (-100).
 */
export function batchTokens(batch: { passageMask: ArrayLike<number>; labels?: ArrayLike<number> }): number {
  let n = 0;
  for (let i = 0; i < batch.passageMask.length; i++) n += batch.passageMask[i]!;
  if (batch.labels) for (let i = 0; i < batch.labels.length; i++) if (batch.labels[i] !== -100) n++;
  return n;
}

function labelKey(l: MetricLabels): string {
  return `${String(l.rank)}\u0000${l.node}`;
}

export class TrainingMetrics {
  readonly registry = new Registry();
  readonly labels: { rank: string; node: string };

  private readonly steps: Counter;
  private readonly skipped: Counter;
  private readonly examples: Counter;
  private readonly tokens: Counter;
  private readonly allReduceBytes: Counter;
  private readonly optimizerStep: Gauge;
  private readonly loss: Gauge;
  private readonly lr: Gauge;
  private readonly gradNorm: Gauge;
  private readonly maxWeight: Gauge;
  private readonly entropy: Gauge;
  private readonly maskMax: Gauge;
  private readonly stepSeconds: Histogram;
  private readonly phaseSeconds: Histogram<'phase'>;
  private readonly evalScore: Gauge<'setting' | 'metric'>;
  private readonly evalRuns: Counter<'setting'>;
  private readonly restarts: Counter;
  private readonly checkpoints: Counter;
  private readonly checkpointTime: Gauge;
  private readonly memory: Gauge<'kind'>;
  private readonly tfTensors: Gauge;
  private readonly tfBytes: Gauge;
  private readonly build: Gauge<'version' | 'backend'>;
  private readonly snapshotAge: Gauge<'rank' | 'node'>;

  /** Latest snapshot of every other process, by rank and node. */
  private readonly remote = new Map<string, { labels: MetricLabels; metrics: MetricJSON[]; receivedAt: number }>();

  constructor(opts: TrainingMetricsOptions = {}) {
    this.labels = { rank: String(opts.rank ?? 0), node: opts.node ?? hostname() };
    this.registry.setDefaultLabels(this.labels);
    const r = [this.registry];
    const p = METRIC_PREFIX;
    this.steps = new Counter({ name: `${p}train_steps_total`, help: 'Training steps run (applied or skipped).', registers: r });
    this.skipped = new Counter({ name: `${p}train_skipped_steps_total`, help: 'Steps whose update was skipped because some rank had a non-finite gradient or loss.', registers: r });
    this.examples = new Counter({ name: `${p}train_examples_total`, help: 'Training examples (queries) processed by this rank.', registers: r });
    this.tokens = new Counter({ name: `${p}train_tokens_total`, help: 'Non-padding input tokens (passages and targets) processed by this rank.', registers: r });
    this.allReduceBytes = new Counter({ name: `${p}allreduce_bytes_total`, help: 'Gradient bytes (float32) all-reduced by this rank.', registers: r });
    this.optimizerStep = new Gauge({ name: `${p}train_optimizer_step`, help: 'Optimizer step after the last training step (counts resumed steps).', registers: r });
    this.loss = new Gauge({ name: `${p}train_loss`, help: 'LM loss (the objective value) of the last training step on this rank.', registers: r });
    this.lr = new Gauge({ name: `${p}train_learning_rate`, help: 'Learning rate of the last training step.', registers: r });
    this.gradNorm = new Gauge({ name: `${p}train_grad_norm`, help: 'Global gradient L2 norm of the last step, before clipping.', registers: r });
    this.maxWeight = new Gauge({ name: `${p}gumbel_max_weight`, help: 'Mean per-query maximum of the sampling weights, last step (ratio).', registers: r });
    this.entropy = new Gauge({ name: `${p}gumbel_weight_entropy_nats`, help: 'Mean entropy of the sampling weights, last step (nats).', registers: r });
    this.maskMax = new Gauge({ name: `${p}gumbel_mask_max`, help: 'Mean per-query maximum of the relaxed passage mask, last step (ratio).', registers: r });
    this.stepSeconds = new Histogram({ name: `${p}train_step_seconds`, help: 'Wall time of a whole training step, data included.', buckets: STEP_SECONDS_BUCKETS, registers: r });
    this.phaseSeconds = new Histogram({
      name: `${p}train_step_phase_seconds`,
      help: 'Wall time of one phase of a training step (data, forward_backward, allreduce, optimizer).',
      labelNames: ['phase'],
      buckets: PHASE_SECONDS_BUCKETS,
      registers: r,
    });
    this.evalScore = new Gauge({ name: `${p}eval_score`, help: 'Last evaluation result (ratio 0..1) by setting and metric (recall_at_5, ndcg_at_5, mrr, em, f1, ...).', labelNames: ['setting', 'metric'], registers: r });
    this.evalRuns = new Counter({ name: `${p}eval_runs_total`, help: 'Evaluations run, by setting.', labelNames: ['setting'], registers: r });
    this.restarts = new Counter({ name: `${p}worker_restarts_total`, help: 'Times this rank was restarted (resumed from a checkpoint after a failure).', registers: r });
    this.checkpoints = new Counter({ name: `${p}checkpoints_total`, help: 'Checkpoints written.', registers: r });
    this.checkpointTime = new Gauge({ name: `${p}checkpoint_last_timestamp_seconds`, help: 'Unix time of the last checkpoint written (seconds).', registers: r });
    const self = this;
    this.memory = new Gauge({
      name: `${p}process_memory_bytes`,
      help: 'Process memory by kind (rss, heap_total, heap_used, external, array_buffers), sampled at scrape.',
      labelNames: ['kind'],
      registers: r,
      collect() {
        self.sampleProcess();
      },
    });
    this.tfTensors = new Gauge({ name: `${p}tfjs_tensors`, help: 'Live tfjs tensors, sampled at scrape.', registers: r });
    this.tfBytes = new Gauge({ name: `${p}tfjs_memory_bytes`, help: 'Bytes held by live tfjs tensors, sampled at scrape.', registers: r });
    this.build = new Gauge({ name: `${p}build_info`, help: 'Always 1; the labels name the grerank version and the tfjs backend.', labelNames: ['version', 'backend'], registers: r });
    this.snapshotAge = new Gauge({
      name: `${p}metrics_snapshot_age_seconds`,
      help: "Age of the last metrics snapshot received from a rank (a growing value means the rank stopped reporting).",
      labelNames: ['rank', 'node'],
      registers: r,
      collect() {
        this.reset();
        const now = Date.now();
        for (const s of self.remote.values()) this.set({ rank: String(s.labels.rank), node: s.labels.node }, (now - s.receivedAt) / 1000);
      },
    });
  }

  /**
   * Records one training step. `allReduceBytes` is the gradient payload all-reduced in this step
   * (the reducer's `stats.bytes`; omit in single-process training).
   */
  recordStep(stats: StepStatsLike, allReduceBytes?: number): void {
    this.steps.inc();
    if (stats.skipped) this.skipped.inc();
    if (stats.examples > 0) this.examples.inc(stats.examples);
    if (stats.tokens !== undefined && stats.tokens > 0) this.tokens.inc(stats.tokens);
    if (allReduceBytes !== undefined && allReduceBytes > 0) this.allReduceBytes.inc(allReduceBytes);
    if (stats.step !== undefined) this.optimizerStep.set(stats.step);
    this.loss.set(stats.loss);
    this.lr.set(stats.lr);
    this.gradNorm.set(stats.gradNorm);
    if (stats.maxWeight !== undefined) this.maxWeight.set(stats.maxWeight);
    if (stats.entropy !== undefined) this.entropy.set(stats.entropy);
    if (stats.maskMax !== undefined) this.maskMax.set(stats.maskMax);
    const s = stats.seconds;
    const phases: [(typeof STEP_PHASES)[number], number | undefined][] = [
      ['data', s.data],
      ['forward_backward', s.forwardBackward],
      ['allreduce', s.allReduce],
      ['optimizer', s.optimizer],
    ];
    let total = 0;
    for (const [phase, v] of phases) {
      if (v === undefined || !Number.isFinite(v) || v < 0) continue;
      this.phaseSeconds.observe({ phase }, v);
      total += v;
    }
    this.stepSeconds.observe(total);
  }

  /**
   * Records one evaluation: `metrics` as `EvalResult.metrics` keys them (`R@5`, `NDCG@5`, `MRR`,
   * `EM`, `F1`, ...; ratios). A null value (undefined for this data) removes that series.
   */
  recordEval(metrics: Record<string, number | null | undefined>, setting: string): void {
    this.evalRuns.inc({ setting });
    for (const [name, v] of Object.entries(metrics)) {
      const metric = evalMetricLabel(name);
      if (!metric) continue;
      if (v === null || v === undefined || !Number.isFinite(v)) this.evalScore.remove({ setting, metric });
      else this.evalScore.set({ setting, metric }, v);
    }
  }

  /** Records a checkpoint written at `timeSec` (Unix seconds; default now). */
  recordCheckpoint(timeSec: number = Date.now() / 1000): void {
    this.checkpoints.inc();
    this.checkpointTime.set(timeSec);
  }

  /** Records that this rank was restarted (call once at start-up when resuming after a failure). */
  recordRestart(): void {
    this.restarts.inc();
  }

  /** Samples process memory and tfjs tensor count/bytes (also done on every scrape and `toJSON`). */
  sampleProcess(): void {
    const m = process.memoryUsage();
    this.memory.set({ kind: 'rss' }, m.rss);
    this.memory.set({ kind: 'heap_total' }, m.heapTotal);
    this.memory.set({ kind: 'heap_used' }, m.heapUsed);
    this.memory.set({ kind: 'external' }, m.external);
    this.memory.set({ kind: 'array_buffers' }, m.arrayBuffers);
    // The engine's own counters: tf.memory() would start a backend when none is set yet.
    const state = tf.engine().state;
    this.tfTensors.set(state.numTensors);
    this.tfBytes.set(state.numBytes);
  }

  /** Sets `grerank_build_info{version, backend} 1` (replacing an earlier call). */
  buildInfo(version: string, backend: string): void {
    this.build.reset();
    this.build.set({ version, backend }, 1);
  }

  /** This process's metrics as prom-client metric JSON, labelled with its rank and node; to ship to the coordinator. */
  async toJSON(): Promise<MetricJSON[]> {
    return (await this.registry.getMetricsAsJSON()) as unknown as MetricJSON[];
  }

  /** `toJSON()` as UTF-8 bytes, for a ZeroMQ frame. */
  async snapshotBytes(): Promise<Uint8Array> {
    return new TextEncoder().encode(JSON.stringify(await this.toJSON()));
  }

  /**
   * Keeps `json` (another process's `toJSON()`, or its JSON text/bytes) as the latest snapshot of
   * the process `labels` names; every series gets that rank and node. A later snapshot of the same
   * rank and node replaces it. Metrics of unknown type, or whose type differs from this registry's
   * metric of the same name, are dropped.
   */
  mergeFromJSON(json: MetricJSON[] | string | Uint8Array, labels: MetricLabels): void {
    const parsed: unknown = typeof json === 'string' ? JSON.parse(json) : json instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(json)) : json;
    if (!Array.isArray(parsed)) throw new Error('metrics snapshot: expected an array of prom-client metrics');
    if (String(labels.rank) === this.labels.rank && labels.node === this.labels.node) {
      throw new Error(`metrics snapshot: rank ${labels.rank} on ${labels.node} is this process's own labels`);
    }
    const rank = String(labels.rank);
    const metrics: MetricJSON[] = [];
    for (const m of parsed as MetricJSON[]) {
      if (!m || typeof m.name !== 'string' || !TYPES.has(m.type) || !Array.isArray(m.values)) continue;
      const local = this.registry.getSingleMetric(m.name) as unknown as { type?: string } | undefined;
      if (local?.type !== undefined && local.type !== m.type) continue;
      metrics.push({
        name: m.name,
        help: typeof m.help === 'string' ? m.help : '',
        type: m.type,
        aggregator: 'sum',
        values: m.values
          .filter((v) => v && typeof v.value === 'number')
          .map((v) => ({ ...v, labels: { ...(v.labels ?? {}), rank, node: labels.node } })),
      });
    }
    this.remote.set(labelKey(labels), { labels: { rank, node: labels.node }, metrics, receivedAt: Date.now() });
  }

  /** Forgets the snapshot of one process (e.g. a rank that left the job). */
  forget(labels: MetricLabels): boolean {
    return this.remote.delete(labelKey({ rank: String(labels.rank), node: labels.node }));
  }

  /** The ranks whose snapshots are merged in. */
  remotes(): MetricLabels[] {
    return [...this.remote.values()].map((s) => s.labels);
  }

  /** Prometheus content type of `metrics()`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The text exposition of this process and every merged snapshot, one series per rank and node.
   * prom-client's AggregatorRegistry.aggregate does the merge: it groups by name and label set, and
   * label sets never collide across ranks, so its summation keeps every rank's series as is.
   */
  async metrics(): Promise<string> {
    if (this.remote.size === 0) return this.registry.metrics();
    const all = [await this.toJSON(), ...[...this.remote.values()].map((s) => s.metrics)];
    // Every metric aggregates by sum (values never share a label set across processes).
    const merged = all.map((ms) => ms.map((m) => ({ ...m, aggregator: 'sum' })));
    return AggregatorRegistry.aggregate(merged as never).metrics();
  }
}
