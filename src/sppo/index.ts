// SPPO: win rates and pairs from preference matrices, the losses and the trainer, and the loop
// (`runSppo`) with its configuration, prompts and run directory.
export * from './winrates.js';
export * from './pairs.js';
export * from './rng.js';
export * from './config.js';
export * from './prompts.js';
export * from './run_dir.js';
export * from './loop.js';
export * from './losses.js';
export * from './logprobs.js';
export { exampleLogprobs, frozenCopy, pairLogprobs, train, TrainingDivergedError, type TrainExample, type TrainOptions, type TrainResult, type StepMetrics, type LossType } from './trainer.js';
export * from './generations.js';
export * from './pairs_file.js';
export * from './dataset_prompts.js';
export * from './hub_names.js';
export * from './tracking.js';
