// Loading and saving model folders: save-then-load reproduces the logits bit for bit (one file and sharded),
// errors name the architecture or the tensor and both shapes, dtypes chosen at load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel, readConfig, parseConfig, createModel, UnknownArchitectureError } from '../src/models/index.js';
import { WeightError } from '../src/nn/module.js';
import { noGrad, saveWeights, SafetensorsFile, tidy, type Tensor } from '../src/torch/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { fixtureRoot, modelFolders, removeDir, tempDir } from './text_helpers.js';
import { transformers4ModelCopy } from './conformance_helpers.js';
import { fixtureCases, hfExtra } from './helpers/fixtures.js';

const folders = modelFolders().filter((f) => existsSync(join(fixtureRoot, f, 'model.safetensors')));
const noFixtures = folders.length === 0 ? `no model fixtures at ${fixtureRoot} (set SPPO_HF_FIXTURES)` : false;

function inputs(dir: string): { inputIds: Tensor; attentionMask: Tensor; positionIds: Tensor } {
  const ex = SafetensorsFile.open(join(dir, 'expected.safetensors'));
  return { inputIds: ex.load('input_ids'), attentionMask: ex.load('attention_mask'), positionIds: ex.load('position_ids') };
}

for (const { name, dir: src, skip } of fixtureCases(['config.json', 'tokenizer.json', 'model.safetensors', 'expected.safetensors'], fixtureRoot)) {
  test(`save then load reproduces the logits bit for bit: ${name}`, { skip }, () => {
    const out = tempDir('save');
    const sharded = tempDir('save-sharded');
    try {
      const model = loadModel(src);
      const files = saveModel(model, out);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
        assert.ok(existsSync(join(out, f)), `${f} written (${files.join(', ')})`);
      }
      // Sharded: a limit below the model's size gives several files and an index.
      saveModel(model, sharded, { maxShardBytes: 100_000 });
      assert.ok(existsSync(join(sharded, 'model.safetensors.index.json')));
      assert.ok(readdirSync(sharded).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 1);
      // The config is the original, and the saved tensors carry HF names (tied heads left out, as transformers).
      // (src/models/transformers4.ts): with transformers 5's rope_parameters, the top-level rope_theta and rope_scaling
      // that transformers 4 reads are written beside it, and read alone they are the same rope.
      const cfgIn = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
      const cfgOut = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      const { rope_theta: theta, rope_scaling: scaling, ...rest } = cfgOut;
      if (cfgIn.rope_parameters && cfgIn.rope_theta === undefined) {
        assert.deepEqual(rest, cfgIn);
        assert.equal(theta, cfgIn.rope_parameters.rope_theta);
        assert.equal(scaling === undefined, (cfgIn.rope_parameters.rope_type ?? 'default') === 'default', 'rope_scaling only for a rope type other than default');
        const { rope_parameters: _, ...v4 } = cfgOut;
        const v4Dir = tempDir('v4-config');
        try {
          writeFileSync(join(v4Dir, 'config.json'), JSON.stringify(v4));
          assert.deepEqual(readConfig(v4Dir).rope, readConfig(src).rope, 'the rope transformers 4 reads');
        } finally {
          removeDir(v4Dir);
        }
      } else assert.deepEqual(cfgOut, cfgIn);
      // tokenizer_config.json names a class transformers 4 has too.
      const tcIn = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8'));
      const tcOut = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
      assert.equal(tcOut.tokenizer_class, tcIn.tokenizer_class === 'TokenizersBackend' ? 'PreTrainedTokenizerFast' : tcIn.tokenizer_class);
      const namesIn = SafetensorsFile.open(join(src, 'model.safetensors')).names.sort();
      const namesOut = SafetensorsFile.open(join(out, 'model.safetensors')).names.sort();
      assert.deepEqual(namesOut, namesIn);
      const reloaded = loadModel(out);
      const reloadedSharded = loadModel(sharded);
      tidy(() => {
        const x = inputs(src);
        const a = model.forward(x);
        assert.ok(a.equal(reloaded.forward(x)), 'single file');
        assert.ok(a.equal(reloadedSharded.forward(x)), 'sharded');
      });
      // The tokenizer of the saved folder is the original's.
      const t1 = Tokenizer.fromFolder(src);
      const t2 = Tokenizer.fromFolder(out);
      assert.deepEqual(t2.encode('Hello, world! café'), t1.encode('Hello, world! café'));
      model.dispose();
      reloaded.dispose();
      reloadedSharded.dispose();
    } finally {
      removeDir(out);
      removeDir(sharded);
    }
  });
}

test('transformers 4 and 5 layouts give the same configuration', { skip: noFixtures }, () => {
  for (const name of folders) {
    const v4 = transformers4ModelCopy(join(fixtureRoot, name));
    try {
      const a = readConfig(join(fixtureRoot, name));
      const b = readConfig(v4);
      for (const k of ['rope', 'layerTypes', 'slidingWindow', 'dtype', 'tieWordEmbeddings', 'qkvBias', 'numKvHeads', 'headDim'] as const) {
        assert.deepEqual(b[k], a[k], `${name}: ${k}`);
      }
    } finally {
      removeDir(v4);
    }
  }
});

test('an unknown architecture is an error naming it', () => {
  assert.throws(() => createModel(parseConfig({ architectures: ['FalconForCausalLM'], vocab_size: 8, hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 8 })),
    (e: Error) => e instanceof UnknownArchitectureError && /FalconForCausalLM/.test(e.message) && /LlamaForCausalLM/.test(e.message));
  assert.throws(() => parseConfig({ model_type: 'llama' }), /architectures/);
});

test('Gemma 2 configs that leave out query_pre_attn_scalar and the soft-capping fields get Gemma2Config\'s defaults (256, 50, 30); null turns capping off', () => {
  const base = { architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', vocab_size: 8, hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 2, intermediate_size: 8 };
  const d = parseConfig(base);
  assert.deepEqual([d.queryPreAttnScalar, d.attnLogitSoftcapping, d.finalLogitSoftcapping], [256, 50, 30]);
  const off = parseConfig({ ...base, attn_logit_softcapping: null, final_logit_softcapping: null, query_pre_attn_scalar: 4 });
  assert.deepEqual([off.queryPreAttnScalar, off.attnLogitSoftcapping, off.finalLogitSoftcapping], [4, null, null]);
  // Not for other families: a Llama config has no soft-capping.
  assert.equal(parseConfig({ ...base, architectures: ['LlamaForCausalLM'], model_type: 'llama' }).attnLogitSoftcapping, null);
});

test('a missing or mismatched tensor is an error naming it and both shapes', { skip: noFixtures || !folders.includes('llama') }, () => {
  const src = join(fixtureRoot, 'llama');
  const dir = tempDir('bad-weights');
  try {
    for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(src, f), join(dir, f));
    const st = SafetensorsFile.open(join(src, 'model.safetensors'));
    const all = new Map(st.names.map((n) => [n, st.load(n)] as const));
    // Missing.
    const missing = new Map(all);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    saveWeights(dir, missing);
    assert.throws(() => loadModel(dir), (e: Error) => e instanceof WeightError && /model\.layers\.1\.mlp\.up_proj\.weight/.test(e.message) && /\[176, 64\]/.test(e.message));
    // Mismatched shape.
    const bad = new Map(all);
    bad.set('model.layers.0.self_attn.k_proj.weight', tidy(() => all.get('model.layers.0.self_attn.k_proj.weight')!.narrow(0, 0, 16).contiguous()));
    saveWeights(dir, bad);
    assert.throws(() => loadModel(dir), (e: Error) => e instanceof WeightError && /k_proj\.weight/.test(e.message) && /\[16, 64\]/.test(e.message) && /\[32, 64\]/.test(e.message));
    // Unexpected extra tensor.
    const extra = new Map(all);
    extra.set('model.layers.9.foo.weight', all.get('model.norm.weight')!);
    saveWeights(dir, extra);
    assert.throws(() => loadModel(dir), /model\.layers\.9\.foo\.weight/);
    // Unknown architecture in a folder.
    saveWeights(dir, all);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.architectures = ['MambaForCausalLM'];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadModel(dir), /MambaForCausalLM/);
    for (const t of all.values()) t.dispose();
  } finally {
    removeDir(dir);
  }
});

test('dtype at load: bfloat16 and float16 models close to float32', { skip: noFixtures }, () => {
  for (const name of folders) {
    const dir = join(fixtureRoot, name);
    const f32 = loadModel(dir);
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const m = loadModel(dir, { dtype });
      assert.equal(m.dtype, dtype);
      assert.ok(m.parameters().every((p) => p.dtype === dtype));
      // libtorch has no float16 matrix products on the CPU: float16 runs on GPUs only.
      if (dtype === 'float16' && m.device === 'cpu') {
        m.dispose();
        continue;
      }
      // The reference is the same model in float32 with its weights rounded to the dtype (m's weights,
      // widened exactly), so only the rounding of activations differs. Bound: unit roundoff u = 2^-8
      // (bfloat16, 8 significand bits) or 2^-11 (float16). Each layer rounds its activations to the dtype
      // about 10 times (norm, q/k/v, scores, softmax, attention out, MLP in / act / out, 2 residual adds),
      // each a relative error <= u; through L layers plus embedding / head that is 10 * (L + 1) roundings,
      // and a norm or a softmax can amplify a perturbation by up to ~2 (relative to the largest |logit|):
      // worst case err <= 2 * 10 * (L + 1) * u (30u = 0.117 at L = 2; measured 0.01-0.03 on AVX-512/AVX2/default
      // ATen kernels, 0.075 vs unrounded weights on an AMD EPYC). The errors are unbiased so they usually add
      // in quadrature, well under the bound; a wrong sign, a missing scale or a transposed weight changes the
      // logits by O(1) of their scale and still fails. Against the unrounded float32 weights the weight
      // rounding (relative u / 2 per weight, ~7 matrices a layer) adds at most as much again: twice the limit.
      const depth = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { num_hidden_layers?: number; n_layer?: number });
      const layers = depth.num_hidden_layers ?? depth.n_layer ?? 2;
      const limit = 2 * 10 * (layers + 1) * (dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11);
      const ref = loadModel(dir);
      const named = new Map(m.namedParameters());
      for (const [n, p] of ref.namedParameters()) noGrad(() => p.copy_(named.get(n)!.float()));
      tidy(() => {
        const x = inputs(dir);
        const a = ref.forward(x);
        const b = m.forward(x);
        assert.equal(b.dtype, dtype);
        const mask = x.attentionMask.unsqueeze(-1).float();
        const err = b.float().sub(a).mul(mask).abs().max().item() / a.abs().max().item();
        // The rounded weights move the model by at most the same order: a loose sanity check against float32.
        const drift = b.float().sub(f32.forward(x)).mul(mask).abs().max().item() / a.abs().max().item();
        if (process.env.SPPO_PRINT_ERRORS) console.log(`${name} ${dtype}: activation-rounding error ${err} (limit ${limit}), vs float32 ${drift}`);
        assert.ok(err < limit, `${name} ${dtype}: relative error ${err} (limit ${limit})`);
        assert.ok(drift < 2 * limit, `${name} ${dtype}: relative error against float32 weights ${drift} (limit ${2 * limit})`);
      });
      ref.dispose();
      m.dispose();
    }
    f32.dispose();
  }
});

test('a bfloat16 model saves as bfloat16 and reloads bit for bit', { skip: noFixtures || !folders.includes('qwen2') }, () => {
  const out = tempDir('save-bf16');
  try {
    const m = loadModel(join(fixtureRoot, 'qwen2'), { dtype: 'bfloat16' });
    saveModel(m, out);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.dtype, 'bfloat16');
    const r = loadModel(out);
    assert.equal(r.dtype, 'bfloat16');
    tidy(() => {
      const x = inputs(join(fixtureRoot, 'qwen2'));
      assert.ok(m.forward(x).equal(r.forward(x)));
    });
  } finally {
    removeDir(out);
  }
});

test('tokenizer_config.json as both transformers generations read it: a transformers 5 class and extra_special_tokens list rewritten, a transformers 4 one kept', async () => {
  const { portableTokenizerConfig, portableConfig } = await import('../src/models/transformers4.js');
  assert.deepEqual(portableTokenizerConfig({ backend: 'tokenizers', tokenizer_class: 'TokenizersBackend', extra_special_tokens: ['<a>', '<b>'], eos_token: '</s>' }), {
    tokenizer_class: 'PreTrainedTokenizerFast', additional_special_tokens: ['<a>', '<b>'], eos_token: '</s>',
  });
  const v4 = { tokenizer_class: 'LlamaTokenizer', additional_special_tokens: ['<a>'], extra_special_tokens: { image_token: '<img>' } };
  assert.deepEqual(portableTokenizerConfig(v4), v4);
  // Per-layer-type rope parameters (Gemma 3's): transformers 4's form, the full layers' rope_theta and rope_scaling, the sliding layers' rope_local_base_freq.
  const perType = { rope_parameters: { full_attention: { rope_theta: 1e6, rope_type: 'linear', factor: 8 }, sliding_attention: { rope_theta: 1e4, rope_type: 'default' } } };
  assert.deepEqual(portableConfig(perType), { ...perType, rope_theta: 1e6, rope_scaling: { rope_type: 'linear', factor: 8 }, rope_local_base_freq: 1e4 });
  // Qwen3-MoE's expert count as transformers 5 writes it (num_local_experts) and as 4.x reads it (num_experts); Mixtral's name is both's.
  assert.deepEqual(portableConfig({ model_type: 'qwen3_moe', num_local_experts: 8 }), { model_type: 'qwen3_moe', num_local_experts: 8, num_experts: 8 });
  assert.deepEqual(portableConfig({ model_type: 'mixtral', num_local_experts: 8 }), { model_type: 'mixtral', num_local_experts: 8 });
  assert.deepEqual(portableConfig({ rope_parameters: { rope_type: 'linear', rope_theta: 1e4, factor: 2 } }), { rope_parameters: { rope_type: 'linear', rope_theta: 1e4, factor: 2 }, rope_theta: 1e4, rope_scaling: { rope_type: 'linear', factor: 2 } });
});

test('a multimodal Gemma 3 folder (Gemma3ForConditionalGeneration): its language model is read, with a warning, and saved as a text-only Gemma3ForCausalLM folder that gives the same logits', async () => {
  const src = join(hfExtra, 'gemma3-mm');
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => {
    if (w.code === 'SPPO_TEXT_ONLY') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  const out = tempDir('gemma3-text');
  try {
    const m = loadModel(src, { dtype: 'float32', device: 'cpu' });
    // The trimmed text_config's missing fields are Gemma3TextConfig's defaults; the ones it gives are read.
    assert.equal(m.config.architecture, 'Gemma3ForCausalLM');
    assert.equal(m.config.multimodalSource, 'Gemma3ForConditionalGeneration');
    assert.equal(m.config.hiddenSize, 64);
    assert.equal(m.config.normEps, 1e-6);
    assert.deepEqual(m.config.layerTypes, ['sliding_attention', 'full_attention', 'sliding_attention']);
    saveModel(m, out);
    const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(saved.architectures, ['Gemma3ForCausalLM']);
    assert.equal(saved.model_type, 'gemma3_text');
    assert.equal(saved.text_config, undefined);
    assert.equal(saved.hidden_activation, 'gelu_pytorch_tanh', 'the defaults written out');
    const names = SafetensorsFile.open(join(out, 'model.safetensors')).names;
    assert.ok(names.includes('model.embed_tokens.weight') && !names.some((n) => /vision|language_model/.test(n)));
    const back = loadModel(out, { dtype: 'float32', device: 'cpu' });
    const ids = { inputIds: SafetensorsFile.open(join(src, 'expected.safetensors')).load('input_ids') };
    const [a, b] = [noGrad(() => m.forward(ids)), noGrad(() => back.forward(ids))];
    assert.equal(tidy(() => a.sub(b).abs().max().item()), 0, 'bit for bit');
    for (const t of [a, b, ids.inputIds]) t.dispose();
    m.dispose();
    back.dispose();
    await new Promise((r) => setImmediate(r));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /Gemma3ForConditionalGeneration: sppo reads its language model \(Gemma3ForCausalLM\) and not its vision tower; the checkpoints it writes from it are text-only/);
  } finally {
    process.off('warning', onWarning);
    removeDir(out);
  }
});
