// Benchmarks of the model layer against PyTorch (bench/peer_models.py: the same Llama written as a
// PyTorch user writes it, run with /usr/bin/python3): generation throughput of a ~10M-parameter Llama
// (batch 32, 128 new tokens, sampling with a KV cache) and a training step (forward, token log-prob
// loss, backward, AdamW) of the same model. Both sides use the same weights (written by sppo as an HF
// folder, read by the peer), dtype, device and thread count, and are timed at steady state: warm-up
// runs first, then every timed repeat is kept (median and spread in the table). The training step
// alternates sppo and PyTorch in rounds, so that a slow spell of the machine falls on both.
//   node dist/bench/models.js [--device cuda] [--dtype bfloat16]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdamW, cuda, defaultDevice, formatProfile, getNumThreads, profile, randint, tidy, type DType } from '../src/torch/index.js';
import { createModel, loadModel, parseConfig, saveModel, type CausalLMBase } from '../src/models/index.js';
import { generate } from '../src/generate/index.js';
import { runPeer } from './peer.js';
import { header, row, stats, timeRepeats, arg } from './stats.js';

export interface BenchOptions {
  device?: string;
  dtype?: DType;
  /** Timed repeats per round (after the warm-up). */
  repeats?: number;
  warmup?: number;
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

interface PeerTiming {
  seconds: number[];
  torch: string;
  threads: number;
}

function peer(dir: string, task: Record<string, unknown>, o: BenchOptions): PeerTiming | null {
  const args = { ...task, device: o.device ?? defaultDevice(), dtype: o.dtype ?? 'float32', threads: getNumThreads(), repeats: o.repeats ?? 5, warmup: o.warmup ?? 1 };
  return runPeer<PeerTiming>('peer_models.py', [dir, JSON.stringify(args)], o.python);
}

const syncOf = (device: string) => (): void => {
  if (device.startsWith('cuda')) cuda.synchronize();
};

function load(dir: string, o: BenchOptions): CausalLMBase {
  return loadModel(dir, { dtype: o.dtype ?? 'float32', device: o.device ?? defaultDevice() });
}

export interface Timings {
  /** Seconds of each timed repeat. */
  sppo: number[];
  torch: number[] | null;
  torchVersion: string | null;
}

/** Sampling (temperature 1, KV cache, every sequence runs the full `newTokens`): seconds per repeat, both sides. */
export function benchGeneration(dir: string, o: BenchOptions & { batch: number; promptLen: number; newTokens: number }): Timings {
  const model = load(dir, o);
  const prompts = tidy(() => randint(3, model.config.vocabSize, [o.batch, o.promptLen]).toArray() as number[][]);
  let seed = 0;
  const sppo = timeRepeats(() => {
    const gens = generate(model, prompts, { temperature: 1, maxNewTokens: o.newTokens, eosTokenIds: [], seed: seed++ });
    if (gens.some((g) => g.tokens.length !== o.newTokens)) throw new Error('bench: a sequence stopped early');
  }, o.repeats ?? 5, o.warmup ?? 1, syncOf(model.device));
  model.dispose();
  const p = peer(dir, { task: 'generate', batch: o.batch, prompt_len: o.promptLen, new_tokens: o.newTokens }, o);
  return { sppo, torch: p?.seconds ?? null, torchVersion: p?.torch ?? null };
}

/** Training steps (mean token log-prob loss, backward, AdamW), in `rounds` alternating sppo and PyTorch. */
export function benchTrainStep(dir: string, o: BenchOptions & { batch: number; seqLen: number; rounds?: number }): Timings {
  const model = load(dir, o);
  model.train().requiresGrad_(true);
  using opt = AdamW(model.parameters(), { lr: 1e-4 });
  const ids = randint(3, model.config.vocabSize, [o.batch, o.seqLen], { device: model.device });
  const step = (): void => tidy(() => {
    const loss = model.tokenLogprobs({ inputIds: ids }).mean().neg();
    opt.zeroGrad();
    loss.backward();
    opt.step();
  });
  const out: Timings = { sppo: [], torch: [], torchVersion: null };
  for (let r = 0; r < (o.rounds ?? 2); r++) {
    out.sppo.push(...timeRepeats(step, o.repeats ?? 5, o.warmup ?? 1, syncOf(model.device)));
    const p = out.torch && peer(dir, { task: 'train', batch: o.batch, seq_len: o.seqLen }, o);
    if (p) {
      out.torch!.push(...p.seconds);
      out.torchVersion = p.torch;
    } else out.torch = null;
  }
  ids.dispose();
  model.dispose();
  return out;
}

/** Where sppo's training step spends its time: libtorch's profiler over 3 steps after 2 of warm-up, per operator. */
export function profileTrainStep(o: BenchOptions = {}, batch = 4, seqLen = 128): string {
  const dir = writeBenchModel();
  try {
    const model = load(dir, o);
    model.train().requiresGrad_(true);
    using opt = AdamW(model.parameters(), { lr: 1e-4 });
    const ids = randint(3, model.config.vocabSize, [batch, seqLen], { device: model.device });
    const step = (): void => tidy(() => {
      const loss = model.tokenLogprobs({ inputIds: ids }).mean().neg();
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
    step();
    step();
    const { rows } = profile(() => [0, 1, 2].forEach(step));
    ids.dispose();
    model.dispose();
    return `train step b${batch} x ${seqLen}, 3 steps (the profiler adds its own time to every operator):\n${formatProfile(rows, 30)}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints both benchmarks (called by bench/bench.ts: `npm run bench`, or `npm run bench -- models`). */
export async function run(opts: BenchOptions = {}): Promise<void> {
  const device = opts.device ?? defaultDevice();
  const cpu = device === 'cpu';
  const o: BenchOptions = { device, dtype: opts.dtype ?? 'float32', repeats: opts.repeats ?? 5, warmup: opts.warmup ?? 1, python: opts.python };
  const dir = writeBenchModel();
  try {
    const g = benchGeneration(dir, { ...o, batch: 32, promptLen: 16, newTokens: 128 });
    const tokens = 32 * 128;
    // On the CPU a smaller step keeps the run short; the ratio is what counts.
    const [batch, seqLen] = cpu ? [4, 128] : [8, 256];
    const t = benchTrainStep(dir, { ...o, batch, seqLen, rounds: 2 });
    console.log(`models: ~10.5M-parameter Llama, ${device}, ${o.dtype}, ${getNumThreads()} threads${g.torchVersion ? `, PyTorch ${g.torchVersion}` : ''}`);
    console.log(header());
    console.log(row('generation b32 x 128 new', g.sppo.map((s) => tokens / s), g.torch?.map((s) => tokens / s) ?? null, 'tok/s', 'higher', 1, '>= 1'));
    console.log(row(`train step b${batch} x ${seqLen}`, t.sppo.map((s) => s * 1000), t.torch?.map((s) => s * 1000) ?? null, 'ms', 'lower', 1, '<= 1.05'));
    const n = stats(t.sppo).n;
    console.log(`(generation: ${o.warmup} warm-up + ${g.sppo.length} timed runs a side; train step: 2 rounds of ${o.warmup} warm-up + ${n / 2} timed steps a side, alternating)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run({ device: arg('--device'), dtype: arg('--dtype') as DType | undefined, python: arg('--python') });
}
