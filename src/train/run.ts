import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeBatch, DEFAULT_ENCODE_SPEC, type EncodeSpec } from '../data/encode.js';
import { readExamples, type Example } from '../data/examples.js';
import { GrerankError } from '../errors.js';
import { saveModelDir } from '../io/export.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { GUMBEL_DEFAULTS, hardTopK, type GumbelOptions } from '../gumbel/mask.js';
import { makeObjective, OBJECTIVES, type ObjectiveName } from '../methods/index.js';
import { RerankerScorer, WeightTable, type Scorer } from '../methods/scorer.js';
import { FidReader } from '../models/fid.js';
import { loadReranker, type LoadedReranker } from '../models/load.js';
import { Rng } from '../util/rng.js';
import { Trainer, type StepStats } from './step.js';

export const METHODS = OBJECTIVES;
export type Method = ObjectiveName;

/** Everything a single-process training run needs; JSON-serialisable (it is saved with the run). */
export interface TrainConfig {
  reader: string;
  /** The reranker's Hugging Face directory (not used by method "weights"). */
  reranker?: string;
  /** RankT5's scoring token (<extra_id_10> = 32089 in the real vocabulary). */
  rankT5TokenId: number;
  /**
   * Keep the reranker's word embeddings fixed. BGE's [250002, 768] table alone needs 3 GB for its
   * gradient and AdamW moments, more than the wasm backend's 4 GB heap leaves room for.
   */
  freezeEmbeddings: boolean;
  data: string;
  out: string;
  method: Method;
  /** Optimizer updates; 0 = run `epochs` full passes. */
  steps: number;
  epochs: number;
  batchSize: number;
  encode: EncodeSpec;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  clipNorm: number;
  schedule: 'linear' | 'constant';
  gumbel: GumbelOptions;
  /** Baselines: T_s of the student softmax(w / T_s) and T_g of the target softmax(s / T_g) (Atlas: 0.01). */
  temperatureScore: number;
  temperatureGold: number;
  seed: number;
  logEvery: number;
  limit?: number;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'reader' | 'data' | 'out'> = {
  method: 'gumbel',
  rankT5TokenId: 32089,
  freezeEmbeddings: false,
  steps: 0,
  epochs: 1,
  batchSize: 1,
  encode: DEFAULT_ENCODE_SPEC,
  lr: 5e-5,
  warmupSteps: 0,
  weightDecay: 0.01,
  clipNorm: 1.0,
  schedule: 'linear',
  gumbel: { k: 5, ...GUMBEL_DEFAULTS },
  temperatureScore: 0.01,
  temperatureGold: 0.01,
  seed: 0,
  logEvery: 10,
};

/** Word-embedding tables of the supported rerankers (RankT5's is also its tied LM head). */
const EMBEDDING_NAMES = ['shared.weight', 'roberta.embeddings.word_embeddings.weight'];

/** The deterministic order of epoch `epoch`: a permutation seeded by (seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): number[] {
  return new Rng(seed * 1_000_003 + epoch).shuffle(Array.from({ length: count }, (_, i) => i));
}

export interface TrainResult {
  steps: number;
  skipped: number;
  history: StepStats[];
  outDir: string;
}

/**
 * Trains a reranker (or Algorithm 2's weights) in this process against the frozen reader and
 * writes the result to `out`: the reranker as a Hugging Face directory (out/reranker), or the
 * learned weights and rankings (out/weights.json).
 */
export async function trainReranker(cfg: TrainConfig, onStep?: (s: StepStats, total: number) => void): Promise<TrainResult> {
  if (!METHODS.includes(cfg.method)) throw new GrerankError(`unknown method "${cfg.method}" (choose ${METHODS.join(', ')})`);
  if (cfg.method !== 'weights' && !cfg.reranker) throw new GrerankError(`--reranker is required for method ${cfg.method}`);
  if (cfg.gumbel.k < 1 || cfg.gumbel.k > cfg.encode.nPassages) throw new GrerankError(`k = ${cfg.gumbel.k} must lie in [1, n-passages = ${cfg.encode.nPassages}]`);
  const { examples } = await readExamples(cfg.data, { limit: cfg.limit });
  if (examples.length === 0) throw new GrerankError(`${cfg.data}: no examples`);
  const readerTok = loadTokenizer(cfg.reader);
  const reader = await FidReader.load(cfg.reader);
  let loaded: LoadedReranker | undefined;
  let scorer: Scorer;
  if (cfg.method === 'weights') {
    scorer = new WeightTable(examples.length, cfg.encode.nPassages);
  } else {
    loaded = await loadReranker(cfg.reranker!, { rankT5TokenId: cfg.rankT5TokenId });
    if (cfg.freezeEmbeddings) loaded.reranker.params.freeze(EMBEDDING_NAMES.filter((n) => loaded!.reranker.params.params.has(n)));
    scorer = new RerankerScorer(loaded.reranker);
  }
  const perEpoch = Math.ceil(examples.length / cfg.batchSize);
  const total = cfg.steps > 0 ? cfg.steps : perEpoch * cfg.epochs;
  const objective = makeObjective(cfg.method, { gumbel: cfg.gumbel, temperatureScore: cfg.temperatureScore, temperatureGold: cfg.temperatureGold }, new Rng(cfg.seed + 17));
  const trainer = new Trainer(scorer, reader, objective, {
    schedule: { lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: total, kind: cfg.schedule },
    clipNorm: cfg.clipNorm,
    adamw: { weightDecay: cfg.weightDecay },
  });
  const targetRng = new Rng(cfg.seed + 29);
  const history: StepStats[] = [];
  try {
    let done = 0;
    for (let epoch = 0; done < total; epoch++) {
      const order = epochOrder(examples.length, cfg.seed, epoch);
      for (let s = 0; s < order.length && done < total; s += cfg.batchSize) {
        const idx = order.slice(s, s + cfg.batchSize);
        const batch = await encodeBatch(idx.map((i) => examples[i]!), idx, readerTok, loaded ? { kind: loaded.reranker.kind, tokenizer: loaded.tokenizer } : { kind: 'rankt5', tokenizer: readerTok }, cfg.encode, targetRng);
        const stats = await trainer.trainStep(batch);
        history.push(stats);
        done++;
        onStep?.(stats, total);
      }
    }
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(join(cfg.out, 'train-config.json'), JSON.stringify(cfg, null, 2) + '\n');
    if (loaded) {
      saveModelDir(join(cfg.out, 'reranker'), cfg.reranker!, loaded.reranker.params.toRaw());
    } else {
      writeFileSync(join(cfg.out, 'weights.json'), JSON.stringify(weightsReport(scorer as WeightTable, examples, cfg.gumbel.k)) + '\n');
    }
    return { steps: trainer.step, skipped: trainer.skippedSteps, history, outDir: cfg.out };
  } finally {
    trainer.dispose();
    reader.dispose();
    loaded?.reranker.dispose();
  }
}

/** Algorithm 2's output: each query's learned weights and the ranking they induce. */
function weightsReport(table: WeightTable, examples: readonly Example[], k: number): unknown {
  return examples.map((ex, i) => {
    const w = Array.from(table.weightsOf(i));
    return { id: ex.id, weights: w, ranking: hardTopK(w, w.length), topk: hardTopK(w, k) };
  });
}
