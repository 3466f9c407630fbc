// Benchmarks of the model layer against plain PyTorch (bench/peer_models.py, run with /usr/bin/python3):
// generation throughput of a ~10M-parameter Llama (batch 32, 128 new tokens, sampling with a KV cache)
// and a training step (forward + backward + AdamW) of the same model. Both sides use the same weights
// (written by sppo as an HF folder, read by the peer), dtype, device and thread count.
//   node dist/bench/models.js [--device cuda] [--dtype bfloat16]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, cuda, defaultDevice, getNumThreads, randint, tidy, type DType } from '../src/torch/index.js';
import { createModel, loadModel, parseConfig, saveModel, type CausalLMBase } from '../src/models/index.js';
import { generate } from '../src/generate/index.js';

export interface BenchOptions {
  device?: string;
  dtype?: DType;
  repeats?: number;
  python?: string;
}

/** A Llama of about 10.5M parameters: vocabulary 8192, 8 layers of width 256, 8 heads over 4 KV heads. */
export function benchLlamaConfig(): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 8192, hidden_size: 256, intermediate_size: 768,
    num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 32, rms_norm_eps: 1e-5,
    max_position_embeddings: 1024, rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, torch_dtype: 'float32',
  };
}

/** Writes the bench model (random weights, seed 0) as an HF folder; returns the folder. */
export function writeBenchModel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sppo-bench-llama-'));
  const m = createModel(parseConfig(benchLlamaConfig()));
  m.initWeights({ std: 0.02, seed: 0 });
  saveModel(m, dir);
  m.dispose();
  return dir;
}

function peer(dir: string, task: Record<string, unknown>, o: BenchOptions): Record<string, number | string> {
  const script = fileURLToPath(new URL('../../bench/peer_models.py', import.meta.url));
  const r = spawnSync(o.python ?? '/usr/bin/python3', [script, dir, JSON.stringify({ ...task, device: o.device ?? defaultDevice(), dtype: o.dtype ?? 'float32', threads: getNumThreads(), repeats: o.repeats ?? 3 })], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench/peer_models.py failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const sync = (device: string): void => {
  if (device.startsWith('cuda')) cuda.synchronize();
};

function load(dir: string, o: BenchOptions): CausalLMBase {
  return loadModel(dir, { dtype: o.dtype ?? 'float32', device: o.device ?? defaultDevice() });
}

export interface GenerationBench {
  batch: number;
  newTokens: number;
  sppoTokensPerS: number;
  torchTokensPerS: number;
  /** sppo / PyTorch throughput (goal >= 1). */
  ratio: number;
  torch: string;
  threads: number;
}

/** Sampling throughput (temperature 1, KV cache, all sequences run the full 128 tokens). */
export async function benchGeneration(opts: BenchOptions & { batch?: number; promptLen?: number; newTokens?: number; modelDir?: string } = {}): Promise<GenerationBench> {
  const batch = opts.batch ?? 32;
  const promptLen = opts.promptLen ?? 16;
  const newTokens = opts.newTokens ?? 128;
  const dir = opts.modelDir ?? writeBenchModel();
  try {
    const model = load(dir, opts);
    const prompts = tidy(() => randint(3, model.config.vocabSize, [batch, promptLen]).toArray() as number[][]);
    let best = Infinity;
    for (let r = 0; r <= (opts.repeats ?? 3); r++) {
      sync(model.device);
      const t0 = performance.now();
      const gens = generate(model, prompts, { temperature: 1, maxNewTokens: newTokens, eosTokenIds: [], seed: r });
      sync(model.device);
      const dt = (performance.now() - t0) / 1000;
      if (gens.some((g) => g.tokens.length !== newTokens)) throw new Error('bench: a sequence stopped early');
      if (r > 0) best = Math.min(best, dt);
    }
    model.dispose();
    const p = peer(dir, { task: 'generate', batch, prompt_len: promptLen, new_tokens: newTokens }, opts);
    const ours = (batch * newTokens) / best;
    return { batch, newTokens, sppoTokensPerS: ours, torchTokensPerS: p.tokens_per_s as number, ratio: ours / (p.tokens_per_s as number), torch: String(p.torch), threads: p.threads as number };
  } finally {
    if (!opts.modelDir) rmSync(dir, { recursive: true, force: true });
  }
}

export interface TrainStepBench {
  batch: number;
  seqLen: number;
  sppoSeconds: number;
  torchSeconds: number;
  /** sppo / PyTorch step time (goal <= 1.05). */
  ratio: number;
  torch: string;
  threads: number;
}

/** One training step: mean token log-prob loss, backward, AdamW. */
export async function benchTrainStep(opts: BenchOptions & { batch?: number; seqLen?: number; modelDir?: string } = {}): Promise<TrainStepBench> {
  const batch = opts.batch ?? 8;
  const seqLen = opts.seqLen ?? 256;
  const dir = opts.modelDir ?? writeBenchModel();
  try {
    const model = load(dir, opts);
    model.train().requiresGrad_(true);
    const opt = AdamW(model.parameters(), { lr: 1e-4 });
    const ids = randint(3, model.config.vocabSize, [batch, seqLen], { device: model.device });
    let best = Infinity;
    for (let r = 0; r <= (opts.repeats ?? 3); r++) {
      sync(model.device);
      const t0 = performance.now();
      tidy(() => {
        const loss = model.tokenLogprobs({ inputIds: ids }).mean().neg();
        opt.zeroGrad();
        loss.backward();
        opt.step();
      });
      sync(model.device);
      const dt = (performance.now() - t0) / 1000;
      if (r > 0) best = Math.min(best, dt);
    }
    ids.dispose();
    model.dispose();
    const p = peer(dir, { task: 'train', batch, seq_len: seqLen }, opts);
    return { batch, seqLen, sppoSeconds: best, torchSeconds: p.seconds as number, ratio: best / (p.seconds as number), torch: String(p.torch), threads: p.threads as number };
  } finally {
    if (!opts.modelDir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Both benchmarks on one model folder, as table rows. */
export async function benchModels(opts: BenchOptions = {}): Promise<{ generation: GenerationBench; train: TrainStepBench }> {
  const dir = writeBenchModel();
  try {
    const generation = await benchGeneration({ ...opts, modelDir: dir });
    const train = await benchTrainStep({ ...opts, modelDir: dir });
    return { generation, train };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints both benchmarks (called by bench/bench.ts: `npm run bench`, or `npm run bench -- models`). */
export async function run(opts: BenchOptions = {}): Promise<void> {
  const device = opts.device ?? defaultDevice();
  const cpu = device === 'cpu';
  const o: BenchOptions = { device, dtype: opts.dtype ?? 'float32', repeats: opts.repeats ?? (cpu ? 1 : 3), python: opts.python ?? process.env.SPPO_BENCH_PYTHON };
  const dir = writeBenchModel();
  try {
    const g = await benchGeneration({ ...o, modelDir: dir });
    console.log(`models: ~10.5M-parameter Llama, ${device}, ${o.dtype}, ${g.threads} threads, PyTorch ${g.torch}`);
    console.log(`${'generation b32 x 128 new (tok/s)'.padEnd(34)} ${g.sppoTokensPerS.toFixed(1).padStart(10)} ${g.torchTokensPerS.toFixed(1).padStart(10)}  tok/s     ${g.ratio.toFixed(3)}x (higher is better; goal >= 1)`);
    // On the CPU a smaller step keeps the run short; the ratio is what counts.
    const t = await benchTrainStep({ ...o, modelDir: dir, batch: cpu ? 4 : 8, seqLen: cpu ? 128 : 256 });
    console.log(`${`train step b${t.batch} x ${t.seqLen} (ms)`.padEnd(34)} ${(t.sppoSeconds * 1000).toFixed(1).padStart(10)} ${(t.torchSeconds * 1000).toFixed(1).padStart(10)}  ms        ${t.ratio.toFixed(3)}x (lower is better; goal <= 1.05)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (k: string): string | undefined => {
    const i = process.argv.indexOf(k);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  await run({ device: arg('--device'), dtype: arg('--dtype') as DType | undefined, python: arg('--python') });
}
