// sppo's files read by the real Python libraries (PEFT 0.21, transformers 5.17, torch 2.13; then the same checks
// under transformers 4.57, the last 4.x), on every supported architecture of ../shared/fixtures/hf-tiny (llama,
// llama3-rope-scaling, qwen2, mistral, gemma2, gpt2; and test/fixtures/hf-extra's qwen3, gemma3, smollm3, olmo2, phi3, phi3-long, gemma3-mm (saved text-only), qwen3-moe and mixtral; transformers 5 layout, which sppo's files must also carry in
// the form 4.x reads: src/models/transformers4.ts):
//   - a LoRA adapter sppo writes (saveAdapter: random A and B on 'all-linear', r 4, and rsLoRA on a list of
//     modules) loads with PeftModel.from_pretrained and gives sppo's LoRA logits;
//   - a checkpoint sppo writes (saveModel: float32, bfloat16, and float32 sharded at 128 kB) loads with
//     AutoModelForCausalLM.from_pretrained and gives sppo's logits (bfloat16: both sides' bfloat16 forwards,
//     compared against sppo's float32 logits within a bfloat16 bound);
//   - the tokenizer files sppo copies load with AutoTokenizer and encode a few texts to sppo's ids;
//   - the committed fixtures of test/peft_interop.test.ts and test/trl_losses.test.ts are what PEFT 0.21 and TRL 1.13
//     write again now (scripts/peft-fixtures.py --check, scripts/trl-fixtures.py --check), and transformers' generate
//     with repetition_penalty gives test/penalties.test.ts's fixture again (scripts/penalty-fixture.py --check).
// The adapters and checkpoints are written by sppo when this runs (nothing committed is trusted), into a temp
// folder; scripts/peft-interop.py checks them. The other direction (adapters PEFT writes, loaded by sppo) is
// test/peft_interop.test.ts on fixtures written by scripts/peft-fixtures.py.
//   node scripts/peft-interop.mjs [--if-available] [--keep] [--arch=qwen3-moe,mixtral]
// The Python packages live in .venv/peft-0.21 (git-ignored, from pip's configured index: this machine kind's
// local wheelhouse), or PEFT_PYTHON names a python that has them. --if-available: where they cannot be
// installed, print one line and exit 0 (CI). Needs the built dist/ (npm run build).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lastLine, pythonVenv } from './venv.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.error(`[peft-interop] ${m}`);
const args = process.argv.slice(2);
const ifAvailable = args.includes('--if-available');
const keep = args.includes('--keep');
const PACKAGES = ['torch==2.13.0+cpu', 'transformers==5.17.0', 'peft==0.21.0', 'trl==1.13.0', 'accelerate', 'datasets'];
// transformers 4.57 pins huggingface_hub < 1.0, which this machine kind's wheelhouse does not hold: it (and PEFT, which
// would pull transformers 5) is installed without its dependencies, beside the wheelhouse's hub, and its import-time pin is relaxed in this venv only (only
// local folders are loaded here, nothing from the Hub).
const PACKAGES4 = [
  ['torch==2.13.0+cpu'],
  ['--no-deps', 'transformers==4.57.6'],
  ['tokenizers>=0.22,<=0.23.0', 'huggingface_hub', 'accelerate', 'safetensors', 'regex', 'requests', 'pyyaml', 'numpy', 'packaging', 'filelock', 'tqdm', 'psutil'],
  ['--no-deps', 'peft==0.21.0'],
];
const hfTiny = process.env.SPPO_HF_FIXTURES ?? join(root, '..', 'shared', 'fixtures', 'hf-tiny');
const ALL_ARCHS = ['llama', 'llama3-rope-scaling', 'qwen2', 'mistral', 'gemma2', 'gpt2', 'qwen3', 'gemma3', 'smollm3', 'olmo2', 'phi3', 'phi3-long', 'gemma3-mm', 'qwen3-moe', 'mixtral'];
// --arch a,b: only these (a quick check while working on one); the fixture --check steps then still run.
const only = args.find((a) => a.startsWith('--arch='))?.slice(7).split(',');
const ARCHS = only ?? ALL_ARCHS;
/** An architecture's fixture: hf-tiny's, or the committed test/fixtures/hf-extra's (Qwen3, scripts/hf-extra-fixtures.py). */
const archDir = (a) => (existsSync(join(root, 'test', 'fixtures', 'hf-extra', a)) ? join(root, 'test', 'fixtures', 'hf-extra', a) : join(hfTiny, a));
const RSLORA_TARGETS = { gpt2: ['c_attn', 'c_fc'], 'qwen3-moe': ['q_proj', 'o_proj', 'gate_proj', 'up_proj'], mixtral: ['q_proj', 'o_proj', 'w1', 'w3'] };
const IDS = [[5, 17, 42, 99, 3, 250, 311, 7, 64, 128], [9, 8, 7, 6, 5, 4, 3, 2, 1, 400]];
const TEXTS = ['Hello, world!', 'Self-play preference optimization\n  aligns models.', 'café 123 ümlaut'];

function skipOrFail(why) {
  if (ifAvailable) {
    console.log(`[peft-interop] skipped: ${why} (this run needs python3 with venv, and pip able to install ${PACKAGES.join(', ')})`);
    process.exit(0);
  }
  log(why);
  process.exit(1);
}

/** $PEFT_PYTHON, else the venv's python, made and filled once (scripts/venv.mjs). */
function venv() {
  if (process.env.PEFT_PYTHON) return process.env.PEFT_PYTHON;
  return pythonVenv('peft-0.21', [PACKAGES], { log, fail: skipOrFail });
}

/** $TRANSFORMERS4_PYTHON, else the transformers 4.57 venv (made once); undefined, with one line, where it cannot be made. */
function venv4() {
  if (process.env.TRANSFORMERS4_PYTHON) return process.env.TRANSFORMERS4_PYTHON;
  const py4 = pythonVenv('transformers-4.57', PACKAGES4, { log, fail: (why) => log(`transformers 4.57 not checked: ${why}`) });
  if (!py4) return undefined;
  // The pin (see PACKAGES4), relaxed where transformers checks it at import.
  const table = spawnSync(py4, ['-c', 'import importlib.util as u; print(u.find_spec("transformers").submodule_search_locations[0])'], { encoding: 'utf8' });
  const file = join(table.stdout.trim(), 'dependency_versions_table.py');
  if (existsSync(file)) writeFileSync(file, readFileSync(file, 'utf8').replace(/"huggingface-hub>=([\d.]+),<1\.0"/, '"huggingface-hub>=$1"'));
  return py4;
}

if (!existsSync(join(root, 'dist', 'src', 'models', 'peft.js'))) skipOrFail('no dist/ (run npm run build first)');
const missing = ARCHS.filter((a) => !existsSync(join(archDir(a), 'model.safetensors')));
if (missing.length) skipOrFail(`no hf-tiny fixtures for ${missing.join(', ')} under ${hfTiny}`);
const py = venv();

const imp = (p) => import(pathToFileURL(join(root, 'dist', 'src', p)).href);
const torch = await imp('torch/index.js');
const { loadModel, saveModel } = await imp('models/registry.js');
const { saveAdapter } = await imp('models/peft.js');
const { mergeAdapter } = await imp('models/peft_merge.js');
const { Lora } = await imp('nn/lora.js');
const { Tokenizer } = await imp('text/tokenizer.js');

const work = mkdtempSync(join(tmpdir(), 'sppo-peft-interop-'));
const cases = [];
try {
  for (const arch of ARCHS) {
    const base = archDir(arch);
    const dir = join(work, arch);
    const ids = torch.tensor(IDS.map((r) => r.map((x) => BigInt(x))));
    const m = loadModel(base, { dtype: 'float32', device: 'cpu' });
    const expected = new Map();
    expected.set('ids', ids);
    expected.set('base_logits', torch.noGrad(() => m.forward({ inputIds: ids })));
    // Checkpoints: float32, bfloat16, float32 in shards of at most 128 kB.
    saveModel(m, join(dir, 'f32'), { tokenizerDir: base });
    saveModel(m, join(dir, 'bf16'), { dtype: 'bfloat16', tokenizerDir: base });
    saveModel(m, join(dir, 'sharded'), { maxShardBytes: 128 * 1024, tokenizerDir: base });
    const mb = loadModel(join(dir, 'bf16'), { dtype: 'bfloat16', device: 'cpu' });
    expected.set('bf16_logits', torch.noGrad(() => mb.forward({ inputIds: ids })).float());
    mb.dispose();
    // Adapters with random A and B (fresh ones have B = 0).
    const adapters = {
      plain: { r: 4, alpha: 8, targetModules: 'all-linear', seed: 3 },
      // On the MoE models the experts' gate and up together (transformers 5 fuses them, and PEFT converts an adapter
      // that targets one of them only with the other).
      rslora: { r: 4, alpha: 8, rslora: true, targetModules: RSLORA_TARGETS[arch] ?? ['q_proj', 'o_proj', 'gate_proj'], seed: 4 },
    };
    for (const [name, opts] of Object.entries(adapters)) {
      const lora = Lora.attach(m, opts);
      const gen = new torch.Generator(opts.seed + 10, 'cpu');
      torch.noGrad(() => {
        for (const l of lora.layers) {
          torch.tidy(() => {
            l.A.copy_(torch.randn(l.A.shape, { generator: gen }).mul(0.3));
            l.B.copy_(torch.randn(l.B.shape, { generator: gen }).mul(0.3));
          });
        }
      });
      saveAdapter(lora, join(dir, `adapter-${name}`), { baseModel: base });
      expected.set(`lora_${name}_logits`, torch.noGrad(() => m.forward({ inputIds: ids })));
      lora.dispose();
    }
    torch.saveSafetensors(join(dir, 'expected.safetensors'), expected, {});
    for (const t of expected.values()) t.dispose();
    m.dispose();
    const tok = Tokenizer.fromFolder(join(dir, 'f32'));
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify(TEXTS.map((text) => ({ text, ids: tok.encode(text) }))));
    symlinkSync(base, join(dir, 'source'));
    cases.push(arch);
  }
  // PEFT's LoRA variants (test/fixtures/peft: DoRA, trained biases, modules_to_save, a resized vocabulary, ...) merged
  // by sppo: transformers loads each merged folder (untied embeddings, vocab_size 520) and gives the PeftModel's logits.
  const variants = join(root, 'test', 'fixtures', 'peft');
  for (const arch of readdirSync(variants).filter((a) => statSync(join(variants, a)).isDirectory())) {
    for (const v of readdirSync(join(variants, arch)).filter((v) => !['plain', 'rslora', 'regex'].includes(v))) {
      mergeAdapter(archDir(arch), join(variants, arch, v), join(work, 'merged', `${arch}-${v}`), { dtype: 'float32' });
      copyFileSync(join(variants, arch, v, 'expected.safetensors'), join(work, 'merged', `${arch}-${v}`, 'peft-expected.safetensors'));
    }
  }
  log(`sppo wrote ${cases.length} architectures' adapters and checkpoints, and merged ${readdirSync(join(work, 'merged')).length} of PEFT's adapter variants, under ${work}`);
  const r = spawnSync(py, [join(root, 'scripts', 'peft-interop.py'), work, ...cases], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
  // The same files under transformers 4.57 (the last 4.x), which reads config.json's rope settings and
  // tokenizer_config.json's class its own way (src/models/transformers4.ts).
  const py4 = venv4();
  if (py4) {
    log('the same checks under transformers 4.57');
    const r4 = spawnSync(py4, [join(root, 'scripts', 'peft-interop.py'), work, ...cases], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
    if (r4.status !== 0) {
      process.stderr.write(r4.stderr.split('\n').slice(-20).join('\n'));
      process.exitCode = 1;
    }
  }
  // The committed fixtures of test/peft_interop.test.ts, test/trl_losses.test.ts and test/generate.test.ts (TRL's
  // geometric mixture), written again by PEFT and TRL
  // and compared (scripts/fixture_check.py).
  for (const script of ['peft-fixtures.py', 'trl-fixtures.py', 'trl-mixture-fixture.py', 'trl-formats-fixture.py', 'penalty-fixture.py', 'hf-extra-fixtures.py']) {
    const c = spawnSync(py, [join(root, 'scripts', script), '--check', '--hf-tiny', hfTiny], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    process.stdout.write(c.stdout.split('\n').filter((l) => /^(ok|FAIL) /.test(l)).join('\n') + '\n');
    if (c.status !== 0) process.exitCode = 1;
  }
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
