// GPU figures, sppo and Hugging Face transformers side by side on the same GPU in the same call
// (`npm run bench -- --gpu`; scripts/gpu-check.sh runs the parts one by one, each under its own timeout):
//   matmul  bf16 8192^3 matmul, sppo and PyTorch
//   gen     sampling throughput (64-token prompts, 128 new tokens, temperature 0.7, top-p 0.9, bf16, random
//           weights) at the SmolLM2-135M and -360M shapes (batch 64 and 256) and a Qwen2.5-1.5B shape (batch 64),
//           graph-replayed decoding on and off (generateTensors' `graph` option), with the fraction of the
//           bandwidth limit: the bytes one decode step must read (weights + the KV cache at the mean context)
//           over the GPU's memory bandwidth (H100 SXM 3.35 TB/s, H200 4.8 TB/s, from the device name)
//   train   training tokens/s of the trainer (src/sppo/trainer.ts: log-probs, SPPO-like loss, backward, AdamW)
//           at 16 x 512 tokens (135M and 360M shapes): packed and padded, float32 master weights and pure bf16;
//           and at SPPO's mixed lengths (prompts 16-96, responses 8-416 tokens) packed and padded
//   peer    transformers: ../shared/device/hf_baseline.py as shipped (135M / 360M, batch 64: generate and an
//           SPPO-like AdamW step) and bench/peer_gpu.py (batch 256, the 1.5B shape), written as transformers users
//           write them (model.generate(do_sample=True, ...))
//   run     one `sppo run` iteration at the 135M shape (512 prompts x K = 5 x 256 new tokens, a reward-model judge
//           of the same shape, random weights): seconds per stage from the run's timings.jsonl
//   summary the table of all of it with the ratios (sppo / transformers)
// Each part writes OUT/gpu-<part>.json after every measurement (a timeout keeps what was measured).
//   node dist/bench/gpu.js [--part gen,train,...] [--out DIR]       (all parts by default; DIR default $OUT or /tmp/sppo-gpu)
// SPPO_BENCH_DRYRUN=1 runs every part tiny on the CPU (2 layers, few tokens) to check the code before spending
// GPU time; the transformers peer is skipped there when the python has no transformers (it says so).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as torch from '../src/torch/index.js';
import { matmulGflops } from './engine.js';
import { parseConfig } from '../src/models/config.js';
import { createModel, saveModel } from '../src/models/registry.js';
import type { CausalLMBase } from '../src/models/causal_lm.js';
import { generateTensors, type GenerateOptions } from '../src/generate/generate.js';
import { train, type TrainExample } from '../src/sppo/trainer.js';
import { CHARACTERS, llamaConfig, SPECIAL_TOKENS, tokenizerJson, writeTokenizerFolder } from '../src/demo/tokenizer.js';
import { sppoLikeSequences } from './packing.js';
import type { PromptResponse } from '../src/sppo/logprobs.js';
import { arg } from './stats.js';

const dry = process.env.SPPO_BENCH_DRYRUN === '1';
const dev = dry ? 'cpu' : 'cuda';
const DTYPE: torch.DType = dry ? 'float32' : 'bfloat16';
const here = dirname(fileURLToPath(import.meta.url));
/** bench/ in the checkout (the Python peers live there; this file runs from dist/bench). */
const benchSrc = join(here, '..', '..', 'bench');
const root = join(here, '..', '..');
const PYTHON = process.env.SPPO_BENCH_PYTHON ?? (dry && existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const now = (): number => performance.now() / 1000;
const sync = (): void => {
  if (!dry) torch.cuda.synchronize();
};

export const PARTS = ['matmul', 'gen', 'train', 'peer', 'run'] as const;
export type Part = (typeof PARTS)[number];

// ------------------------------------------------------------------ shapes
export interface Shape {
  arch: 'llama' | 'qwen2';
  /** HF config.json fields (the peer builds the same model from them). */
  config: Record<string, unknown>;
}

const LLAMA = { max_position_embeddings: 2048, tie_word_embeddings: true, rms_norm_eps: 1e-5, vocab_size: 49152, bos_token_id: 1, eos_token_id: 2 };
/** SmolLM2-135M / -360M (as hf_baseline.py) and Qwen2.5-1.5B's configs; tiny variants for the dry run. */
export const SHAPES: Record<string, Shape> = {
  '135M': { arch: 'llama', config: { ...LLAMA, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3 } },
  '360M': { arch: 'llama', config: { ...LLAMA, hidden_size: 960, intermediate_size: 2560, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5 } },
  '1.5B': {
    arch: 'qwen2',
    config: {
      hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, vocab_size: 151936,
      max_position_embeddings: 32768, rope_theta: 1000000, rms_norm_eps: 1e-6, tie_word_embeddings: true, use_sliding_window: false,
      bos_token_id: 151643, eos_token_id: 151643,
    },
  },
};

function shapeConfig(name: string): Shape {
  const s = SHAPES[name]!;
  if (!dry) return s;
  // Dry run: 2 layers, a small vocabulary; the 1.5B shape also narrower (head_dim 16) so that the CPU copes.
  const small = name === '1.5B' ? { hidden_size: 192, intermediate_size: 512, vocab_size: 4096, bos_token_id: 1, eos_token_id: 2 } : {};
  return { arch: s.arch, config: { ...s.config, num_hidden_layers: 2, ...small } };
}

function hfConfig(s: Shape): Record<string, unknown> {
  const arch = s.arch === 'llama' ? 'LlamaForCausalLM' : 'Qwen2ForCausalLM';
  return { architectures: [arch], model_type: s.arch, hidden_act: 'silu', ...(s.arch === 'qwen2' ? {} : { rope_theta: 10000 }), ...s.config };
}

function build(name: string): CausalLMBase {
  const m = createModel(parseConfig(hfConfig(shapeConfig(name))));
  m.initWeights({ std: 0.02, seed: 0, dtype: DTYPE, device: dev });
  return m;
}

// ------------------------------------------------------------------ output
function outDir(): string {
  const d = arg('--out') ?? process.env.OUT ?? '/tmp/sppo-gpu';
  mkdirSync(d, { recursive: true });
  return d;
}

function recorder(part: string): { out: Record<string, unknown>; save: () => void } {
  const out: Record<string, unknown> = { part, dry, device: deviceName(), libtorch: torch.libtorchVersion() };
  const path = join(outDir(), `gpu-${part}.json`);
  const save = (): void => writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
  save();
  return { out, save };
}

function deviceName(): string {
  if (dry) return 'cpu (dry run)';
  const r = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0]! : 'cuda (nvidia-smi unavailable)';
}

/** Memory bandwidth in bytes/s from the device name: H200 4.8 TB/s, H100 SXM 3.35 TB/s (PCIe 2.0 TB/s); null when unknown. */
export function bandwidthOf(name: string): number | null {
  if (/H200/i.test(name)) return 4.8e12;
  if (/H100/i.test(name)) return /PCIe/i.test(name) ? 2.0e12 : 3.35e12;
  return null;
}

/**
 * Bytes one decode step must read at least: every weight once (bf16), and the keys and values of every layer
 * for the batch at the given context length.
 */
export function decodeStepBytes(params: number, cfg: Record<string, unknown>, batch: number, context: number, bytes = 2): number {
  const layers = cfg.num_hidden_layers as number;
  const kv = cfg.num_key_value_heads as number;
  const headDim = (cfg.head_dim as number | undefined) ?? (cfg.hidden_size as number) / (cfg.num_attention_heads as number);
  return params * bytes + batch * layers * 2 * kv * headDim * context * bytes;
}

// ------------------------------------------------------------------ parts
async function partMatmul(): Promise<void> {
  const { out, save } = recorder('matmul');
  const size = dry ? 256 : 8192;
  out.sppo_tflops = matmulGflops(size, dev, DTYPE) / 1000;
  save();
  const r = spawnSync(PYTHON, [join(benchSrc, 'peer_engine.py'), String(size), dev, DTYPE], { encoding: 'utf8' });
  if (r.status === 0) out.pytorch_tflops = JSON.parse(r.stdout.trim().split('\n').pop()!).matmul_gflops[String(size)] / 1000;
  else out.pytorch_error = r.stderr.slice(-500);
  console.log(`bf16 matmul ${size}^3 TFLOP/s: sppo ${out.sppo_tflops}, PyTorch ${out.pytorch_tflops ?? '-'}`);
  save();
}

/** The generation cases: shape and batch. */
export const GEN_CASES: [string, number][] = [['135M', 64], ['135M', 256], ['360M', 64], ['360M', 256], ['1.5B', 64]];

async function partGen(): Promise<void> {
  const { out, save } = recorder('gen');
  const P = dry ? 8 : 64, N = dry ? 8 : 128;
  const bw = bandwidthOf(String(out.device));
  out.prompt = P;
  out.new_tokens = N;
  out.bandwidth_bytes_s = bw;
  const results: Record<string, unknown>[] = [];
  out.results = results;
  for (const shape of [...new Set(GEN_CASES.map(([s]) => s))]) {
    const model = build(shape);
    const cfg = shapeConfig(shape).config;
    const params = model.numParameters();
    try {
      for (const [, b] of GEN_CASES.filter(([s]) => s === shape)) {
        const B = dry ? Math.max(2, b / 32) : b;
        const g = new torch.Generator(0, dev);
        const ids = torch.keep(torch.randint(0, cfg.vocab_size as number, [B, P], { generator: g, device: dev }));
        const mask = torch.keep(torch.ones([B, P], { dtype: 'int64', device: dev }));
        try {
          for (const graph of ['off', 'on'] as const) {
            // `graph` is generateTensors' option for graph-replayed decoding (branch graph-decode); a generateTensors
            // without it ignores it (then both rows are op by op).
            const opts: GenerateOptions & { graph?: 'auto' | 'on' | 'off' } = { minNewTokens: 0, temperature: 0.7, topP: 0.9, seed: 1, graph };
            const gen = (n: number): void => torch.tidy(() => {
              generateTensors(model, ids, mask.clone(), { ...opts, maxNewTokens: n, minNewTokens: n });
            });
            const row: Record<string, unknown> = { shape, params, batch: B, case_batch: b, graph };
            try {
              gen(8); // warm-up (and, with graphs, the capture of this batch's bucket)
              sync();
              const t0 = now();
              gen(N);
              sync();
              const tokS = (B * N) / (now() - t0);
              // The mean context of the N steps: P + N / 2 positions cached.
              const bytes = decodeStepBytes(params, cfg, B, P + N / 2);
              row.tok_s = tokS;
              row.step_bytes = bytes;
              if (bw) {
                const limit = (B * bw) / bytes;
                row.bandwidth_limit_tok_s = limit;
                row.fraction_of_limit = tokS / limit;
              }
            } catch (e) {
              row.error = (e as Error).message.slice(0, 500);
            }
            results.push(row);
            console.log(`gen ${shape} batch ${B} graph ${graph}: ${row.tok_s ? `${(row.tok_s as number).toFixed(0)} tok/s` : row.error}` +
              (row.fraction_of_limit ? ` (${((row.fraction_of_limit as number) * 100).toFixed(1)}% of the bandwidth limit ${(row.bandwidth_limit_tok_s as number).toFixed(0)})` : ''));
            save();
          }
        } finally {
          ids.dispose();
          mask.dispose();
        }
      }
    } finally {
      model.dispose();
    }
  }
}

/** Examples for the trainer from sequences given in pairs (the first half chosen, the second rejected). */
function examplesOf(seqs: readonly PromptResponse[]): TrainExample[] {
  const n = seqs.length / 2;
  return Array.from({ length: n }, (_, i) => ({
    promptIds: [...seqs[i]!.promptIds], chosenIds: [...seqs[i]!.responseIds], rejectedIds: [...seqs[n + i]!.responseIds],
    chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.6,
    // Given reference log-probs: no reference pass (the bench times the policy's steps).
    chosenRefLogprob: -1000, rejectedRefLogprob: -1000,
  }));
}

async function partTrain(): Promise<void> {
  const { out, save } = recorder('train');
  // Whether packed rows take libtorch's variable-length flash attention here (else SDPA with the block mask).
  out.varlen_flash = torch.hasVarlenFlashAttention();
  const results: Record<string, unknown>[] = [];
  out.results = results;
  const steps = dry ? 2 : 4;
  for (const shape of ['135M', '360M']) {
    const vocab = shapeConfig(shape).config.vocab_size as number;
    // 16 x 512: 8 pairs of a 64-token prompt and two 448-token responses (hf_baseline.py's 16 x 512 tokens).
    const [pl, rl] = dry ? [4, 12] : [64, 448];
    const uniform = sppoLikeSequences(8 * steps, { seed: 1, vocab, prompt: [pl, pl], response: [rl, rl] });
    const mixed = sppoLikeSequences(8 * steps, { seed: 2, vocab, prompt: dry ? [2, 6] : [16, 96], response: dry ? [2, 12] : [8, 416] });
    // The pairs interleaved per step: step s trains on pairs s*8 .. s*8+7 (seqs: chosen half, then rejected half).
    const cases: { lengths: string; packing: boolean; masterWeights: boolean; optimizer: 'adamw' | 'rmsprop' }[] = [
      { lengths: 'uniform', packing: true, masterWeights: true, optimizer: 'adamw' },
      { lengths: 'uniform', packing: false, masterWeights: true, optimizer: 'adamw' },
      { lengths: 'uniform', packing: true, masterWeights: false, optimizer: 'adamw' },
      { lengths: 'uniform', packing: false, masterWeights: false, optimizer: 'adamw' },
      { lengths: 'uniform', packing: true, masterWeights: true, optimizer: 'rmsprop' },
      { lengths: 'mixed', packing: true, masterWeights: true, optimizer: 'adamw' },
      { lengths: 'mixed', packing: false, masterWeights: true, optimizer: 'adamw' },
    ];
    if (shape === '360M') cases.splice(2, 3); // the 360M shape: packed / padded with masters only (time)
    for (const c of cases) {
      const model = build(shape);
      const row: Record<string, unknown> = { shape, ...c, steps };
      try {
        const seqs = c.lengths === 'uniform' ? uniform : mixed;
        const speeds: number[] = [];
        await train({
          policy: model, examples: examplesOf(seqs), loss: 'sppo', beta: 0.001, lr: 5e-7, epochs: 1, batchSize: 8, gradAccum: 1,
          optimizer: c.optimizer, warmupRatio: 0, schedule: 'constant', maxLength: 1024, maxPromptLength: 512, maxGradNorm: 1,
          seed: 0, packing: c.packing, masterWeights: c.masterWeights, dtype: DTYPE as 'float32' | 'bfloat16', device: dev,
          onStep: (m) => speeds.push(m.tokens_per_s),
        });
        // The first step warms up (allocator, kernels); the median of the others.
        const s = speeds.slice(1).sort((a, b) => a - b);
        row.tok_s = s[s.length >> 1];
        row.tok_s_all = speeds;
      } catch (e) {
        row.error = (e as Error).message.slice(0, 500);
      } finally {
        model.dispose();
      }
      results.push(row);
      console.log(`train ${shape} ${c.lengths} ${c.packing ? 'packed' : 'padded'} ${c.masterWeights ? 'masters' : 'pure bf16'} ${c.optimizer}: ${row.tok_s ? `${(row.tok_s as number).toFixed(0)} tok/s` : row.error}`);
      save();
    }
  }
}

async function partPeer(): Promise<void> {
  const { out, save } = recorder('peer');
  const hasTransformers = spawnSync(PYTHON, ['-c', 'import transformers'], { encoding: 'utf8' }).status === 0;
  out.python = PYTHON;
  if (!hasTransformers) {
    out.skipped = `${PYTHON} has no transformers: the HF peer is skipped${dry ? ' (the dry run on the CPU)' : ''}`;
    console.log(out.skipped);
  }
  // hf_baseline.py as shipped (.gpu/ on the GPU machine, ../shared/device here).
  const baseline = [process.env.SPPO_HF_BASELINE, join(root, '.gpu', 'hf_baseline.py'), join(root, '..', 'shared', 'device', 'hf_baseline.py')].find((p) => p && existsSync(p));
  const dir = outDir();
  if (hasTransformers && !dry && baseline) {
    const t0 = now();
    const r = spawnSync(PYTHON, [baseline, join(dir, 'hf-baseline.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    out.hf_baseline_seconds = now() - t0;
    if (r.status === 0 && existsSync(join(dir, 'hf-baseline.json'))) out.hf_baseline = JSON.parse(readFileSync(join(dir, 'hf-baseline.json'), 'utf8'));
    else out.hf_baseline_error = (r.stderr ?? '').slice(-800);
    console.log('hf_baseline.py:', JSON.stringify(out.hf_baseline ?? out.hf_baseline_error));
    save();
  } else if (!baseline) {
    out.hf_baseline_error = 'hf_baseline.py not found (.gpu/ or ../shared/device/)';
  }
  // Our transformers peer for the shapes hf_baseline lacks (run in the dry run too: it says when transformers is missing).
  const P = dry ? 8 : 64, N = dry ? 8 : 128;
  const spec = [
    { name: '135M', arch: 'llama', config: shapeConfig('135M').config, gen: [{ batch: dry ? 8 : 256, prompt: P, new: N }] },
    { name: '360M', arch: 'llama', config: shapeConfig('360M').config, gen: [{ batch: dry ? 8 : 256, prompt: P, new: N }] },
    { name: '1.5B', arch: 'qwen2', config: shapeConfig('1.5B').config, gen: [{ batch: dry ? 2 : 64, prompt: P, new: N }], train: true },
  ];
  writeFileSync(join(dir, 'peer-gpu-spec.json'), JSON.stringify(spec));
  const t0 = now();
  const r = spawnSync(PYTHON, [join(benchSrc, 'peer_gpu.py'), join(dir, 'peer-gpu-spec.json'), join(dir, 'peer-gpu.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  out.peer_gpu_seconds = now() - t0;
  if (existsSync(join(dir, 'peer-gpu.json'))) out.peer_gpu = JSON.parse(readFileSync(join(dir, 'peer-gpu.json'), 'utf8'));
  if (r.status !== 0) out.peer_gpu_error = (r.stderr ?? '').slice(-800);
  console.log('peer_gpu.py:', JSON.stringify(out.peer_gpu ?? out.peer_gpu_error));
  save();
}

/** A character tokenizer (src/demo/tokenizer.ts) grown to `vocab` ids: ids past its characters decode to code points from U+0100 on. */
function writeWideTokenizer(dir: string, vocab: number): void {
  writeTokenizerFolder(dir, { max_new_tokens: 256 });
  const tj = tokenizerJson() as { model: { vocab: Record<string, number> } };
  const base = SPECIAL_TOKENS.length + CHARACTERS.length;
  for (let id = base; id < vocab; id++) tj.model.vocab[String.fromCharCode(0x100 + id - base)] = id;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  tc.model_max_length = 2048;
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tc, null, 2));
}

async function partRun(): Promise<void> {
  const { out, save } = recorder('run');
  const work = mkdtempSync(join(tmpdir(), 'sppo-gpu-run-'));
  try {
    const vocab = 49152;
    const layers = dry ? 2 : 30;
    const prompts = dry ? 8 : 512, k = dry ? 3 : 5, newTokens = dry ? 8 : 256;
    const cfg = { ...llamaConfig({ hidden: 576, layers, heads: 9, kvHeads: 3, intermediate: 1536, maxPositions: 2048 }), vocab_size: vocab, dtype: DTYPE };
    const policyDir = join(work, 'policy');
    const rmDir = join(work, 'reward-model');
    const policy = createModel(parseConfig(cfg));
    policy.initWeights({ std: 0.02, seed: 0, dtype: DTYPE, device: 'cpu' });
    saveModel(policy, policyDir);
    writeWideTokenizer(policyDir, vocab);
    // The reward model: the same shape as LlamaForSequenceClassification (another seed), a random score head.
    const rm = createModel(parseConfig(cfg));
    rm.initWeights({ std: 0.02, seed: 1, dtype: DTYPE, device: 'cpu' });
    saveModel(rm, rmDir);
    writeWideTokenizer(rmDir, vocab);
    rm.dispose();
    policy.dispose();
    const rmCfg = { ...JSON.parse(readFileSync(join(rmDir, 'config.json'), 'utf8')), architectures: ['LlamaForSequenceClassification'], id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } };
    writeFileSync(join(rmDir, 'config.json'), JSON.stringify(rmCfg, null, 2));
    const st = torch.loadSafetensors(join(rmDir, 'model.safetensors')).tensors;
    st.set('score.weight', torch.randn([1, 576], { generator: new torch.Generator(2) }).mul(0.02).to(DTYPE));
    torch.saveSafetensors(join(rmDir, 'model.safetensors'), st);
    for (const t of st.values()) t.dispose();
    // 512 prompts of 61 characters (64 tokens with the chat template's <s>, <|user|>, <|assistant|>).
    const letters = 'abcdefghijklmnopqrstuvwxyz ';
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const lines = Array.from({ length: prompts }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: Array.from({ length: dry ? 12 : 61 }, () => letters[Math.floor(rnd() * letters.length)]).join('') }));
    writeFileSync(join(work, 'prompts.jsonl'), lines.join('\n') + '\n');
    const config = {
      model: policyDir, prompts: join(work, 'prompts.jsonl'), runDir: join(work, 'run'),
      judge: { kind: 'reward-model', dir: rmDir, dtype: DTYPE, device: dev, batchSize: 64 },
      iterations: 1, promptsPerIteration: prompts, seed: 0, dtype: DTYPE, device: dev,
      generation: { k, temperature: 0.7, topP: 0.9, maxNewTokens: newTokens, batchSize: dry ? 4 : 64 },
      training: { maxLength: 512, maxPromptLength: 128, batchSize: 8, epochs: 1 },
      eval: { count: 0 },
    };
    writeFileSync(join(work, 'sppo.json'), JSON.stringify(config, null, 2));
    out.config = config;
    save();
    const t0 = now();
    const cli = join(here, '..', 'src', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'run', join(work, 'sppo.json')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: Number(process.env.SPPO_GPU_RUN_TIMEOUT_MS ?? 0) || undefined });
    const seconds = now() - t0;
    out.seconds = seconds;
    out.exit = r.status;
    if (r.status !== 0) out.error = `${r.error?.message ?? ''} ${(r.stderr ?? '').slice(-1500)}`;
    const timings = join(work, 'run', 'timings.jsonl');
    if (existsSync(timings)) out.stages = readFileSync(timings, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    console.log(`sppo run, 1 iteration (${prompts} prompts x ${k} x ${newTokens} tokens): ${seconds.toFixed(1)} s, exit ${r.status}`);
    for (const s of (out.stages as { stage: string; seconds: number }[] | undefined) ?? []) console.log(`  ${s.stage}: ${s.seconds.toFixed(1)} s`);
    if (out.error) console.log(out.error);
    save();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ summary
type Row = Record<string, unknown>;
const read = (part: string): Row | null => {
  const p = join(outDir(), `gpu-${part}.json`);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Row) : null;
};

/** The table of every part measured, with sppo / transformers ratios; also written to OUT/gpu-summary.json. */
export function summary(): Row {
  const gen = read('gen'), tr = read('train'), peer = read('peer'), mm = read('matmul'), run = read('run');
  const base = (peer?.hf_baseline ?? {}) as Record<string, { gen_tok_s?: number; train_tok_s?: number }>;
  const ours = (peer?.peer_gpu ?? {}) as Record<string, Record<string, number>>;
  const hfGen = (shape: string, b: number): number | undefined => (b === 64 ? base[shape]?.gen_tok_s : undefined) ?? ours[shape]?.[`gen_b${b}_tok_s`];
  const hfTrain = (shape: string): number | undefined => base[shape]?.train_tok_s ?? ours[shape]?.train_tok_s;
  const lines: string[] = [];
  const s: Row = { device: gen?.device ?? tr?.device ?? peer?.device ?? run?.device ?? mm?.device, generation: [], training: [] };
  lines.push(`device: ${s.device}; libtorch ${gen?.libtorch ?? tr?.libtorch ?? '-'}${peer?.hf_baseline || peer?.peer_gpu ? '' : '; no transformers figures'}`);
  if (mm) lines.push(`bf16 matmul TFLOP/s: sppo ${(mm.sppo_tflops as number)?.toFixed(1)}, PyTorch ${(mm.pytorch_tflops as number | undefined)?.toFixed(1) ?? '-'}`);
  lines.push('generation (tok/s)          graph off   graph on   transformers   on/transformers   % of bandwidth limit (on)');
  for (const [shape, b] of GEN_CASES) {
    const rows = ((gen?.results ?? []) as Row[]).filter((r) => r.shape === shape && r.case_batch === b);
    const off = rows.find((r) => r.graph === 'off'), on = rows.find((r) => r.graph === 'on');
    const hf = hfGen(shape, b);
    const best = (on?.tok_s as number | undefined) ?? (off?.tok_s as number | undefined);
    (s.generation as Row[]).push({ shape, batch: b, off: off?.tok_s, on: on?.tok_s, transformers: hf, ratio: best && hf ? best / hf : undefined, fraction_of_limit: on?.fraction_of_limit });
    const f = (x: unknown, w: number): string => (typeof x === 'number' ? x.toFixed(0) : '-').padStart(w);
    lines.push(`  ${shape.padEnd(5)} batch ${String(b).padEnd(4)}     ${f(off?.tok_s, 9)} ${f(on?.tok_s, 10)} ${f(hf, 14)} ${(best && hf ? `${(best / hf).toFixed(2)}x` : '-').padStart(17)} ${(typeof on?.fraction_of_limit === 'number' ? `${((on.fraction_of_limit as number) * 100).toFixed(1)}%` : '-').padStart(27)}`);
  }
  lines.push('training (tok/s)                                   sppo   transformers   ratio');
  for (const r of (tr?.results ?? []) as Row[]) {
    const hf = r.lengths === 'uniform' && r.optimizer === 'adamw' ? hfTrain(String(r.shape)) : undefined;
    const name = `${r.shape} ${r.lengths} ${r.packing ? 'packed' : 'padded'} ${r.masterWeights ? 'masters' : 'pure bf16'} ${r.optimizer}`;
    (s.training as Row[]).push({ ...r, transformers: hf, ratio: hf && r.tok_s ? (r.tok_s as number) / hf : undefined });
    lines.push(`  ${name.padEnd(46)} ${(typeof r.tok_s === 'number' ? r.tok_s.toFixed(0) : String(r.error ?? '-').slice(0, 40)).padStart(8)} ${(hf ? hf.toFixed(0) : '-').padStart(14)} ${(hf && r.tok_s ? `${((r.tok_s as number) / hf).toFixed(2)}x` : '-').padStart(7)}`);
  }
  const hf15 = ours['1.5B']?.train_tok_s;
  if (hf15) lines.push(`  1.5B transformers training (16 x 512): ${hf15.toFixed(0)} tok/s`);
  if (run) {
    s.run = { seconds: run.seconds, exit: run.exit, stages: run.stages };
    lines.push(`sppo run, one iteration at the 135M shape: ${typeof run.seconds === 'number' ? run.seconds.toFixed(1) : '-'} s (exit ${run.exit ?? '-'})`);
    for (const st of (run.stages ?? []) as Row[]) lines.push(`  ${String(st.stage).padEnd(12)} ${(st.seconds as number).toFixed(1).padStart(8)} s${typeof st.tokens_per_s === 'number' ? `  (${st.tokens_per_s.toFixed(0)} tok/s)` : ''}${st.tokens ? `  (${st.tokens} tokens)` : ''}`);
  }
  if (peer?.skipped) lines.push(String(peer.skipped));
  s.table = lines;
  writeFileSync(join(outDir(), 'gpu-summary.json'), JSON.stringify(s, null, 2) + '\n');
  console.log(lines.join('\n'));
  return s;
}

const RUNNERS: Record<Part, () => Promise<void>> = { matmul: partMatmul, gen: partGen, train: partTrain, peer: partPeer, run: partRun };

/** Runs the given parts (all by default) one after the other, then prints the summary. */
export async function run(parts: readonly string[] = PARTS): Promise<void> {
  if (!dry && !torch.cuda.isAvailable()) throw new Error('bench gpu: no CUDA device (SPPO_BENCH_DRYRUN=1 runs it tiny on the CPU)');
  for (const p of parts) {
    if (p === 'summary') continue;
    if (!(PARTS as readonly string[]).includes(p)) throw new Error(`bench gpu: unknown part '${p}' (parts: ${PARTS.join(', ')}, summary)`);
    const t0 = now();
    try {
      await RUNNERS[p as Part]();
    } catch (e) {
      console.log(`part ${p} failed: ${(e as Error).message}`);
      process.exitCode = 1;
    }
    console.log(`[part ${p}: ${(now() - t0).toFixed(1)} s]`);
  }
  summary();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run(arg('--part')?.split(',') ?? PARTS);
