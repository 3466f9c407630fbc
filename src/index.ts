// sppo: Self-Play Preference Optimization of language models, in TypeScript over libtorch.
//   import { runSppo, preferenceLoss } from 'sppo';       // the SPPO layer (also 'sppo/sppo')
//   import * as torch from 'sppo/torch';                   // each layer also has its own entry point:
//   'sppo/nn', 'sppo/models', 'sppo/text', 'sppo/generate', 'sppo/judge', 'sppo/eval', 'sppo/game', 'sppo/hub'
// The layers are also here as namespaces: import { torch, models } from 'sppo'.
export * from './sppo/index.js';
export * as torch from './torch/index.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * as text from './text/index.js';
export * as generate from './generate/index.js';
export * as judge from './judge/index.js';
export * as evaluation from './eval/index.js';
export * as game from './game/index.js';
export * as hub from './hub/index.js';
