/**
 * The shipped Grafana dashboard against a real Prometheus server: Prometheus (the Debian package
 * `prometheus`, see .ci/setup-prometheus.sh) scrapes a 2-worker launcher run and a single-process
 * `grerank train --metrics-port` run, and every target expression of every panel of
 * docs/grafana/grerank-training.json, with Grafana's variables filled in, must return data through
 * Prometheus' HTTP API. Skipped, with a message, where no prometheus binary is installed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, removeDir, tempDir } from './helpers/cli.js';
import { REPO } from './helpers/shared.js';
import { oneGold, TINY_WORDS, tinyT5Model, writeTinyQa } from './helpers/tiny.js';

/** The first executable `name` on PATH, else in /usr/bin; undefined when there is none. */
function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? which('prometheus');
const PROMTOOL = which('promtool');
if (!PROMETHEUS) console.warn('grafana-prometheus.test.ts skipped: prometheus not installed: apt-get install prometheus (.ci/setup-prometheus.sh)');

const DASHBOARD = join(REPO, 'docs', 'grafana', 'grerank-training.json');
const DIST_JOB = 'grerank-dist';
const SINGLE_JOB = 'grerank-single';
/** Prometheus scrapes every second here (the shipped example uses 15 s for multi-second steps). */
const SCRAPE_S = 1;
/** What Grafana would put for its built-in variables with a 1 s scrape interval on a short range. */
const GRAFANA_BUILTINS: Record<string, string> = { __rate_interval: '10s', __interval: '1s', __range: '1m', __range_s: '60' };

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  gridPos?: { h: number; w: number; x: number; y: number };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string; datasource?: { type?: string; uid?: string }; allValue?: string; includeAll?: boolean }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
/** Panels with their queries (rows hold none; collapsed rows keep theirs in `panels`). */
const queryPanels = dashboard.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));

/** Grafana's `$name` / `${name}` / `${name:format}` filled in from `vars`; an unknown variable throws. */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    if (!(name in vars)) throw new Error(`dashboard query uses $${name}, which the test does not know: ${expr}`);
    return vars[name]!;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

describe.skipIf(!PROMETHEUS)('Grafana dashboard against a real Prometheus scraping training runs', () => {
  let work = '';
  let model = '';
  let promUrl = '';
  const procs: { name: string; child: ChildProcess; log: () => string; exited: Promise<void> }[] = [];

  /** Starts a process in its own process group (so the launcher's workers go with it on kill). */
  function start(name: string, cmd: string, args: string[]): void {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.length > 200_000) log = log.slice(-100_000);
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    procs.push({ name, child, log: () => log, exited });
  }

  const logs = () => procs.map((p) => `--- ${p.name} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${p.log().slice(-3000)}`).join('\n');

  async function promGet(path: string, params: Record<string, string | string[]>): Promise<any> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
    const res = await fetch(`${promUrl}${path}?${q}`);
    const body = (await res.json()) as { status: string; data: any; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
    return body.data;
  }
  const instant = async (query: string): Promise<PromSample[]> => (await promGet('/api/v1/query', { query })).result as PromSample[];
  const scalarOf = async (query: string): Promise<number> => Number((await instant(query))[0]?.value?.[1] ?? NaN);

  beforeAll(async () => {
    work = tempDir('grerank-grafana-');
    model = tinyT5Model([...TINY_WORDS, 'person']);
    // Training data without labels; eval data with gold flags.
    const data = join(work, 'train.jsonl');
    const evalData = join(work, 'eval.jsonl');
    writeTinyQa(data, 8);
    writeTinyQa(evalData, 3, { labels: oneGold });

    const [distPort, singlePort, promPort] = [await freePort(), await freePort(), await freePort()];
    // Far more steps than the test needs: both runs are killed in afterAll. Evaluation every
    // 2 steps and checkpoints every 3 feed the eval and checkpoint panels.
    const common = ['--reader', model, '--reranker', model, '--rankt5-token-id', '10', '--data', data, '--steps', '100000', '--batch-size', '1', '--n-passages', '5', '--k', '2', '--text-maxlength', '24', '--pair-maxlength', '32', '--answer-maxlength', '6', '--lr', '1e-3', '--backend', 'wasm', '--log-every', '1', '--eval-every', '2', '--eval-data', evalData, '--eval-k', '2', '--save-every', '3', '--keep', '1'];
    start('launcher --cpu-workers 2', process.execPath, [join(REPO, 'launcher', 'start.js'), '--cpu-workers', '2', ...common, '--out', join(work, 'dist'), '--metrics-port', String(distPort)]);
    start('grerank train', process.execPath, [join(REPO, 'dist', 'cli', 'main.js'), 'train', ...common, '--out', join(work, 'single'), '--metrics-port', String(singlePort)]);

    const promDir = join(work, 'prometheus');
    mkdirSync(join(promDir, 'data'), { recursive: true });
    const config = [
      'global:',
      `  scrape_interval: ${SCRAPE_S}s`,
      `  scrape_timeout: ${SCRAPE_S}s`,
      'scrape_configs:',
      `  - job_name: ${DIST_JOB}`,
      `    static_configs: [{ targets: ['127.0.0.1:${distPort}'] }]`,
      `  - job_name: ${SINGLE_JOB}`,
      `    static_configs: [{ targets: ['127.0.0.1:${singlePort}'] }]`,
      '',
    ].join('\n');
    writeFileSync(join(promDir, 'prometheus.yml'), config);
    promUrl = `http://127.0.0.1:${promPort}`;
    start('prometheus', PROMETHEUS!, [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn']);

    // Ready when both jobs have >= 8 scrapes with training steps in them (rank 1's series come
    // through rank 0's merge), and evaluation and a checkpoint have shown up in each.
    const deadline = Date.now() + 100_000;
    const ready = async (): Promise<boolean> => {
      for (const [job, rank] of [[DIST_JOB, '0'], [DIST_JOB, '1'], [SINGLE_JOB, '0']]) {
        if (!((await scalarOf(`count_over_time(grerank_train_steps_total{job="${job}", rank="${rank}"}[1m]) and grerank_train_steps_total > 3`)) >= 8)) return false;
      }
      for (const job of [DIST_JOB, SINGLE_JOB]) {
        if (!((await scalarOf(`sum(grerank_eval_runs_total{job="${job}"})`)) >= 1)) return false;
        if (!((await scalarOf(`sum(grerank_checkpoints_total{job="${job}"})`)) >= 1)) return false;
      }
      return true;
    };
    for (;;) {
      const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (dead) throw new Error(`${dead.name} exited early\n${logs()}`);
      if (Date.now() > deadline) throw new Error(`Prometheus did not collect enough samples in time\n${logs()}`);
      if (await ready().catch(() => false)) break;
      await sleep(500);
    }
  }, 120_000);

  afterAll(async () => {
    // SIGTERM to each process group first (the launcher then removes its ipc directory), then
    // SIGKILL to whatever is left of it.
    const signal = (sig: NodeJS.Signals) => {
      for (const p of procs) {
        try {
          if (p.child.pid) process.kill(-p.child.pid, sig);
        } catch {
          // the group is gone
        }
      }
    };
    signal('SIGTERM');
    await Promise.all(procs.map((p) => Promise.race([p.exited, sleep(5000)])));
    signal('SIGKILL');
    if (work) removeDir(work);
    if (model) removeDir(model);
  }, 30_000);

  it('the dashboard has a Prometheus datasource variable, and every panel and target uses it', () => {
    expect(dashboard.uid).toBe('grerank-training');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = dashboard.templating.list;
    const ds = vars.find((v) => v.type === 'datasource');
    expect(ds, 'datasource variable').toBeDefined();
    expect(ds!.query).toBe('prometheus');
    const ref = { type: 'prometheus', uid: `\${${ds!.name}}` };
    for (const v of vars.filter((x) => x.type === 'query')) expect(v.datasource, v.name).toEqual(ref);
    expect(queryPanels.length).toBeGreaterThanOrEqual(15);
    const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
    expect(new Set(ids).size, 'unique panel ids').toBe(ids.length);
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual(ref);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.datasource ?? ref, `${p.title} ${t.refId}`).toEqual(ref);
        expect(t.expr, `${p.title} ${t.refId}`).toMatch(/grerank_/);
      }
    }
    // The panels: training curves, throughput, all-reduce share, per-rank memory.
    const exprs = queryPanels.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n');
    for (const metric of ['grerank_train_loss', 'grerank_gumbel_max_weight', 'grerank_gumbel_weight_entropy_nats', 'grerank_eval_score', 'grerank_train_examples_total', 'grerank_train_tokens_total', 'grerank_train_grad_norm', 'grerank_train_learning_rate', 'grerank_process_memory_bytes', 'grerank_tfjs_memory_bytes', 'grerank_train_skipped_steps_total', 'grerank_worker_restarts_total', 'grerank_checkpoint_last_timestamp_seconds']) {
      expect(exprs, metric).toContain(metric);
    }
    expect(exprs).toMatch(/grerank_train_step_phase_seconds_sum\{[^}]*phase="allreduce"[^}]*\}\[\$__rate_interval\]\)\) \/ sum[^\n]*grerank_train_step_seconds_sum/);
  });

  it('the variable queries find both jobs and both ranks', async () => {
    const vars = { job: DIST_JOB, rank: '.*', ...GRAFANA_BUILTINS };
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      // Grafana's label_values(selector, label) is Prometheus' label values API with match[].
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition ?? '');
      expect(m, v.name).not.toBeNull();
      expect(v.includeAll && v.allValue, v.name).toBe('.*');
      const values = (await promGet(`/api/v1/label/${m![2]}/values`, { 'match[]': substitute(m![1]!, vars) })) as string[];
      if (v.name === 'job') expect(values.sort()).toEqual([DIST_JOB, SINGLE_JOB]);
      if (v.name === 'rank') expect(values.sort()).toEqual(['0', '1']);
    }
  });

  /**
   * Evaluates every target of every panel for one job, as a range query (time series panels) and
   * an instant query (stat panels): each must return a series with a finite value; a target whose
   * legend names the rank must return every rank's series.
   */
  async function checkPanels(job: string, ranks: string[], skip: (expr: string) => boolean): Promise<number> {
    const vars = { job, rank: '.*', ...GRAFANA_BUILTINS };
    const end = Math.floor(Date.now() / 1000);
    let checked = 0;
    const failures: string[] = [];
    for (const p of queryPanels) {
      for (const t of p.targets!) {
        if (skip(t.expr)) continue;
        const query = substitute(t.expr, vars);
        const what = `${p.title} / ${t.refId}: ${query}`;
        const range = (await promGet('/api/v1/query_range', { query, start: String(end - 20), end: String(end), step: '1' })).result as PromSample[];
        const now = await instant(query);
        const finite = (xs: [number, string][]) => xs.some(([, v]) => Number.isFinite(Number(v)));
        if (!range.some((s) => finite(s.values ?? []))) failures.push(`range query: no finite data: ${what}`);
        if (!now.some((s) => finite(s.value ? [s.value] : []))) failures.push(`instant query: no finite data: ${what}`);
        if (t.legendFormat?.includes('{{rank}}')) {
          const got = [...new Set(range.map((s) => s.metric.rank))].sort();
          // Only the coordinator reports how old the other ranks' snapshots are.
          const want = /snapshot_age/.test(query) ? ranks.filter((r) => r !== '0') : ranks;
          if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`ranks ${JSON.stringify(got)}, expected ${JSON.stringify(want)}: ${what}`);
        }
        checked++;
      }
    }
    expect(failures, logs()).toEqual([]);
    return checked;
  }

  it('every panel query returns data for the 2-worker launcher run (per-rank panels: both ranks)', async () => {
    const n = await checkPanels(DIST_JOB, ['0', '1'], () => false);
    expect(n).toBe(queryPanels.reduce((a, p) => a + p.targets!.length, 0));
    // The all-reduce share is a real fraction of the step time with 2 workers.
    const share = await instant(
      substitute(queryPanels.find((p) => p.title === 'All-reduce share of step time')!.targets!.find((t) => t.legendFormat === 'job')!.expr, { job: DIST_JOB, rank: '.*', ...GRAFANA_BUILTINS }),
    );
    const v = Number(share[0]!.value![1]);
    expect(v).toBeGreaterThan(0);
    expect(v).toBeLessThan(1);
  });

  it('every panel query but the snapshot age returns data for a single-process grerank train --metrics-port run', async () => {
    const n = await checkPanels(SINGLE_JOB, ['0'], (expr) => /snapshot_age/.test(expr));
    expect(n).toBeGreaterThanOrEqual(20);
  });

  it.skipIf(!PROMTOOL)('the shipped prometheus.yml passes promtool check config', () => {
    const r = spawnSync(PROMTOOL!, ['check', 'config', join(REPO, 'docs', 'grafana', 'prometheus.yml')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('the provisioning files point Grafana at a Prometheus datasource and a dashboard folder', () => {
    const ds = readFileSync(join(REPO, 'docs', 'grafana', 'provisioning', 'datasources.yaml'), 'utf8');
    expect(ds).toMatch(/^apiVersion: 1$/m);
    expect(ds).toMatch(/^\s+type: prometheus$/m);
    expect(ds).toMatch(/^\s+isDefault: true$/m);
    const db = readFileSync(join(REPO, 'docs', 'grafana', 'provisioning', 'dashboards.yaml'), 'utf8');
    expect(db).toMatch(/^apiVersion: 1$/m);
    expect(db).toMatch(/^\s+type: file$/m);
    expect(db).toMatch(/^\s+path: \S+$/m);
  });
});
