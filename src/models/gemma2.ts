// Gemma2ForCausalLM (Gemma 2 2B/9B/27B), and the decoder Gemma 3's text model shares (gemma3.ts):
//   x = embed(ids) * sqrt(hidden_size)            (the scale rounded to the activations' dtype)
//   per layer: x = x + post_attn_norm(attn(input_norm(x)))
//              x = x + post_ff_norm(mlp(pre_ff_norm(x)))
//   logits = softcap(lm_head(norm(x)), final_logit_softcapping)
// RMSNorms scale by (1 + w) in float32; attention scores are scaled by query_pre_attn_scalar^-1/2 and
// soft-capped (cap * tanh(s / cap)); layers alternate sliding-window and full attention (layer_types);
// the MLP is gated with GeLU-tanh; embeddings are tied.
import { linear, scalarTensor, tidy, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { Embedding, RMSNorm } from '../nn/layers.js';
import { CausalLMBase, type Context, type ForwardInput } from './causal_lm.js';
import type { ModelConfig } from './config.js';
import { Attention, GatedMlp } from './llama.js';
import { Rotary } from './rope.js';

export class Gemma2DecoderLayer extends Module {
  self_attn: Attention;
  mlp: GatedMlp;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  pre_feedforward_layernorm: RMSNorm;
  post_feedforward_layernorm: RMSNorm;
  constructor(cfg: ModelConfig, layerIdx: number) {
    super();
    this.self_attn = this.module('self_attn', new Attention(cfg, layerIdx, cfg.layerTypes[layerIdx]!, {
      scale: Math.pow(cfg.queryPreAttnScalar ?? cfg.headDim, -0.5),
      softcap: cfg.attnLogitSoftcapping,
      normOffset: 1, // Gemma 3's q/k norms, Gemma's (1 + w) RMSNorm
    }));
    this.mlp = this.module('mlp', new GatedMlp(cfg));
    const norm = (name: string): RMSNorm => this.module(name, new RMSNorm(cfg.hiddenSize, cfg.normEps, 1));
    this.input_layernorm = norm('input_layernorm');
    this.post_attention_layernorm = norm('post_attention_layernorm');
    this.pre_feedforward_layernorm = norm('pre_feedforward_layernorm');
    this.post_feedforward_layernorm = norm('post_feedforward_layernorm');
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const a = this.post_attention_layernorm.forward(this.self_attn.forward(this.input_layernorm.forward(x), ctx));
      const h = x.add(a);
      return h.add(this.post_feedforward_layernorm.forward(this.mlp.forward(this.pre_feedforward_layernorm.forward(h))));
    });
  }
}

export class Gemma2Model extends Module {
  embed_tokens: Embedding;
  layers: Gemma2DecoderLayer[];
  norm: RMSNorm;
  constructor(cfg: ModelConfig) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.layers = this.moduleList('layers', Array.from({ length: cfg.numLayers }, (_, i) => new Gemma2DecoderLayer(cfg, i)));
    this.norm = this.module('norm', new RMSNorm(cfg.hiddenSize, cfg.normEps, 1));
  }
}

export class Gemma2ForCausalLM extends CausalLMBase {
  model: Gemma2Model;
  readonly rotary: Rotary;
  /** The sliding-window layers' rope where it is their own (Gemma 3's slidingRope). */
  readonly slidingRotary: Rotary | null;

  constructor(cfg: ModelConfig) {
    super({ ...cfg, tieWordEmbeddings: true });
    this.model = this.module('model', new Gemma2Model(this.config));
    this.rotary = new Rotary(cfg.rope, cfg.headDim);
    this.slidingRotary = cfg.slidingRope ? new Rotary(cfg.slidingRope, cfg.headDim) : null;
  }

  hidden(input: ForwardInput): Tensor {
    return tidy(() => {
      const { positions, fullMask, slidingMask, emptyRows, varlen } = this.prepare(input, this.config.slidingWindow);
      const { cos, sin } = this.rotary.tables(positions, this.dtype);
      const local = this.slidingRotary?.tables(positions, this.dtype);
      const ctx: Context = { cos, sin, slidingCos: local?.cos ?? null, slidingSin: local?.sin ?? null, fullMask, slidingMask, emptyRows, cache: input.cache ?? null, fused: this.fused, varlen };
      const normalizer = scalarTensor(Math.sqrt(this.config.hiddenSize), { dtype: this.dtype, device: this.device });
      let x = this.model.embed_tokens.forward(input.inputIds).mul(normalizer);
      x = this.runLayers(x, this.model.layers, ctx, input.tape);
      this.advanceCache(input);
      return this.model.norm.forward(x);
    });
  }

  logits(hidden: Tensor): Tensor {
    return tidy(() => {
      const logits = linear(hidden, this.model.embed_tokens.weight);
      const cap = this.config.finalLogitSoftcapping;
      return cap ? logits.div(cap).tanh().mul(cap) : logits;
    });
  }

  /** Soft-capped attention (Gemma 2) has no fused kernel: the eager composition, with its masks. */
  protected override get fused(): boolean {
    return this.config.attnLogitSoftcapping === null && super.fused;
  }

  /** Gemma's norms scale by (1 + w): their weights start at zero. */
  override initWeights(opts: Parameters<CausalLMBase['initWeights']>[0] = {}): void {
    super.initWeights({ zeroInit: (name) => name.endsWith('norm.weight'), ...opts });
  }

  protected override moveBuffers(device: string): void {
    this.rotary.to(device);
    this.slidingRotary?.to(device);
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
    this.slidingRotary?.dispose();
  }
}
