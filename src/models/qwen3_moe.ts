// Qwen3MoeForCausalLM (Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder-30B-A3B): Qwen3's decoder (q/k norms per head, no
// q/k/v biases) with a sparse mixture of experts as each layer's `mlp` (sparse_moe.ts): num_experts gated MLPs of
// moe_intermediate_size, num_experts_per_tok of them per token, the router's top weights renormalised with
// norm_topk_prob. A layer in mlp_only_layers, or off the decoder_sparse_step, has a dense MLP of intermediate_size.
// Sliding windows only with use_sliding_window, then on every layer.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';
import { MoeDecoderLayer, type ExpertNames } from './sparse_moe.js';

/** Each expert's projections as the checkpoints name them (mlp.experts.E.gate_proj.weight, ...). */
export const QWEN3_MOE_EXPERT_NAMES: ExpertNames = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };

export class Qwen3MoeForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, qkNorm: 'head' }, (c, i) => new MoeDecoderLayer(c, i, 'mlp', { names: QWEN3_MOE_EXPERT_NAMES }));
  }
}
