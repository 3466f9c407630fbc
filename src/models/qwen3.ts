// Qwen3ForCausalLM (Qwen3 0.6B-32B dense): Qwen2's decoder without the q/k/v biases (attention_bias, default
// false, puts them on q, k, v and o), and with an RMSNorm over each head's dimensions of q and of k (q_norm,
// k_norm: weights [head_dim]) applied before the rotary embedding. head_dim is its own config field (128 with
// hidden_size 1024 and 16 heads on Qwen3-0.6B, not hidden_size / heads). Sliding-window attention as Qwen2's
// (use_sliding_window, max_window_layers: config.ts); embeddings tied on the small models.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';

export class Qwen3ForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, qkNorm: 'head' });
  }
}
