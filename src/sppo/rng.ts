// The seeded generator lives in src/util/rng.ts (usable by every layer); re-exported here, where it always was.
export * from '../util/rng.js';
