// Mixture-of-experts models (src/models/sparse_moe.ts; Qwen3-MoE and Mixtral, whose logits, greedy tokens and
// gradients against transformers are test/conformance.test.ts's): the sparse routing against the dense formula, the
// config fields, and the warning on adapters that PEFT on transformers 5 loads wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadBalancingLoss, loadModel, MoeDecoderLayer, SparseMoeBlock, parseConfig, type LlamaForCausalLM } from '../src/models/index.js';
import { fusedExpertCaveats, saveAdapter } from '../src/models/peft.js';
import { Lora } from '../src/nn/lora.js';
import { hfExtra } from './helpers/fixtures.js';
import { BWD32, FWD32, LOGPROB32, reportError } from './helpers/tolerances.js';
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
      // The capturable path (every expert on every token, no read back to the host): the same sum.
      const capt = torch.noGrad(() => block.forward(x, null, true));
      const cErr = relErr(capt, got);
      reportError(`${arch} capturable vs sparse block`, cErr, FWD32);
      assert.ok(cErr <= FWD32, `capturable block within ${cErr} of the sparse one`);
      capt.dispose();
      // One token: only its topK experts get gradients.
      m.train();
      for (const p of m.parameters()) p.requiresGrad_(true);
      const one = x.narrow(1, 0, 1).narrow(0, 0, 1).contiguous();
      const chosen = torch.noGrad(() => torch.linear(one, block.gate.weight).topk(block.topK, -1)[1].toArray()) as number[][][];
      block.forward(one).sum().backward();
      const withGrad = block.experts.map((e, i) => (e.gate_proj!.weight.grad ? i : -1)).filter((i) => i >= 0);
      assert.deepEqual(withGrad, [...chosen[0]![0]!].sort((a, b) => a - b));
      assert.ok(block.gate.weight.grad, 'the router gets a gradient through the routing weights');
      for (const t of [x, got, want, one]) t.dispose();
    } finally {
      m.dispose();
    }
  });
}

for (const arch of ['qwen3-moe', 'mixtral']) {
  test(`${arch}: the load-balancing loss of the router logits a forward pass collects, and its gradient in the router, are transformers' (padding masked out), with and without gradient checkpointing`, () => {
    const m = loadModel(join(hfExtra, arch), { dtype: 'float32', device: 'cpu' });
    const { tensors: ex } = torch.loadSafetensors(join(hfExtra, arch, 'expected.safetensors'));
    try {
      m.requiresGrad_(true);
      const [gradName, wantGrad] = [...ex].find(([k]) => k.startsWith('aux_grad.'))!;
      const router = new Map(m.namedParameters()).get(gradName.slice('aux_grad.'.length))!;
      const wantAux = ex.get('aux_loss')!.item();
      for (const checkpointing of [false, true]) {
        const sink: torch.Tensor[] = [];
        const tape = checkpointing ? new torch.CheckpointTape() : null;
        try {
          torch.tidy(() => {
            m.hidden({ inputIds: ex.get('input_ids')!, attentionMask: ex.get('attention_mask')!, positionIds: ex.get('position_ids')!, routerLogits: sink, tape });
            assert.equal(sink.length, m.config.moe!.sparseLayers.filter(Boolean).length, 'one router logits tensor per sparse layer');
            const aux = loadBalancingLoss(sink, m.config.moe!.topK, ex.get('attention_mask')!);
            const err = Math.abs(aux.item() - wantAux) / wantAux;
            reportError(`${arch} aux_loss (checkpointing ${checkpointing})`, err, FWD32);
            assert.ok(err <= FWD32, `aux loss ${aux.item()} against transformers' ${wantAux}`);
            if (tape) tape.backward(aux);
            else aux.backward();
          });
          const g = router.grad!;
          const gErr = torch.tidy(() => g.sub(wantGrad).norm().item() / wantGrad.norm().item());
          reportError(`${arch} aux_grad (checkpointing ${checkpointing})`, gErr, BWD32);
          assert.ok(gErr <= BWD32, `router gradient of the aux loss within ${gErr} (bound ${BWD32})`);
          g.dispose();
        } finally {
          tape?.dispose();
          for (const t of sink) t.dispose();
          for (const p of m.parameters()) p.zeroGrad();
        }
      }
    } finally {
      for (const t of ex.values()) t.dispose();
      m.dispose();
    }
  });
}

for (const arch of ['qwen3-moe', 'mixtral']) {
  test(`${arch}: the static decoding step (what a GPU captures as a CUDA graph; it routes on the device) generates the op-by-op loop's tokens`, async () => {
    const { generate } = await import('../src/generate/index.js');
    const m = loadModel(join(hfExtra, arch), { dtype: 'float32', device: 'cpu' });
    try {
      const prompts = [[1, 17, 42, 99, 3], [1, 250, 311, 7, 64, 128, 9, 8]];
      const opts = { maxNewTokens: 8, temperature: 0, seed: 0 } as const;
      const loop = generate(m, prompts, { ...opts, graph: 'off' });
      const stat = generate(m, prompts, { ...opts, graph: 'on' });
      loop.forEach((g, i) => {
        assert.deepEqual(stat[i]!.tokens, g.tokens, `row ${i}`);
        g.logprobs.forEach((lp, j) => assert.ok(Math.abs(stat[i]!.logprobs[j]! - lp) <= LOGPROB32, `row ${i} step ${j}: ${stat[i]!.logprobs[j]} vs ${lp}`));
      });
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

test('training a MoE policy adds the load-balancing loss as TRL\'s DPOTrainer does: coef x its gradient over each micro-batch (packed or padded, with or without checkpointing), its value as aux_loss; not on dense models', async () => {
  const { train } = await import('../src/sppo/trainer.js');
  const { packSequences } = await import('../src/sppo/logprobs.js');
  const { createRng } = await import('../src/sppo/rng.js');
  const dir = join(hfExtra, 'qwen3-moe');
  const rng = createRng(3);
  const ids = (n: number): number[] => Array.from({ length: n }, () => 4 + rng.int(500));
  const examples = Array.from({ length: 4 }, (_, i) => ({
    promptIds: ids(3 + (i % 3)), chosenIds: ids(4 + (i % 2)), rejectedIds: ids(3 + ((i + 1) % 3)),
    chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8,
  }));
  const routerName = 'model.layers.0.mlp.gate.weight';
  const run = async (over: Record<string, unknown>, policy = dir): Promise<{ grad: Float32Array | undefined; aux: number | undefined }> => {
    let grad: Float32Array | undefined;
    const r = await train({
      policy, examples, loss: 'sppo', beta: 0.1, lr: 1e-4, epochs: 1, batchSize: 4, gradAccum: 1, optimizer: 'adamw', warmupRatio: 0,
      schedule: 'constant', maxLength: 64, maxPromptLength: 32, maxGradNorm: 0, dtype: 'float32', device: 'cpu', seed: 0,
      onGradients: (named) => {
        const g = named.find(([n]) => n === routerName)?.[1].grad;
        if (g) grad ??= Float32Array.from(g.toTypedArray() as Float32Array);
      },
      ...over,
    });
    r.model.dispose();
    return { grad, aux: r.metrics[0]!.aux_loss };
  };
  // The aux loss and its router gradient computed apart from the trainer: one padded batch of the 8 sequences.
  const m = loadModel(dir, { dtype: 'float32', device: 'cpu' });
  m.requiresGrad_(true);
  const sink: torch.Tensor[] = [];
  let want: { aux: number; grad: Float32Array };
  try {
    const seqs = [...examples.map((e) => ({ promptIds: e.promptIds, responseIds: e.chosenIds })), ...examples.map((e) => ({ promptIds: e.promptIds, responseIds: e.rejectedIds }))];
    const batch = packSequences(seqs, 0);
    const aux = torch.tidy(() => {
      m.hidden({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, routerLogits: sink });
      const a = loadBalancingLoss(sink, m.config.moe!.topK, batch.attentionMask);
      a.backward();
      return a.item();
    });
    want = { aux, grad: Float32Array.from(new Map(m.namedParameters()).get(routerName)!.grad!.toTypedArray() as Float32Array) };
  } finally {
    for (const t of sink) t.dispose();
    m.dispose();
  }
  const off = await run({ routerAuxLossCoef: 0 });
  assert.equal(off.aux, undefined);
  const coef = 0.5;
  for (const over of [{}, { packing: false }, { gradientCheckpointing: true }]) {
    const on = await run({ ...over, routerAuxLossCoef: coef });
    // The same tokens through the same weights: the aux loss within float32 rounding (FWD32) of the padded batch's.
    assert.ok(Math.abs(on.aux! - want.aux) <= FWD32 * want.aux, `aux_loss ${on.aux} against ${want.aux} (${JSON.stringify(over)})`);
    let scale = 0;
    let worst = 0;
    on.grad!.forEach((g, i) => {
      scale = Math.max(scale, Math.abs(g), Math.abs(off.grad![i]!));
      worst = Math.max(worst, Math.abs(g - off.grad![i]! - coef * want.grad[i]!));
    });
    reportError(`aux gradient in the trainer ${JSON.stringify(over)}`, worst / scale, BWD32);
    assert.ok(worst <= BWD32 * scale, `router gradient minus the pair loss's: ${worst / scale} of the largest entry off coef x the aux gradient (${JSON.stringify(over)})`);
  }
  assert.equal((await run({}, join(hfExtra, 'qwen3'))).aux, undefined, 'a dense model has no load-balancing loss');
  // The default is TRL's 0.001.
  assert.ok(Math.abs((await run({})).aux! - want.aux) <= FWD32 * want.aux);
});
