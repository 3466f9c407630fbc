// Evaluation against a reference: win rate with ties as half and its standard error, the length-controlled
// win rate (AlpacaEval 2.0's GLM), average length.
export * from './winrate.js';
export * from './length_controlled.js';
export * from './l1_logistic.js';
export * from './evaluate.js';
export * from './bootstrap.js';
export * from './benchmarks/alpaca_eval.js';
export * from './benchmarks/alpaca_eval_files.js';
export * from './benchmarks/arena_hard.js';
export * from './benchmarks/mt_bench.js';
