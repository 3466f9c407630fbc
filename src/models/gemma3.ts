// Gemma3ForCausalLM (Gemma 3's text model: gemma-3-1b-it, and the language model of the larger ones; model_type
// gemma3_text): Gemma 2's decoder (embeddings x sqrt(hidden), (1 + w) RMSNorms before and after attention and MLP,
// query_pre_attn_scalar, GeLU-tanh, tied embeddings) with
//   - an RMSNorm over each head's dimensions of q and of k (q_norm, k_norm; Gemma's 1 + w) before the rotary embedding;
//   - a rope per layer type: the sliding-window layers rotate with rope_local_base_freq (10000), the full ones with
//     rope_theta (1e6) and its scaling (linear, factor 8, on the 4B-27B models): config.ts's rope and slidingRope;
//   - sliding and full layers by layer_types (every sliding_window_pattern-th layer full, 5 of 6 sliding);
//   - no soft-capping unless the config sets it (then attention is eager, as Gemma 2's).
// The multimodal Gemma3ForConditionalGeneration folders (text_config nested, vision tower) are not read.
import { Gemma2ForCausalLM } from './gemma2.js';
import type { ModelConfig } from './config.js';

export class Gemma3ForCausalLM extends Gemma2ForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, qkNorm: 'head' });
  }
}
