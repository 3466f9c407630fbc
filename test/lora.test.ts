// LoRA (src/nn/lora.ts) and PEFT's adapter files (src/models/peft.ts) on the hf-tiny fixtures:
// - the adapted model's forward equals the merged model's (float32), for every architecture (GPT-2's Conv1D too);
// - gradients: only A and B get them, and they are the chain rule of the merged weight's gradient G
//   (dL/dB = s G A^T, dL/dA = s B^T G; G transposed for Conv1D), checked against a plain model's G;
// - dropout masks are the same when gradient checkpointing recomputes a layer;
// - PEFT files round trip, and a file written by hand to PEFT's naming loads to W + s B A (checked elementwise
//   in float64 in JavaScript), for Linear and Conv1D, with rsLoRA's scaling;
// - bad adapters and bad target modules are errors naming the cause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import type { CausalLMBase } from '../src/models/causal_lm.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapter, saveAdapter, AdapterError } from '../src/models/peft.js';
import { mergeAdapter } from '../src/models/peft_merge.js';
import { Lora, LoraError, loraScaling, matchesTarget } from '../src/nn/lora.js';
import { fixtureCases, hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { BWD32, FWD32, reportError } from './helpers/tolerances.js';

const cases = fixtureCases(['model.safetensors']).filter((c) => c.name !== 'deberta-v2');
const llama = join(hfTiny, 'llama');
const gpt2 = join(hfTiny, 'gpt2');
const skipLlama = existsSync(join(llama, 'model.safetensors')) ? false : `no fixture at ${llama}`;
const skipGpt2 = existsSync(join(gpt2, 'model.safetensors')) ? false : `no fixture at ${gpt2}`;

const IDS = [[5, 17, 42, 99, 3, 250, 311, 7, 64, 128], [9, 8, 7, 6, 5, 4, 3, 2, 1, 400]];

/** max |a - b| / max |b|. */
function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.float().sub(b.float()).abs().max().item() / Math.max(1e-30, b.float().abs().max().item()));
}

/** Gives every adapter random A and B (fresh ones have B = 0, which would make the checks trivial). */
function randomize(lora: Lora, seed: number): void {
  const gen = new torch.Generator(seed, 'cpu');
  torch.noGrad(() => {
    for (const l of lora.layers) {
      torch.tidy(() => {
        l.A.copy_(torch.randn(l.A.shape, { generator: gen }).mul(0.3));
        l.B.copy_(torch.randn(l.B.shape, { generator: gen }).mul(0.3));
      });
    }
  });
}

function logits(m: CausalLMBase): torch.Tensor {
  return torch.tidy(() => torch.noGrad(() => m.forward({ inputIds: torch.tensor(IDS.map((r) => r.map((x) => BigInt(x)))) })));
}

for (const c of cases) {
  test(`${c.name}: LoRA forward (all-linear, r 4) equals the merged model's forward in float32`, { skip: c.skip }, () => {
    const m = loadModel(c.dir, { dtype: 'float32', device: 'cpu' });
    const lora = Lora.attach(m, { r: 4, alpha: 8, targetModules: 'all-linear', seed: 1 });
    try {
      const base = logits(m);
      const fresh = logits(m);
      assert.equal(relErr(fresh, base), 0, 'fresh adapters (B = 0) change nothing');
      randomize(lora, 2);
      const adapted = logits(m);
      const off = lora.disabled(() => logits(m));
      assert.equal(relErr(off, base), 0, 'disabled adapters: the base model exactly');
      lora.merge();
      const merged = logits(m);
      // Both are one float32 forward pass of the same function, summed in other orders: FWD32 relative to max |logit|.
      const err = relErr(adapted, merged);
      reportError(`${c.name} LoRA vs merged`, err, FWD32);
      assert.ok(err <= FWD32, `${c.name}: LoRA vs merged ${err}`);
      assert.ok(relErr(adapted, base) > 100 * FWD32, 'the adapters change the output well beyond the tolerance');
      lora.unmerge();
      const back = logits(m);
      const e2 = relErr(back, adapted);
      assert.ok(e2 <= FWD32, `unmerged ${e2}`);
      for (const t of [base, fresh, adapted, off, merged, back]) t.dispose();
      assert.ok(lora.layers.length > 0 && lora.layers.every((l) => !l.name.endsWith('lm_head')), 'all-linear leaves out lm_head');
    } finally {
      lora.dispose();
      m.dispose();
    }
  });
}

test('target modules: PEFT matching (suffix of the dotted name, or a full-match regular expression)', () => {
  assert.ok(matchesTarget('model.layers.0.self_attn.q_proj', ['q_proj']));
  assert.ok(matchesTarget('model.layers.0.self_attn.q_proj', ['self_attn.q_proj']));
  assert.ok(!matchesTarget('model.layers.0.self_attn.q_proj', ['proj']));
  assert.ok(matchesTarget('transformer.h.1.mlp.c_proj', ['mlp.c_proj']));
  assert.ok(!matchesTarget('transformer.h.1.attn.c_proj', ['mlp.c_proj']));
  assert.ok(matchesTarget('model.layers.1.mlp.down_proj', '.*\\.1\\.mlp\\.(down|up)_proj'));
  assert.ok(!matchesTarget('model.layers.11.mlp.down_proj', '.*\\.1\\.mlp\\.(down|up)_proj'));
  assert.equal(loraScaling(16, 32), 2);
  assert.equal(loraScaling(16, 32, true), 8);
});

test('bad target modules and options are errors naming the cause', { skip: skipLlama }, () => {
  const m = loadModel(llama, { dtype: 'float32', device: 'cpu' });
  try {
    assert.throws(() => Lora.attach(m, { r: 4, alpha: 8, targetModules: ['c_attn'] }), (e: Error) => e instanceof LoraError && /match no layer/.test(e.message) && /q_proj/.test(e.message));
    assert.throws(() => Lora.attach(m, { r: 4, alpha: 8, targetModules: ['input_layernorm'] }), /RMSNorm; LoRA adapts linear layers/);
    assert.throws(() => Lora.attach(m, { r: 0, alpha: 8, targetModules: ['q_proj'] }), /r must be an integer >= 1/);
    assert.throws(() => Lora.attach(m, { r: 2, alpha: 8, dropout: 1, targetModules: ['q_proj'] }), /dropout must be in \[0, 1\)/);
    const l = Lora.attach(m, { r: 2, alpha: 4, targetModules: ['q_proj'] });
    try {
      assert.throws(() => Lora.attach(m, { r: 2, alpha: 4, targetModules: ['q_proj'] }), /already has an adapter/);
    } finally {
      l.dispose();
    }
  } finally {
    m.dispose();
  }
});

/**
 * Gradients: the adapted layer computes x (W + s B A)^T, so with G = dL/dW_eff (what the merged model's weight
 * gets), dL/dB = s G A^T and dL/dA = s B^T G (Conv1D: G is stored [in, out], so G^T takes its place).
 */
for (const [name, dir, skip] of [['llama', llama, skipLlama], ['gpt2', gpt2, skipGpt2]] as const) {
  test(`${name}: gradients reach only A and B, and equal the chain rule of the merged weight's gradient`, { skip }, () => {
    const m = loadModel(dir, { dtype: 'float32', device: 'cpu' });
    const plain = loadModel(dir, { dtype: 'float32', device: 'cpu' });
    const lora = Lora.attach(m, { r: 3, alpha: 6, targetModules: 'all-linear', seed: 5 });
    const ids = torch.tensor(IDS.map((r) => r.map((x) => BigInt(x))));
    try {
      randomize(lora, 9);
      // The plain model gets the merged weights.
      const merged = new Map<string, torch.Tensor>();
      for (const [n, t] of m.namedParameters()) merged.set(n, lora.mergedWeight(n, t) ?? torch.noGrad(() => t.clone()));
      plain.setParameters(merged);
      for (const p of lora.parameters()) p.requiresGrad_(true);
      plain.requiresGrad_(true);
      torch.tidy(() => m.tokenLogprobs({ inputIds: ids }).sum().backward());
      torch.tidy(() => plain.tokenLogprobs({ inputIds: ids }).sum().backward());
      for (const [n, t] of m.namedParameters()) assert.equal(t.grad, null, `base parameter ${n} has a gradient`);
      let worst = 0;
      for (const l of lora.layers) {
        torch.tidy(() => {
          const pw = plain.namedParameters().find(([n]) => n === `${l.name}.weight`)![1];
          const g = l.fanInFanOut ? pw.grad!.transpose(0, 1) : pw.grad!;
          const wantB = g.matmul(l.A.detach().transpose(0, 1)).mul(lora.scaling);
          const wantA = l.B.detach().transpose(0, 1).matmul(g).mul(lora.scaling);
          for (const [got, want, what] of [[l.B.grad!, wantB, 'B'], [l.A.grad!, wantA, 'A']] as const) {
            assert.ok(got, `${l.name}: no gradient in ${what}`);
            const e = relErr(got, want);
            worst = Math.max(worst, e);
            assert.ok(e <= BWD32, `${l.name} lora_${what}: ${e}`);
            assert.ok(want.abs().max().item() > 0);
          }
        });
      }
      reportError(`${name} LoRA gradients vs chain rule`, worst, BWD32);
    } finally {
      ids.dispose();
      lora.dispose();
      m.dispose();
      plain.dispose();
    }
  });
}

test('dropout: a checkpointed recomputation draws the same masks (gradients equal with and without checkpointing)', { skip: skipLlama }, () => {
  const m = loadModel(llama, { dtype: 'float32', device: 'cpu' });
  const lora = Lora.attach(m, { r: 4, alpha: 8, dropout: 0.3, targetModules: 'all-linear', seed: 3 });
  const ids = torch.tensor(IDS.map((r) => r.map((x) => BigInt(x))));
  try {
    randomize(lora, 4);
    m.train(true);
    const grads = (tape: boolean): torch.Tensor[] => {
      for (const p of lora.parameters()) p.zeroGrad();
      torch.tidy(() => {
        const t = tape ? new torch.CheckpointTape() : undefined;
        try {
          const loss = m.tokenLogprobs({ inputIds: ids }, { tape: t }).sum();
          if (t) t.backward(loss);
          else loss.backward();
        } finally {
          t?.dispose();
        }
      });
      return lora.parameters().map((p) => torch.keep(p.grad!.clone()));
    };
    const a = grads(false);
    const b = grads(true);
    lora.nextPass();
    const c = grads(false);
    let worst = 0;
    a.forEach((g, i) => (worst = Math.max(worst, relErr(b[i]!, g))));
    reportError('dropout + checkpointing', worst, BWD32);
    assert.ok(worst <= BWD32, `checkpointed gradients differ by ${worst}`);
    const moved = Math.max(...a.map((g, i) => relErr(c[i]!, g)));
    assert.ok(moved > 100 * BWD32, 'the next pass draws other masks');
    for (const t of [...a, ...b, ...c]) t.dispose();
  } finally {
    ids.dispose();
    lora.dispose();
    m.dispose();
  }
});

for (const [name, dir, skip, targets] of [['llama', llama, skipLlama, ['q_proj', 'v_proj', 'down_proj']], ['gpt2', gpt2, skipGpt2, ['c_attn', 'mlp.c_proj']]] as const) {
  test(`${name}: PEFT files round trip (PEFT's key names and config fields)`, { skip }, () => {
    const out = tempDir('lora-peft');
    const m = loadModel(dir, { dtype: 'float32', device: 'cpu' });
    const lora = Lora.attach(m, { r: 2, alpha: 5, dropout: 0.1, targetModules: [...targets], rslora: true, seed: 7 });
    try {
      randomize(lora, 8);
      const files = saveAdapter(lora, out, { baseModel: dir });
      assert.deepEqual(files.sort(), [ADAPTER_CONFIG, ADAPTER_WEIGHTS].sort());
      const cfg = JSON.parse(readFileSync(join(out, ADAPTER_CONFIG), 'utf8'));
      assert.equal(cfg.peft_type, 'LORA');
      assert.equal(cfg.task_type, 'CAUSAL_LM');
      assert.equal(cfg.r, 2);
      assert.equal(cfg.lora_alpha, 5);
      assert.equal(cfg.lora_dropout, 0.1);
      assert.equal(cfg.use_rslora, true);
      assert.equal(cfg.bias, 'none');
      assert.equal(cfg.fan_in_fan_out, name === 'gpt2');
      assert.equal(cfg.base_model_name_or_path, dir);
      assert.deepEqual(cfg.target_modules, [...targets].sort());
      const st = torch.SafetensorsFile.open(join(out, ADAPTER_WEIGHTS));
      assert.equal(st.metadata.format, 'pt');
      const first = name === 'gpt2' ? 'base_model.model.transformer.h.0.attn.c_attn' : 'base_model.model.model.layers.0.self_attn.q_proj';
      assert.deepEqual(st.entries.get(`${first}.lora_A.weight`)?.shape, [2, 64]);
      assert.deepEqual(st.entries.get(`${first}.lora_B.weight`)?.shape, name === 'gpt2' ? [192, 2] : [64, 2]);
      assert.equal(st.names.length, 2 * lora.layers.length);
      assert.ok(st.names.every((n) => /^base_model\.model\..+\.lora_[AB]\.weight$/.test(n)));

      const before = logits(m);
      lora.dispose();
      const back = loadAdapter(m, out);
      try {
        assert.equal(back.r, 2);
        assert.equal(back.scaling, 5 / Math.sqrt(2));
        assert.deepEqual(back.layers.map((l) => l.name), lora.layers.map((l) => l.name));
        const after = logits(m);
        assert.equal(relErr(after, before), 0, 'same adapters, same output');
        after.dispose();
      } finally {
        back.dispose();
      }
      before.dispose();
    } finally {
      lora.dispose();
      m.dispose();
      removeDir(out);
    }
  });
}

/**
 * An adapter folder as PEFT writes it (save_pretrained of a PeftModelForCausalLM with LoraConfig(r=2,
 * lora_alpha=3, target_modules=[...])): adapter_config.json with PEFT's fields, and adapter_model.safetensors
 * whose keys are base_model.model.<module>.lora_A.weight [r, in] / lora_B.weight [out, r], metadata format pt.
 */
function writePeftFolder(dir: string, modelDir: string, layers: { module: string; inF: number; outF: number }[], r: number, alpha: number, fanInFanOut: boolean, rslora: boolean, adapterName?: string): Map<string, { A: number[][]; B: number[][] }> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify({
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: modelDir, bias: 'none', corda_config: null, eva_config: null,
    exclude_modules: null, fan_in_fan_out: fanInFanOut, inference_mode: true, init_lora_weights: true, layer_replication: null,
    layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: alpha, lora_bias: false, lora_dropout: 0.05,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', peft_version: '0.17.1', r,
    rank_pattern: {}, revision: null, target_modules: [...new Set(layers.map((l) => l.module.split('.').at(-1)))], target_parameters: null,
    task_type: 'CAUSAL_LM', trainable_token_indices: null, use_dora: false, use_qalora: false, use_rslora: rslora,
  }, null, 2));
  const values = new Map<string, { A: number[][]; B: number[][] }>();
  const tensors = new Map<string, torch.Tensor>();
  let k = 0;
  const val = (): number => Math.sin(++k * 1.7) * 0.25;
  const mid = adapterName ? `.${adapterName}` : '';
  for (const l of layers) {
    const A = Array.from({ length: r }, () => Array.from({ length: l.inF }, val));
    const B = Array.from({ length: l.outF }, () => Array.from({ length: r }, val));
    values.set(l.module, { A, B });
    tensors.set(`base_model.model.${l.module}.lora_A${mid}.weight`, torch.tensor(A));
    tensors.set(`base_model.model.${l.module}.lora_B${mid}.weight`, torch.tensor(B));
  }
  torch.saveSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  for (const t of tensors.values()) t.dispose();
  return values;
}

for (const [name, dir, skip, layers, fanInFanOut, rslora, adapterName] of [
  ['llama', llama, skipLlama, [{ module: 'model.layers.1.self_attn.v_proj', inF: 64, outF: 32 }, { module: 'model.layers.0.mlp.up_proj', inF: 64, outF: 176 }], false, false, undefined],
  ['gpt2 (Conv1D, fan_in_fan_out; rsLoRA; adapter name left in the keys)', gpt2, skipGpt2, [{ module: 'transformer.h.1.attn.c_attn', inF: 64, outF: 192 }, { module: 'transformer.h.0.mlp.c_fc', inF: 64, outF: 256 }], true, true, 'default'],
] as const) {
  test(`${name}: an adapter written to PEFT's naming loads, and merges to W + s B A (checked in float64)`, { skip }, () => {
    const out = tempDir('lora-hand');
    const merged = `${out}-merged`;
    try {
      const r = 2;
      const alpha = 3;
      const values = writePeftFolder(out, dir, layers.map((l) => ({ ...l })), r, alpha, fanInFanOut, rslora, adapterName);
      const s = rslora ? alpha / Math.sqrt(r) : alpha / r;
      mergeAdapter(dir, out, merged);
      const base = loadModel(dir, { dtype: 'float32', device: 'cpu' });
      const m = loadModel(merged, { dtype: 'float32', device: 'cpu' });
      try {
        const w0 = new Map(base.namedParameters());
        const w1 = new Map(m.namedParameters());
        for (const l of layers) {
          const { A, B } = values.get(l.module)!;
          const before = w0.get(`${l.module}.weight`)!.toArray() as number[][];
          const after = w1.get(`${l.module}.weight`)!.toArray() as number[][];
          let worst = 0;
          for (let o = 0; o < l.outF; o++) {
            for (let i = 0; i < l.inF; i++) {
              // B and A are stored in float32: their float32 values, multiplied and summed in float64.
              let d = 0;
              let mag = 0;
              for (let j = 0; j < r; j++) {
                const p = Math.fround(B[o]![j]!) * Math.fround(A[j]![i]!);
                d += p;
                mag += Math.abs(p);
              }
              const w = fanInFanOut ? before[i]![o]! : before[o]![i]!;
              const got = fanInFanOut ? after[i]![o]! : after[o]![i]!;
              // float32: r products and sums, the scale (itself rounded to float32), the addition: (r + 3) roundings
              // of at most EPS32 each, relative to |w| + s sum|B A| (the terms' magnitude, not the possibly cancelled sum).
              worst = Math.max(worst, Math.abs(got - (w + s * d)) / (Math.abs(w) + s * mag));
            }
          }
          assert.ok(worst <= (r + 3) * 2 ** -24, `${l.module}: merged weight off by ${worst} (relative)`);
        }
        // Other weights are untouched.
        for (const [n, t] of w0) if (!layers.some((l) => n === `${l.module}.weight`)) assert.ok(t.equal(w1.get(n)!), `${n} changed`);
        // Loaded (unmerged) adapters give the merged model's output.
        const lora = loadAdapter(base, out);
        try {
          assert.equal(lora.scaling, s);
          const a = logits(base);
          const b = logits(m);
          assert.ok(relErr(a, b) <= FWD32);
          a.dispose();
          b.dispose();
        } finally {
          lora.dispose();
        }
      } finally {
        base.dispose();
        m.dispose();
      }
      assert.ok(existsSync(join(merged, 'tokenizer.json')) && existsSync(join(merged, 'config.json')), 'a plain HF folder with the tokenizer');
      assert.throws(() => mergeAdapter(dir, out, merged), /exists/);
    } finally {
      removeDir(out);
      removeDir(merged);
    }
  });
}

test('bad adapter folders are errors naming the file and the field or key', { skip: skipLlama }, () => {
  const out = tempDir('lora-bad');
  const m = loadModel(llama, { dtype: 'float32', device: 'cpu' });
  try {
    const layers = [{ module: 'model.layers.0.self_attn.q_proj', inF: 64, outF: 64 }];
    const cfgPath = join(out, ADAPTER_CONFIG);
    writePeftFolder(out, llama, layers, 2, 4, false, false);
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    const withCfg = (patch: Record<string, unknown>, re: RegExp): void => {
      writeFileSync(cfgPath, JSON.stringify({ ...cfg, ...patch }));
      assert.throws(() => loadAdapter(m, out), (e: Error) => e instanceof AdapterError && e.message.includes(cfgPath) && re.test(e.message), JSON.stringify(patch));
    };
    withCfg({ peft_type: 'IA3' }, /peft_type: "IA3" is not supported/);
    // PEFT's variants: `sppo merge` merges them; as a live adapter each is refused, naming it.
    withCfg({ use_dora: true }, /use_dora \(DoRA\): sppo loads a plain LoRA as a live adapter; `sppo merge BASE .* OUT` merges this one/);
    withCfg({ bias: 'all' }, /bias "all": sppo loads a plain LoRA/);
    withCfg({ bias: 'some' }, /bias: must be "none", "all" or "lora_only", got "some"/);
    withCfg({ rank_pattern: { q_proj: 4 } }, /rank_pattern/);
    withCfg({ rank_pattern: { q_proj: 1.5 } }, /rank_pattern\.q_proj: must be an integer >= 1, got 1\.5/);
    withCfg({ alpha_pattern: { '(q_proj': 4 } }, /alpha_pattern\.\(q_proj: not a valid regular expression/);
    withCfg({ modules_to_save: ['lm_head'] }, /modules_to_save \["lm_head"\]/);
    withCfg({ trainable_token_indices: [1, -2] }, /trainable_token_indices: must be a list of token ids/);
    withCfg({ r: 0 }, /r: must be an integer >= 1/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, r: 3 }));
    assert.throws(() => loadAdapter(m, out), /lora_A\.weight' has shape \[2, 64\], expected \[3, 64\]/);
    writeFileSync(cfgPath, JSON.stringify(cfg));
    // A key of a module the model does not have, and a lone lora_A.
    const w = join(out, ADAPTER_WEIGHTS);
    const a = torch.zeros([2, 64]);
    const b = torch.zeros([64, 2]);
    torch.saveSafetensors(w, { 'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight': a, 'base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight': b });
    assert.throws(() => loadAdapter(m, out), /has no module 'model\.layers\.9\.self_attn\.q_proj'/);
    torch.saveSafetensors(w, { 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': a });
    assert.throws(() => loadAdapter(m, out), /has lora_A but no lora_B/);
    torch.saveSafetensors(w, { 'base_model.model.model.embed_tokens.lora_embedding_A': a });
    assert.throws(() => loadAdapter(m, out), /is a LoRA on an embedding layer: sppo applies a plain LoRA as a live adapter; `sppo merge` merges this one/);
    a.dispose();
    b.dispose();
    assert.throws(() => loadAdapter(m, join(out, 'nowhere')), /no adapter_config\.json/);
    assert.equal(m.namedParameters().length > 0, true);
  } finally {
    m.dispose();
    removeDir(out);
  }
});
