// Models and data sets by their Hub names, in the Hugging Face cache huggingface_hub lays out (docs/hub.md):
//   import { resolveModelDir } from 'sppo/hub';   await resolveModelDir('Qwen/Qwen2.5-0.5B-Instruct@main')
export * from './cache.js';
export * from './download.js';
export * from './resolve.js';
export * from './dataset.js';
