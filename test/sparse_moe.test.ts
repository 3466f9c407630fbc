// Mixture-of-experts models (src/models/sparse_moe.ts; Qwen3-MoE and Mixtral, whose logits, greedy tokens and
// gradients against transformers are test/conformance.test.ts's): the sparse routing against the dense formula, the
// config fields, and the warning on adapters that PEFT on transformers 5 loads wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel, MoeDecoderLayer, SparseMoeBlock, parseConfig, type LlamaForCausalLM } from '../src/models/index.js';
import { fusedExpertCaveats, saveAdapter } from '../src/models/peft.js';
import { Lora } from '../src/nn/lora.js';
import { hfExtra } from './helpers/fixtures.js';
import { FWD32, reportError } from './helpers/tolerances.js';
import { removeDir, tempDir } from './text_helpers.js';

const relErr = (got: torch.Tensor, want: torch.Tensor): number => torch.tidy(() => got.sub(want).abs().max().item() / want.abs().max().item());

/** The block's output by the definition: every expert on every token, weighted by the renormalised top-k softmax (0 elsewhere). */
function denseReference(block: SparseMoeBlock, x: torch.Tensor): torch.Tensor {
  return torch.tidy(() => {
    const p = torch.linear(x, block.gate.weight).float().softmax(-1);
    let [top, idx] = p.topk(block.topK, -1);
    if (block.normTopkProb) top = top.div(top.sum(-1, true));
    const w = torch.zerosLike(p).scatter(-1, idx, top);
    let y = torch.zerosLike(x);
    block.experts.forEach((e, i) => {
      y = y.add(e.forward(x).mul(w.narrow(-1, i, 1)));
    });
    return y;
  });
}

for (const arch of ['qwen3-moe', 'mixtral']) {
  test(`${arch}: the sparse block (each expert on its own tokens, added back in expert order) equals the dense formula; an expert no token chose gets no gradient`, () => {
    const m = loadModel(join(hfExtra, arch), { dtype: 'float32', device: 'cpu' });
    try {
      const layer = (m as LlamaForCausalLM).model.layers[0] as MoeDecoderLayer;
      const block = layer.ff as SparseMoeBlock;
      assert.ok(block instanceof SparseMoeBlock);
      const x = torch.randn([2, 7, m.config.hiddenSize], { generator: new torch.Generator(1, 'cpu') });
      const got = torch.noGrad(() => block.forward(x));
      const want = torch.noGrad(() => denseReference(block, x));
      const err = relErr(got, want);
      reportError(`${arch} sparse vs dense block`, err, FWD32);
      assert.ok(err <= FWD32, `sparse block within ${err} of the dense formula (bound ${FWD32})`);
      // One token: only its topK experts get gradients.
      m.train();
      for (const p of m.parameters()) p.requiresGrad_(true);
      const one = x.narrow(1, 0, 1).narrow(0, 0, 1).contiguous();
      const chosen = torch.noGrad(() => torch.linear(one, block.gate.weight).topk(block.topK, -1)[1].toArray()) as number[][][];
      block.forward(one).sum().backward();
      const withGrad = block.experts.map((e, i) => (e.gate.weight.grad ? i : -1)).filter((i) => i >= 0);
      assert.deepEqual(withGrad, [...chosen[0]![0]!].sort((a, b) => a - b));
      assert.ok(block.gate.weight.grad, 'the router gets a gradient through the routing weights');
      for (const t of [x, got, want, one]) t.dispose();
    } finally {
      m.dispose();
    }
  });
}

test('MoE config fields: expert counts under either name, dense layers (mlp_only_layers, decoder_sparse_step), Mixtral always renormalising, errors naming the field', () => {
  const base = { vocab_size: 32, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 4, num_attention_heads: 2 };
  const q = parseConfig({ ...base, architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', num_local_experts: 6, moe_intermediate_size: 4, num_experts_per_tok: 2, mlp_only_layers: [0], decoder_sparse_step: 2, norm_topk_prob: true });
  assert.deepEqual(q.moe, { numExperts: 6, topK: 2, expertIntermediateSize: 4, normTopkProb: true, sparseLayers: [false, true, false, true], outputRouterLogits: false, routerAuxLossCoef: 0.001 });
  // Qwen3MoeConfig's defaults: 128 experts, 8 per token, no renormalisation.
  const qd = parseConfig({ ...base, architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe' });
  assert.equal(qd.moe!.numExperts, 128);
  assert.equal(qd.moe!.topK, 8);
  assert.equal(qd.moe!.normTopkProb, false);
  assert.equal(qd.slidingWindow, null, 'Qwen3-MoE slides only with use_sliding_window');
  const x = parseConfig({ ...base, architectures: ['MixtralForCausalLM'], model_type: 'mixtral', num_experts: 4, sliding_window: 8 });
  assert.deepEqual(x.moe, { numExperts: 4, topK: 2, expertIntermediateSize: 16, normTopkProb: true, sparseLayers: [true, true, true, true], outputRouterLogits: false, routerAuxLossCoef: 0.001 });
  assert.deepEqual(x.layerTypes, ['sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention']);
  assert.throws(() => parseConfig({ ...base, architectures: ['MixtralForCausalLM'], model_type: 'mixtral', num_local_experts: 2, num_experts_per_tok: 3 }, 'm/config.json'), /m\/config\.json: num_experts_per_tok \(3\) must be at most the number of experts \(2\)/);
  assert.throws(() => parseConfig({ ...base, architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', mlp_only_layers: 'all' }, 'q/config.json'), /q\/config\.json: mlp_only_layers must be a list/);
  assert.equal(parseConfig({ ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama' }).moe, undefined);
});

test('adapters PEFT 0.21 on transformers 5 converts wrong are named when saved (the cases scripts/peft-interop.mjs measures)', async () => {
  const q = (l: number, leaf: string, e?: number): string => `model.layers.${l}.mlp.${e === undefined ? '' : `experts.${e}.`}${leaf}`;
  const experts = [q(0, 'gate_proj', 0), q(0, 'up_proj', 0), q(0, 'down_proj', 0), q(0, 'gate_proj', 1), q(0, 'up_proj', 1)];
  assert.deepEqual(fusedExpertCaveats(['model.layers.0.self_attn.q_proj', ...experts], false), []);
  assert.deepEqual(fusedExpertCaveats(['model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj'], true), [], 'no experts: no caveat');
  assert.match(fusedExpertCaveats(experts, true).join(), /rsLoRA by sqrt\(2\).*gate_proj and up_proj/);
  assert.match(fusedExpertCaveats([q(0, 'gate_proj', 0)], false).join(), /refuses to load it: it adapts the experts' gate_proj without their up_proj/);
  assert.match(fusedExpertCaveats(['model.layers.0.block_sparse_moe.experts.0.w3'], false).join(), /w3 without their w1/);
  assert.match(fusedExpertCaveats([...experts, q(1, 'gate_proj'), q(1, 'down_proj')], false).join(), /dense MLP layers beside the experts \(model\.layers\.1\.mlp\.gate_proj, and 1 more\)/);
  // saveAdapter warns (and still writes the adapter).
  const warnings: string[] = [];
  const on = (w: Error & { code?: string }): void => {
    if (w.code === 'SPPO_PEFT_MOE') warnings.push(w.message);
  };
  process.on('warning', on);
  const out = tempDir('moe-adapter');
  const m = loadModel(join(hfExtra, 'mixtral'), { dtype: 'float32', device: 'cpu' });
  try {
    const plain = Lora.attach(m, { r: 2, alpha: 4, targetModules: 'all-linear' });
    saveAdapter(plain, join(out, 'plain'));
    plain.dispose();
    const rs = Lora.attach(m, { r: 2, alpha: 4, rslora: true, targetModules: ['w1', 'w3'] });
    const files = saveAdapter(rs, join(out, 'rslora'));
    rs.dispose();
    await new Promise((r) => setImmediate(r));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /rslora: .*scales the experts' rsLoRA by sqrt\(2\).*sppo merge/);
    assert.deepEqual(files.sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  } finally {
    process.off('warning', on);
    m.dispose();
    removeDir(out);
  }
});
