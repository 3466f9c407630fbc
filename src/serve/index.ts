export * from './engine.js';
export * from './protocol.js';
export * from './server.js';
