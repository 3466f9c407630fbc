// SmolLM3ForCausalLM (SmolLM3-3B): Llama's decoder in which every no_rope_layer_interval-th layer (every 4th) is a
// NoPE layer, attending without rotary positions (no_rope_layers: 1 rotates, 0 does not; config.ts's ropeLayers);
// sliding-window attention, with use_sliding_window, only on those layers; tied embeddings.
import { LlamaForCausalLM } from './llama.js';
import type { ModelConfig } from './config.js';

export class SmolLM3ForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    if (!cfg.ropeLayers) throw new Error(`${cfg.architecture}: config.json has model_type ${JSON.stringify(cfg.modelType)}, not "smollm3": cannot tell its NoPE layers`);
    super(cfg);
  }
}
