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
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel, saveModel } from '../src/models/registry.js';
import { configJsonText } from '../src/models/config.js';
import { loadAdapter, AdapterError, baseMismatch } from '../src/models/peft.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { hfTiny, projectRoot } from './helpers/fixtures.js';
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
for (const arch of readdirSync(fixtures).filter((d) => existsSync(join(fixtures, d, 'plain'))).sort()) {
  for (const variant of readdirSync(join(fixtures, arch)).sort()) cases.push({ arch, variant });
}

test('the PEFT fixtures cover every supported architecture, the three plain variants, and PEFT\'s variants', () => {
  for (const arch of ['gemma2', 'gpt2', 'llama', 'mistral', 'qwen2']) {
    for (const v of LIVE) assert.ok(cases.some((c) => c.arch === arch && c.variant === v), `${arch}/${v}`);
  }
  for (const v of ['llama/dora', 'gpt2/dora', 'llama/pattern', 'qwen2/bias_all', 'gpt2/bias_lora_only', 'qwen2/lora_bias', 'llama/embedding', 'qwen2/embedding',
    'llama/trainable_tokens', 'qwen2/trainable_tokens', 'llama/modules_to_save', 'qwen2/modules_to_save', 'qwen2/tied_copies', 'llama/resized']) {
    assert.ok(cases.some((c) => `${c.arch}/${c.variant}` === v), v);
  }
});

for (const { arch, variant } of cases) {
  const base = join(hfTiny, arch);
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
        assert.throws(() => loadAdapter(m, dir), (e: Error) => e instanceof AdapterError && /sppo merge/.test(e.message) && /(adapter_config\.json: (rank_pattern|bias|lora_bias|use_dora|modules_to_save|trainable_token_indices))|tensor '.*' is a LoRA on an embedding layer/.test(e.message));
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

test('an adapter folder given where a model is expected says to merge it first', { skip: existsSync(join(hfTiny, 'llama', 'model.safetensors')) ? false : 'no llama fixture' }, () => {
  sppoFails(['generate', '--model', join(fixtures, 'llama', 'plain'), '--prompts', 'p.jsonl', '--out', 'o.jsonl'], 2, /is a PEFT adapter \(adapter_config\.json\), not a model: merge it into its base first, e\.g\. sppo merge hf-tiny\/llama /);
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
