export * from './kv_cache.js';
export * from './sampling.js';
export * from './generate.js';
export * from './remote.js';
