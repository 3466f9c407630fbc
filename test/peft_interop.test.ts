// Adapters written by PEFT itself (test/fixtures/peft, written by scripts/peft-fixtures.py with PEFT 0.21 on
// transformers 5.17, torch 2.13, init_lora_weights=False so B is not zero), loaded by sppo on the hf-tiny models:
// - every supported architecture (GPT-2's Conv1D too), with 'all-linear', use_rslora and a target_modules regex:
//   sppo's LoRA forward equals PeftModel's logits;
// - `sppo merge BASE ADAPTER OUT`, the command as users run it, gives the PeftModel's logits, and PEFT's
//   merge_and_unload()'s, for those and for PEFT's variants (DoRA on Linear and Conv1D, rank_pattern /
//   alpha_pattern, bias "all" / "lora_only", lora_bias, LoRA on embeddings, trainable_token_indices,
//   modules_to_save with tied embeddings untied or kept tied, a resized vocabulary with its tokenizer), whose trained
//   tensors besides A and B the fixture script moved off their initial values, so a merge that drops one fails;
// - the variants are refused as live adapters (loadAdapter), naming the field and `sppo merge`.
// Bound: both sides are float32 forwards of the same weights, summing in different orders (FWD32, relative to
// the largest |logit|); the adapters add rank-4 sums, far inside it. A missed layer, a wrong scaling
// (rsLoRA alpha/sqrt(r) vs alpha/r) or a transposed Conv1D delta changes the logits by O(1e-1) or more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel, saveModel } from '../src/models/registry.js';
import { configJsonText } from '../src/models/config.js';
import { loadAdapter, AdapterError, baseMismatch } from '../src/models/peft.js';
import { sppoCli, sppoFails, sppoOk } from './helpers/cli.js';
import { hubFiles, layoutCache } from './helpers/hub_fixture.js';
import { resolveModelDir } from '../src/hub/resolve.js';
import { adapterModelDir } from '../src/models/peft_merge.js';
import { resolveHubNames } from '../src/sppo/hub_names.js';
import { parseConfig } from '../src/sppo/config.js';
import { hfExtra, hfTiny, projectRoot } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { FWD32, reportError } from './helpers/tolerances.js';

const fixtures = join(projectRoot, 'test', 'fixtures', 'peft');

function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.float().sub(b.float()).abs().max().item() / Math.max(1e-30, b.float().abs().max().item()));
}

function expected(dir: string): { ids: torch.Tensor; logits: torch.Tensor; merged: torch.Tensor } {
  const { tensors } = torch.loadSafetensors(join(dir, 'expected.safetensors'));
  return { ids: tensors.get('ids')!, logits: tensors.get('logits')!, merged: tensors.get('merged_logits')! };
}

/** The variants sppo applies as live adapters; every fixture is merged. */
const LIVE = new Set(['plain', 'regex', 'rslora']);
const cases: { arch: string; variant: string }[] = [];
for (const arch of readdirSync(fixtures).filter((d) => statSync(join(fixtures, d)).isDirectory()).sort()) {
  for (const variant of readdirSync(join(fixtures, arch)).sort()) cases.push({ arch, variant });
}

test('the PEFT fixtures cover every supported architecture, the three plain variants, and PEFT\'s variants', () => {
  for (const arch of ['gemma2', 'gpt2', 'llama', 'mistral', 'qwen2']) {
    for (const v of LIVE) assert.ok(cases.some((c) => c.arch === arch && c.variant === v), `${arch}/${v}`);
  }
  for (const v of ['llama/dora', 'gpt2/dora', 'llama/pattern', 'qwen2/bias_all', 'gpt2/bias_lora_only', 'qwen2/lora_bias', 'llama/embedding', 'qwen2/embedding',
    'llama/trainable_tokens', 'qwen2/trainable_tokens', 'llama/modules_to_save', 'qwen2/modules_to_save', 'qwen2/tied_copies', 'llama/resized',
    'qwen3-moe/experts', 'mixtral/experts']) {
    assert.ok(cases.some((c) => `${c.arch}/${c.variant}` === v), v);
  }
});

for (const { arch, variant } of cases) {
  // The MoE bases are this repository's fixtures (scripts/hf-extra-fixtures.py).
  const base = existsSync(join(hfExtra, arch)) ? join(hfExtra, arch) : join(hfTiny, arch);
  const dir = join(fixtures, arch, variant);
  const skip = existsSync(join(base, 'model.safetensors')) ? false : `no fixture at ${base}`;

  if (LIVE.has(variant)) {
    test(`${arch}/${variant}: an adapter PEFT wrote gives PeftModel's logits in sppo`, { skip }, () => {
      const e = expected(dir);
      const m = loadModel(base, { dtype: 'float32', device: 'cpu' });
      const lora = loadAdapter(m, dir);
      try {
        const got = torch.noGrad(() => m.forward({ inputIds: e.ids }));
        const err = relErr(got, e.logits);
        reportError(`${arch}/${variant} LoRA vs PEFT`, err, FWD32);
        assert.ok(err <= FWD32, `relative error ${err} > ${FWD32}`);
        // The adapter matters: PEFT's logits are not the base model's.
        lora.dispose();
        const plain = torch.noGrad(() => m.forward({ inputIds: e.ids }));
        assert.ok(relErr(plain, e.logits) > 100 * FWD32, 'the adapter changes the logits');
        got.dispose();
        plain.dispose();
      } finally {
        m.dispose();
        for (const t of Object.values(e)) t.dispose();
      }
    });
  } else {
    test(`${arch}/${variant}: PEFT's variant is refused as a live adapter, naming the field and sppo merge`, { skip }, () => {
      const m = loadModel(base, { dtype: 'float32', device: 'cpu' });
      try {
        assert.throws(() => loadAdapter(m, dir), (e: Error) => e instanceof AdapterError && /sppo merge/.test(e.message) && /(adapter_config\.json: (rank_pattern|bias|lora_bias|use_dora|modules_to_save|trainable_token_indices|target_parameters))|tensor '.*' is a LoRA on an embedding layer/.test(e.message));
      } finally {
        m.dispose();
      }
    });
  }

  test(`${arch}/${variant}: \`sppo merge\` gives the PeftModel's logits${LIVE.has(variant) ? " and merge_and_unload()'s" : ''}`, { skip }, () => {
    const e = expected(dir);
    const { tensors } = torch.loadSafetensors(join(dir, 'expected.safetensors'));
    const peftTied = tensors.get('merged_tied')!.item() === 1;
    const peftVocab = tensors.get('merged_vocab')!.item();
    for (const t of tensors.values()) t.dispose();
    const tmp = tempDir('peft-merge-');
    try {
      const out = join(tmp, 'merged');
      const r = sppoOk(['merge', base, dir, out, '--dtype', 'float32']);
      assert.match(r.stderr, /merged into/);
      assert.ok(existsSync(join(out, 'config.json')), 'the merged folder has its config');
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      const m = loadModel(out, { dtype: 'float32', device: 'cpu' });
      try {
        const got = torch.noGrad(() => m.forward({ inputIds: e.ids }));
        const err = relErr(got, e.logits);
        reportError(`${arch}/${variant} merge vs PeftModel`, err, FWD32);
        assert.ok(err <= FWD32, `relative error against the PeftModel ${err} > ${FWD32}`);
        // PEFT's merge_and_unload() computes the same, but for a LoRA on tied embeddings, which it adds to the
        // shared matrix (moving the output layer too); sppo unties them instead.
        const peftMergeMoves = relErr(e.merged, e.logits) > 100 * FWD32;
        assert.equal(peftMergeMoves, `${arch}/${variant}` === 'qwen2/embedding', 'PEFT\'s merge and PeftModel agree but for the tied embedding LoRA');
        if (!peftMergeMoves) assert.ok(relErr(got, e.merged) <= FWD32, 'merge_and_unload()\'s logits');
        const tied = (cfg.tie_word_embeddings ?? m.config.tieWordEmbeddings) as boolean;
        assert.equal(tied, peftMergeMoves ? false : peftTied, 'tie_word_embeddings as PEFT\'s merged model has it');
        assert.equal(m.config.vocabSize, peftVocab, 'vocab_size');
        got.dispose();
      } finally {
        m.dispose();
      }
      if (variant === 'resized') {
        assert.match(r.stderr, /vocabulary 512 -> 520; tokenizer files from the adapter folder/);
        assert.ok(readFileSync(join(out, 'tokenizer.json'), 'utf8').includes('<|added_7|>'), 'the tokenizer with the added tokens');
        assert.ok(existsSync(join(out, 'generation_config.json')), "the base's generation_config.json");
      }
    } finally {
      removeDir(tmp);
      for (const t of Object.values(e)) t.dispose();
    }
  });
}

test('saveModel keeps float fields floats in config.json (transformers 5 refuses `"final_logit_softcapping": 30`)', { skip: existsSync(join(hfTiny, 'gemma2', 'model.safetensors')) ? false : 'no gemma2 fixture' }, () => {
  const src = readFileSync(join(hfTiny, 'gemma2', 'config.json'), 'utf8');
  assert.match(src, /"final_logit_softcapping": 30\.0/, 'the fixture writes the float as 30.0');
  const m = loadModel(join(hfTiny, 'gemma2'), { dtype: 'float32', device: 'cpu' });
  const tmp = tempDir('config-floats-');
  try {
    saveModel(m, join(tmp, 'out'));
    const text = readFileSync(join(tmp, 'out', 'config.json'), 'utf8');
    for (const k of ['final_logit_softcapping', 'attn_logit_softcapping']) assert.match(text, new RegExp(`"${k}": \\d+\\.0\\b`), k);
    // Integer fields stay integers, and the file parses to the same values.
    assert.match(text, /"hidden_size": 64,/);
    const a = JSON.parse(text) as Record<string, unknown>;
    assert.equal(a.final_logit_softcapping, 30);
  } finally {
    m.dispose();
    removeDir(tmp);
  }
});

test('configJsonText: float literals of the source stay floats; integers stay integers', () => {
  const text = configJsonText({ a: 2, b: 3, rope_theta: 10000, rms_norm_eps: 1e-6, nested: { factor: 8, n: 4 }, list: [1, 2] }, '{"a": 2.0, "b": 3}');
  const out = JSON.parse(text) as Record<string, unknown>;
  assert.deepEqual(out, { a: 2, b: 3, rope_theta: 10000, rms_norm_eps: 1e-6, nested: { factor: 8, n: 4 }, list: [1, 2] });
  assert.match(text, /"a": 2\.0,/);
  assert.match(text, /"b": 3,/);
  assert.match(text, /"rope_theta": 10000\.0,/);
  assert.match(text, /"factor": 8\.0,/);
  assert.match(text, /"n": 4\n/);
});

test('adapter_config.json: a base-changing initialisation (PiSSA saved unconverted), aLoRA and any unknown option with a value are refused naming the field; neutral values and metadata pass; a base named otherwise is warned of', { skip: existsSync(join(hfTiny, 'llama', 'model.safetensors')) ? false : 'no llama fixture' }, () => {
  const tmp = tempDir('peft-fields-');
  const m = loadModel(join(hfTiny, 'llama'), { dtype: 'float32', device: 'cpu' });
  try {
    const variant = (name: string, change: Record<string, unknown>): string => {
      const dir = join(tmp, name);
      mkdirSync(dir);
      copyFileSync(join(fixtures, 'llama', 'plain', 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
      const cfg = JSON.parse(readFileSync(join(fixtures, 'llama', 'plain', 'adapter_config.json'), 'utf8'));
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...change }));
      return dir;
    };
    assert.throws(() => loadAdapter(m, variant('pissa', { init_lora_weights: 'pissa' })), /init_lora_weights: "pissa" changes the base weights at initialisation.*path_initial_model_for_weight_conversion/);
    assert.throws(() => loadAdapter(m, variant('alora', { alora_invocation_tokens: [5, 6] })), /alora_invocation_tokens: \[5,6\] is not supported by sppo/);
    assert.throws(() => loadAdapter(m, variant('future', { some_future_option: { enabled: true } })), /some_future_option: \{"enabled":true\} is not supported/);
    loadAdapter(m, variant('neutral', { some_future_option: { enabled: false, ranks: [] }, init_lora_weights: 'gaussian', velora_config: { rank: 2 } })).dispose();
    // The base it names against the one given (a Hub cache snapshot counts as its repository).
    assert.equal(baseMismatch('meta-llama/Meta-Llama-3-8B', '/data/hub/models--meta-llama--Meta-Llama-3-8B/snapshots/abc123'), undefined);
    assert.equal(baseMismatch('meta-llama/Meta-Llama-3-8B', '/models/Meta-Llama-3-8B'), undefined);
    assert.match(baseMismatch('meta-llama/Meta-Llama-3-8B', '/models/Mistral-7B-v0.1') ?? '', /trained on "meta-llama\/Meta-Llama-3-8B".*merged into \/models\/Mistral-7B-v0.1/);
    // sppo merge goes on (the shapes fit), and says so.
    const r = sppoOk(['merge', join(hfTiny, 'llama'), variant('named', { base_model_name_or_path: 'mistralai/Mistral-7B-v0.1' }), join(tmp, 'out')]);
    assert.match(r.stderr, /SPPO_ADAPTER_BASE.*trained on "mistralai\/Mistral-7B-v0.1"/);
    assert.ok(existsSync(join(tmp, 'out', 'model.safetensors')));
  } finally {
    m.dispose();
    removeDir(tmp);
  }
});

test('an adapter folder or Hub repository given as a model is its base with the adapter merged, once, into sppo\'s cache: the PeftModel\'s logits; sppo generate --model ADAPTER; sppo merge ADAPTER OUT', { skip: existsSync(join(hfTiny, 'llama', 'model.safetensors')) ? false : 'no llama fixture' }, async () => {
  const tmp = tempDir('peft-as-model-');
  try {
    // A Hub cache holding the fixture's base under the name the adapter gives (hf-tiny/llama) and the adapter (DoRA).
    const hub = join(tmp, 'hub');
    layoutCache(hub, 'hf-tiny/llama', hubFiles(join(hfTiny, 'llama'), (p) => !p.startsWith('expected')));
    const { snapshot } = layoutCache(hub, 'tiny-org/llama-dora', hubFiles(join(fixtures, 'llama', 'dora'), (p) => !p.startsWith('expected')));
    const cache = join(tmp, 'sppo-cache', 'merged');
    const resolveBase = (name: string): Promise<string> => resolveModelDir(name, { cacheDir: hub, offline: true });
    const dir = await adapterModelDir(snapshot, { resolveBase, cacheDir: cache });
    const e = expected(join(fixtures, 'llama', 'dora'));
    const m = loadModel(dir, { dtype: 'float32', device: 'cpu' });
    try {
      const got = torch.noGrad(() => m.forward({ inputIds: e.ids }));
      const err = relErr(got, e.logits);
      reportError('llama/dora as --model vs PeftModel', err, FWD32);
      assert.ok(err <= FWD32, `relative error ${err} > ${FWD32}`);
      got.dispose();
    } finally {
      m.dispose();
      for (const t of Object.values(e)) t.dispose();
    }
    // Given again: the same folder, not merged again.
    const logs: string[] = [];
    assert.equal(await adapterModelDir(snapshot, { resolveBase, cacheDir: cache, log: (l) => logs.push(l) }), dir);
    assert.match(logs.join('\n'), /using its merge in/);
    assert.equal(readdirSync(cache).length, 1);
    // A local copy whose base is a path relative to the adapter's folder (as sppo run's adapters name theirs).
    const local = join(tmp, 'runs', 'adapter');
    mkdirSync(local, { recursive: true });
    copyFileSync(join(snapshot, 'adapter_model.safetensors'), join(local, 'adapter_model.safetensors'));
    const cfg = JSON.parse(readFileSync(join(snapshot, 'adapter_config.json'), 'utf8'));
    writeFileSync(join(local, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: relative(local, join(hfTiny, 'llama')) }));
    const noHub = (): Promise<string> => Promise.reject(new Error('not a Hub name here'));
    const dir2 = await adapterModelDir(local, { resolveBase: noHub, cacheDir: cache });
    assert.notEqual(dir2, dir);
    assert.deepEqual(readFileSync(join(dir2, 'model.safetensors')), readFileSync(join(dir, 'model.safetensors')), 'the same merge');
    // A run's model: resolved before the run starts, to the same merge.
    const saved = { SPPO_CACHE: process.env.SPPO_CACHE, HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE };
    Object.assign(process.env, { SPPO_CACHE: join(tmp, 'sppo-cache'), HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' });
    try {
      const run = await resolveHubNames(parseConfig({ model: 'tiny-org/llama-dora', prompts: '/p.jsonl', runDir: '/r', judge: { kind: 'pairrm', dir: 'x' } }), { judges: false });
      assert.equal(run.model, dir);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    // Bad bases are errors naming the file and the field, and how to give the base instead.
    writeFileSync(join(local, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: null }));
    await assert.rejects(adapterModelDir(local, { resolveBase: noHub, cacheDir: cache }), /adapter_config\.json: base_model_name_or_path: not set.*sppo merge BASE .* OUT/);
    writeFileSync(join(local, 'adapter_config.json'), JSON.stringify({ ...cfg, base_model_name_or_path: 'hf-tiny/llama', revision: 'v9' }));
    await assert.rejects(adapterModelDir(local, { resolveBase, cacheDir: cache }), /adapter_config\.json: base_model_name_or_path: model hf-tiny\/llama@v9: revision 'v9' is not in the Hugging Face cache.*; or give the base: sppo merge BASE/);

    // The CLI, as users run it: the Hub adapter as --model gives what the merged folder gives.
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1', SPPO_CACHE: join(tmp, 'cli-cache') };
    const merged = join(tmp, 'merged');
    const mr = sppoCli(['merge', 'tiny-org/llama-dora', merged], { env });
    assert.equal(mr.status, 0, mr.stderr);
    const prompts = join(tmp, 'p.jsonl');
    writeFileSync(prompts, '{"prompt": "Hello there"}\n{"prompt": "Sort 3 1 2"}\n');
    const args = ['--prompts', prompts, '-n', '2', '--max-new-tokens', '6', '--seed', '3', '--device', 'cpu'];
    const a = sppoCli(['generate', '--model', merged, ...args, '--out', join(tmp, 'a.jsonl')], { env });
    assert.equal(a.status, 0, a.stderr);
    const b = sppoCli(['generate', '--model', 'tiny-org/llama-dora', ...args, '--out', join(tmp, 'b.jsonl')], { env });
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /--model: .* is a PEFT adapter on .*models--hf-tiny--llama.*: merged into .*cli-cache\/merged\/.*\(\d+ LoRA layers \(DoRA\)/);
    assert.equal(readFileSync(join(tmp, 'b.jsonl'), 'utf8'), readFileSync(join(tmp, 'a.jsonl'), 'utf8'));
    const c = sppoCli(['generate', '--model', 'tiny-org/llama-dora', ...args, '--out', join(tmp, 'c.jsonl')], { env });
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stderr, /using its merge in/);
    assert.equal(readFileSync(join(tmp, 'c.jsonl'), 'utf8'), readFileSync(join(tmp, 'a.jsonl'), 'utf8'));
    // Without the base at hand: a usage error naming the field.
    const d = sppoCli(['generate', '--model', local, ...args, '--out', join(tmp, 'd.jsonl')], { env: { ...env, HF_HUB_CACHE: join(tmp, 'empty') } });
    assert.equal(d.status, 1, d.stderr);
    assert.match(d.stderr, /--model: .*adapter_config\.json: base_model_name_or_path: .*hf-tiny\/llama@v9.*sppo merge BASE/);
    assert.ok(!existsSync(join(tmp, 'd.jsonl')));
  } finally {
    removeDir(tmp);
  }
});

test('sppo merge refuses what it cannot merge faithfully, naming the tensor or field, and writes nothing: a LoRA bias on a layer without one, a trainable token beyond the vocabulary, a resized embedding without its output layer, untied embeddings where sppo ties them', { skip: existsSync(join(hfTiny, 'gemma2', 'model.safetensors')) ? false : 'no hf-tiny fixtures' }, () => {
  const tmp = tempDir('peft-merge-refused-');
  /** A copy of a fixture's adapter with its tensors renamed or dropped (`rename` returns undefined to drop) and its config changed. */
  const variant = (name: string, from: string, change: Record<string, unknown>, rename: (k: string) => string | undefined = (k) => k, add: [string, torch.Tensor][] = []): string => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const { tensors } = torch.loadSafetensors(join(fixtures, from, 'adapter_model.safetensors'));
    const kept = new Map<string, torch.Tensor>(add);
    for (const [k, t] of tensors) {
      const n = rename(k);
      if (n) kept.set(n, t);
    }
    torch.saveSafetensors(join(dir, 'adapter_model.safetensors'), kept, { format: 'pt' });
    for (const t of [...tensors.values(), ...add.map(([, t]) => t)]) t.dispose();
    const cfg = JSON.parse(readFileSync(join(fixtures, from, 'adapter_config.json'), 'utf8'));
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...change }));
    return dir;
  };
  const refused = (arch: string, dir: string, message: RegExp): void => {
    const out = join(dir, '..', `${dir.split('/').pop()}-merged`);
    sppoFails(['merge', join(hfTiny, arch), dir, out], 1, message);
    assert.ok(!existsSync(out), 'nothing is written');
  };
  try {
    // lora_bias on o_proj, which has no bias in Qwen2 (PEFT refuses this merge too).
    refused('qwen2', variant('lora-bias-no-bias', 'qwen2/lora_bias', { target_modules: ['o_proj'] }, (k) => (k.includes('q_proj') ? k.replace('q_proj', 'o_proj') : undefined)),
      /'model\.layers\.\d\.self_attn\.o_proj\.lora_B\.bias' \(lora_bias\) cannot be merged: the base layer .* has no bias/);
    refused('llama', variant('token-beyond', 'llama/trainable_tokens', { trainable_token_indices: [3, 7, 600] }),
      /adapter_config\.json: trainable_token_indices: token 600 is beyond 'model\.embed_tokens\.weight' \(512 rows\)/);
    refused('llama', variant('resized-no-head', 'llama/resized', {}, (k) => (k.includes('lm_head') ? undefined : k)),
      /the input embeddings have 520 rows and the output layer 512: a resized vocabulary must be saved for both/);
    const g = loadModel(join(hfTiny, 'gemma2'), { dtype: 'float32', device: 'cpu' });
    const [rows, dim] = [g.config.vocabSize, g.config.hiddenSize];
    g.dispose();
    refused('gemma2', variant('gemma2-untied', 'gemma2/plain', { modules_to_save: ['embed_tokens'] }, (k) => k, [['base_model.model.model.embed_tokens.weight', torch.randn([rows, dim])]]),
      /unties the input embeddings and the output layer .* which Gemma2ForCausalLM ties in sppo: not supported; train with ensure_weight_tying=True/);
  } finally {
    removeDir(tmp);
  }
});
