// MixtralForCausalLM (Mixtral 8x7B, 8x22B): Mistral's decoder with a sparse mixture of experts as each layer's
// feed-forward, `block_sparse_moe` (sparse_moe.ts): num_local_experts gated MLPs of intermediate_size (w1 gate, w3 up,
// w2 down), num_experts_per_tok (2) per token, the router's top weights always renormalised and kept in float32.
// Sliding windows (sliding_window) on every layer when set, as Mistral's.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';
import { MoeDecoderLayer, type ExpertNames } from './sparse_moe.js';

/** Each expert's projections as the checkpoints name them (block_sparse_moe.experts.E.w1.weight, ...). */
export const MIXTRAL_EXPERT_NAMES: ExpertNames = { gate: 'w1', up: 'w3', down: 'w2' };

export class MixtralForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super(cfg, (c, i) => new MoeDecoderLayer(c, i, 'block_sparse_moe', { names: MIXTRAL_EXPERT_NAMES, weightsInFloat: true }));
  }
}
