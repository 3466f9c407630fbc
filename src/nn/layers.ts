// The layers of decoder-only transformers, as torch.nn's (parameter names as Hugging Face's).
import { addmm, embedding, layerNorm, linear, rmsNorm, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

/**
 * Something added to a linear layer's output: a LoRA adapter (src/nn/lora.ts). It sees the layer's input x
 * and output y and returns the new output.
 */
export interface LayerAdapter {
  addTo(x: Tensor, y: Tensor): Tensor;
}

/** y = x W^T + b, W of shape [out, in] (torch.nn.Linear). */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = false) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures]);
    this.bias = bias ? this.param('bias', [outFeatures]) : null;
  }
  /** A low-rank adapter on this layer (src/nn/lora.ts), or none. Not a parameter of the layer. */
  adapter: LayerAdapter | null = null;
  forward(x: Tensor): Tensor {
    const y = linear(x, this.weight, this.bias);
    return this.adapter ? this.adapter.addTo(x, y) : y;
  }
}

/** y = x W + b, W of shape [in, out]: GPT-2's Conv1D (a linear layer with the weight transposed). */
export class Conv1D extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(readonly inFeatures: number, readonly outFeatures: number) {
    super();
    this.weight = this.param('weight', [inFeatures, outFeatures]);
    this.bias = this.param('bias', [outFeatures]);
  }
  /** A low-rank adapter on this layer (src/nn/lora.ts), or none. Not a parameter of the layer. */
  adapter: LayerAdapter | null = null;
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    const flat = x.reshape(-1, this.inFeatures);
    const y = addmm(this.bias, flat, this.weight).view(...shape.slice(0, -1), this.outFeatures);
    return this.adapter ? this.adapter.addTo(x, y) : y;
  }
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', [numEmbeddings, dim]);
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/**
 * RMS normalisation computed in float32 (transformers' LlamaRMSNorm: weight * normed.to(dtype)); with
 * `offset` 1, Gemma's (1 + weight) scaling in float32 before the cast.
 */
export class RMSNorm extends Module {
  weight: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-6, readonly offset = 0, readonly scaleInFloat = offset !== 0) {
    super();
    this.weight = this.param('weight', [dim]);
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps, this.offset, this.scaleInFloat);
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [dim]);
    this.bias = this.param('bias', [dim]);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

/** The activations of HF configs (`hidden_act`, `hidden_activation`, `activation_function`). */
export function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return (x) => x.silu();
    case 'gelu':
      return (x) => x.gelu('none');
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
    case 'gelu_approximate':
      return (x) => x.gelu('tanh');
    case 'relu':
      return (x) => x.relu();
    default:
      throw new Error(`unsupported activation '${name}' (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, relu)`);
  }
}
