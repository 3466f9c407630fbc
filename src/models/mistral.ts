// MistralForCausalLM: Llama's decoder (no biases) with sliding-window attention on every layer when
// config.sliding_window is set (Mistral 7B v0.1: 4096; v0.2 and later: none). The window comes from
// the config (layer_types), so the Llama code serves as is.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';

export class MistralForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super(cfg);
  }
}
