// The game lab: SPPO, iterative DPO and IPO on exact tabular preference games, with the Nash gap measured.
export * from './game.js';
export * from './measures.js';
export * from './policy.js';
export * from './rng.js';
export * from './exact.js';
export * from './last_iterate.js';
export * from './sampled.js';
export * from './fit.js';
export * from './methods.js';
export * from './lab.js';
export * from './plot.js';
