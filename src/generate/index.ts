export * from './kv_cache.js';
export * from './sampling.js';
export * from './generate.js';
export * from './remote.js';
export * from './static_kv_cache.js';
export * from './decode_step.js';
export * from './decode_graph.js';
