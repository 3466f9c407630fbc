// GPT2LMHeadModel:
//   x = wte(ids) + wpe(positions)
//   per block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))
//   logits = ln_f(x) wte^T
// with LayerNorms, learned positions, fused q/k/v (c_attn) and Conv1D layers whose weights are stored
// [in, out] (the transpose of torch.nn.Linear's), and a GeLU-tanh MLP.
import { linear, tidy, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { activation, Conv1D, Embedding, LayerNorm } from '../nn/layers.js';
import { attend } from '../nn/attention.js';
import { CausalLMBase, type Context, type ForwardInput } from './causal_lm.js';
import { positionLimit, type ModelConfig } from './config.js';

export class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  readonly numHeads: number;
  readonly headDim: number;
  readonly scale: number;
  constructor(cfg: ModelConfig, readonly layerIdx: number) {
    super();
    const d = cfg.hiddenSize;
    this.numHeads = cfg.numHeads;
    this.headDim = d / cfg.numHeads;
    let scale = cfg.raw.scale_attn_weights === false ? 1 : 1 / Math.sqrt(this.headDim);
    if (cfg.raw.scale_attn_by_inverse_layer_idx === true) scale /= layerIdx + 1;
    this.scale = scale;
    this.c_attn = this.module('c_attn', new Conv1D(d, 3 * d));
    this.c_proj = this.module('c_proj', new Conv1D(d, d));
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const [b, l, d] = x.shape as [number, number, number];
      const heads = (t: Tensor): Tensor => t.view(b, l, this.numHeads, this.headDim).transpose(1, 2);
      const [q, k0, v0] = this.c_attn.forward(x).split(d, 2) as [Tensor, Tensor, Tensor];
      let k = heads(k0);
      let v = heads(v0);
      if (ctx.cache) [k, v] = ctx.cache.update(this.layerIdx, k, v);
      const y = attend(heads(q), k, v, { mask: ctx.fullMask, causal: ctx.fullMask === null, emptyRows: ctx.emptyRows, scale: this.scale, fused: ctx.fused, varlen: ctx.varlen });
      return this.c_proj.forward(y.transpose(1, 2).reshape(b, l, d));
    });
  }
}

export class GPT2Mlp extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  readonly act: (x: Tensor) => Tensor;
  constructor(cfg: ModelConfig) {
    super();
    this.c_fc = this.module('c_fc', new Conv1D(cfg.hiddenSize, cfg.intermediateSize));
    this.c_proj = this.module('c_proj', new Conv1D(cfg.intermediateSize, cfg.hiddenSize));
    this.act = activation(cfg.hiddenAct);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.c_proj.forward(this.act(this.c_fc.forward(x))));
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2Mlp;
  constructor(cfg: ModelConfig, layerIdx: number) {
    super();
    this.ln_1 = this.module('ln_1', new LayerNorm(cfg.hiddenSize, cfg.normEps));
    this.attn = this.module('attn', new GPT2Attention(cfg, layerIdx));
    this.ln_2 = this.module('ln_2', new LayerNorm(cfg.hiddenSize, cfg.normEps));
    this.mlp = this.module('mlp', new GPT2Mlp(cfg));
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const h = x.add(this.attn.forward(this.ln_1.forward(x), ctx));
      return h.add(this.mlp.forward(this.ln_2.forward(h)));
    });
  }
}

export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: GPT2Block[];
  ln_f: LayerNorm;
  constructor(cfg: ModelConfig) {
    super();
    this.wte = this.module('wte', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.wpe = this.module('wpe', new Embedding(cfg.maxPositions, cfg.hiddenSize));
    this.h = this.moduleList('h', Array.from({ length: cfg.numLayers }, (_, i) => new GPT2Block(cfg, i)));
    this.ln_f = this.module('ln_f', new LayerNorm(cfg.hiddenSize, cfg.normEps));
  }
}

export class GPT2LMHeadModel extends CausalLMBase {
  transformer: GPT2Model;
  constructor(cfg: ModelConfig) {
    super({ ...cfg, numKvHeads: cfg.numHeads, headDim: cfg.hiddenSize / cfg.numHeads, tieWordEmbeddings: true });
    this.transformer = this.module('transformer', new GPT2Model(this.config));
  }

  hidden(input: ForwardInput): Tensor {
    return tidy(() => {
      const { positions, fullMask, emptyRows, varlen, past } = this.prepare(input, null);
      this.checkPositions(input, positions, past);
      const ctx: Context = { cos: null, sin: null, fullMask, slidingMask: null, emptyRows, cache: input.cache ?? null, fused: this.fused, varlen };
      let x = this.transformer.wte.forward(input.inputIds).add(this.transformer.wpe.forward(positions));
      x = this.runLayers(x, this.transformer.h, ctx, input.tape);
      this.advanceCache(input);
      return this.transformer.ln_f.forward(x);
    });
  }

  /**
   * wpe has maxPositions rows: a position past them is an error that says so, not aten::embedding's index error
   * (on a GPU, a device-side assert that ends the process). The bound is read on the host from the lengths; the
   * positions themselves are read back only when it is exceeded (left padding can keep them below it).
   */
  private checkPositions(input: ForwardInput, positions: Tensor, past: number): void {
    if (input.attentionBias) return; // a static decoding step: generate checked the lengths before it began
    const bound = input.packing ? input.packing.maxLength : past + input.inputIds.size(1);
    if (bound <= this.config.maxPositions) return;
    const top = Number(positions.max().item()) + 1;
    const over = positionLimit(this.config, top);
    if (over) throw new RangeError(`${this.config.architecture}: ${over.message}`);
  }

  logits(hidden: Tensor): Tensor {
    return linear(hidden, this.transformer.wte.weight);
  }
}
