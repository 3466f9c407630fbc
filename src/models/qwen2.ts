// Qwen2ForCausalLM (Qwen2, Qwen2.5): Llama's decoder with biases on q, k and v (not o), often tied
// embeddings, and sliding-window attention only with use_sliding_window (layers from max_window_layers
// on); config.ts turns those into qkvBias and layer_types.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';

export class Qwen2ForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, qkvBias: true, attentionBias: false });
  }
}
