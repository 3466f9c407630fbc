// Olmo2ForCausalLM (OLMo 2 1B-32B, AI2's fully open models): Llama's attention, MLP and rotary embedding, with
//   - the norms after each block instead of before: x = x + post_attn_norm(attn(x)); x = x + post_ff_norm(mlp(x));
//   - RMSNorms on q and k over the whole projection ([heads * head_dim], not per head), before the rotary embedding;
//   - every RMSNorm scaling in float32 before casting to the activations' dtype (OLMo 2's, where Llama casts first).
import { tidy, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/layers.js';
import type { Context } from './causal_lm.js';
import type { ModelConfig } from './config.js';
import { Attention, GatedMlp, LlamaForCausalLM } from './llama.js';

export class Olmo2DecoderLayer extends Module {
  self_attn: Attention;
  mlp: GatedMlp;
  post_attention_layernorm: RMSNorm;
  post_feedforward_layernorm: RMSNorm;
  constructor(cfg: ModelConfig, layerIdx: number) {
    super();
    this.self_attn = this.module('self_attn', new Attention(cfg, layerIdx, cfg.layerTypes[layerIdx]!, { normInFloat: true }));
    this.mlp = this.module('mlp', new GatedMlp(cfg));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps, 0, true));
    this.post_feedforward_layernorm = this.module('post_feedforward_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps, 0, true));
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const h = x.add(this.post_attention_layernorm.forward(this.self_attn.forward(x, ctx)));
      return h.add(this.post_feedforward_layernorm.forward(this.mlp.forward(h)));
    });
  }
}

export class Olmo2ForCausalLM extends LlamaForCausalLM {
  constructor(cfg: ModelConfig) {
    super({ ...cfg, qkNorm: 'projection' }, (c, i) => new Olmo2DecoderLayer(c, i), true);
  }
}
