// Phi3ForCausalLM (Phi-3, Phi-3.5-mini, Phi-4-mini): Llama's decoder with fused projections (qkv_proj: the rows of
// q, k and v; gate_up_proj: gate's rows, then up's), a rotary embedding that may cover only part of each head
// (partial_rotary_factor, Phi-4-mini's 0.75) and LongRoPE scaling (rope_scaling type longrope: short_factor up to
// original_max_position_embeddings, long_factor past it, cos and sin scaled by the attention factor: rope.ts), and a
// sliding window on every layer when sliding_window is set.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';

export class Phi3ForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, fusedProjections: true });
  }
}
