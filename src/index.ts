/**
 * The library: everything the CLI does, as functions. A researcher can load models, build the
 * relaxed top-k mask and run training steps without the command line.
 */
export { initBackend, currentBackend, BACKENDS, type BackendChoice, type BackendInfo } from './backend/index.js';
export { GrerankError, CheckpointError } from './errors.js';
export * from './io/index.js';
export { saveModelDir } from './io/export.js';
export { T5Model, parseT5Config, relativePositionBucket, tokenNll, shiftRight, LEGACY_CROSS_BIAS, type T5Config } from './models/t5.js';
export { FidReader, logPassageMask, passageBias, type FidEncoding } from './models/fid.js';
export { RankT5, RANKT5_TOKEN_ID } from './models/rankt5.js';
export { CrossEncoder, loadCrossEncoder, encodePairs } from './models/xlmr.js';
export { loadReranker } from './models/load.js';
export type { Reranker } from './models/reranker.js';
export { ParamStore } from './models/params.js';
export { initT5StateDict, t5Config } from './models/t5-init.js';
export { inspectModel, INSPECT_TASKS } from './models/inspect.js';
export { gumbelNoise, relaxedTopK, hardTopK, weightStats, GUMBEL_DEFAULTS, type GumbelOptions } from './gumbel/mask.js';
export { GumbelObjective } from './methods/gumbel.js';
export { makeObjective, OBJECTIVES, EmdrObjective, PDistObjective, LoopObjective, ADistObjective } from './methods/index.js';
export { evaluate, EVAL_DEFAULTS, formatResults, type EvalResult } from './eval/evaluate.js';
export * from './eval/metrics.js';
export { trainReader, READER_TRAIN_DEFAULTS } from './train/reader.js';
export { greedyDecode } from './models/generate.js';
export { generateSynth, writeSynth } from './data/synth.js';
export { runDemo, DEMO_DEFAULTS } from './demo/demo.js';
export { RerankerScorer, WeightTable, type Scorer } from './methods/scorer.js';
export type { Objective, ObjectiveOutput, StepInputs } from './methods/objective.js';
export { forwardBackward, Trainer, type StepStats, type GradientReducer } from './train/step.js';
export { AdamW, learningRate, clipByGlobalNorm } from './train/optimizer.js';
export { trainReranker, TRAIN_DEFAULTS, type TrainConfig } from './train/run.js';
export { readExamples, validateExample, type Example, type Passage } from './data/examples.js';
export { encodeBatch, type EncodeSpec } from './data/encode.js';
export type { RerankBatch } from './data/batch.js';
export { Rng } from './util/rng.js';
