// LoRA vs full fine-tuning (`npm run bench -- lora`):
//   measured: on the ~10.5M-parameter bench Llama (bench/models.ts), the trainable parameters and the optimizer
//     state after one step (RMSprop and AdamW, full and LoRA), and the time of a training step (forward, token
//     log-prob loss, backward, optimizer step) with and without LoRA, alternating in rounds;
//   computed (not measured): the memory of one SPPO training step of Llama-3-8B, Mistral-7B and Gemma-2-9B in
//     bf16 with gradient checkpointing and chunked logits, full (RMSprop state in bf16 or float32) and LoRA, from
//     the parameter shapes of their HF configs (declared, never allocated) and the activation sizes below.
//   node dist/bench/lora.js [--device cuda] [--dtype bfloat16]
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AdamW, cuda, defaultDevice, ELEMENT_SIZE, getNumThreads, randint, RMSprop, tidy, type DType, type Optimizer } from '../src/torch/index.js';
import { createModel, loadModel, parseConfig, type CausalLMBase } from '../src/models/index.js';
import { ALL_LINEAR, Conv1D, Linear, Lora, matchesTarget, type LoraOptions } from '../src/nn/index.js';
import { benchLlamaConfig, writeBenchModel } from './models.js';
import { median, stats, timeRepeats, arg } from './stats.js';

const GB = 1e9;
const MB = 1e6;

/** Adapter parameters of a model for target modules and rank, from the declared shapes (nothing allocated). */
export function adapterParams(model: CausalLMBase, r: number, targets: string[] | string): number {
  let n = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear || m instanceof Conv1D)) continue;
    const hit = targets === ALL_LINEAR ? name !== 'lm_head' : matchesTarget(name, targets);
    if (hit) n += r * (m.inFeatures + m.outFeatures);
  }
  return n;
}

function stateBytes(opt: Optimizer): number {
  const sd = opt.stateDict();
  let n = 0;
  for (const t of sd.tensors.values()) {
    n += t.numel * ELEMENT_SIZE[t.dtype];
    t.dispose();
  }
  return n;
}

interface Measured {
  what: string;
  trainable: number;
  rmspropBytes: number;
  adamwBytes: number;
  stepMs: number[];
  cpuMs: number[];
}

/** One configuration (full, or LoRA with `lora`): state sizes after one step of each optimizer, then timed AdamW steps. */
function measure(dir: string, o: { device: string; dtype: DType; batch: number; seqLen: number; repeats: number }, lora?: LoraOptions): Measured {
  const model = loadModel(dir, { dtype: o.dtype, device: o.device });
  const adapters = lora ? Lora.attach(model, lora) : undefined;
  try {
    model.train();
    const params = adapters ? adapters.parameters() : model.parameters();
    for (const p of params) p.requiresGrad_(true);
    const ids = randint(3, model.config.vocabSize, [o.batch, o.seqLen], { device: model.device });
    const stepWith = (opt: Optimizer) => (): void => tidy(() => {
      adapters?.nextPass();
      const loss = model.tokenLogprobs({ inputIds: ids }).mean().neg();
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
    const sizes: number[] = [];
    for (const make of [RMSprop, AdamW]) {
      using opt = make(params, { lr: 1e-4 });
      stepWith(opt)();
      sizes.push(stateBytes(opt));
    }
    using opt = AdamW(params, { lr: 1e-4 });
    const sync = (): void => {
      if (model.device.startsWith('cuda')) cuda.synchronize();
    };
    // Wall time, and this process's CPU time (user + system, all its threads): on a machine other work shares,
    // the CPU time is the steadier of the two.
    const cpuMs: number[] = [];
    const stepMs = timeRepeats(() => {
      const c0 = process.cpuUsage();
      stepWith(opt)();
      const c = process.cpuUsage(c0);
      cpuMs.push((c.user + c.system) / 1000);
    }, o.repeats, 1, sync).map((s) => s * 1000);
    cpuMs.shift(); // the warm-up
    ids.dispose();
    const trainable = params.reduce((n, p) => n + p.numel, 0);
    const what = lora ? `LoRA r ${lora.r}, ${Array.isArray(lora.targetModules) ? lora.targetModules.join(',') : lora.targetModules}` : 'full fine-tuning';
    return { what, trainable, rmspropBytes: sizes[0]!, adamwBytes: sizes[1]!, stepMs, cpuMs };
  } finally {
    adapters?.dispose();
    model.dispose();
  }
}

/** The HF configs (the fields that set the shapes) of the paper's three policies. */
export const PAPER_MODELS: Record<string, Record<string, unknown>> = {
  'Mistral-7B-Instruct-v0.2': {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
    rope_theta: 1e6, hidden_act: 'silu', tie_word_embeddings: false, sliding_window: null, bos_token_id: 1, eos_token_id: 2,
  },
  'Meta-Llama-3-8B-Instruct': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
    rope_theta: 500000, hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: 128000, eos_token_id: 128009,
  },
  'gemma-2-9b-it': {
    architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', vocab_size: 256000, hidden_size: 3584, intermediate_size: 14336,
    num_hidden_layers: 42, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 256, max_position_embeddings: 8192,
    rms_norm_eps: 1e-6, rope_theta: 10000, hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 256, sliding_window: 4096,
    final_logit_softcapping: 30, attn_logit_softcapping: 50, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1, pad_token_id: 0,
  },
};

export interface MemoryPlan {
  params: number;
  adapter: number;
  /** Bytes. */
  weights: number;
  fullGrads: number;
  rmspropBf16: number;
  rmspropF32: number;
  loraTrain: number;
  activations: number;
}

/**
 * Memory of one training micro-batch of `seqs` sequences of `len` tokens, bf16 weights, gradient checkpointing
 * (one saved [seqs, len, hidden] bf16 input per layer, plus one layer's activations while it is recomputed,
 * counted twice for their gradients) and chunked logits (a float32 chunk near 256 MB, with its softmax and
 * gradient: 3x). LoRA: A and B in float32, their gradients and AdamW's two moments (16 bytes a parameter).
 */
export function memoryPlan(cfgJson: Record<string, unknown>, o: { seqs: number; len: number; r: number; targets: string[] | string }): MemoryPlan {
  const cfg = parseConfig(cfgJson);
  const model = createModel(cfg);
  const params = model.numParameters();
  const adapter = adapterParams(model, o.r, o.targets);
  const tok = o.seqs * o.len;
  const h = cfg.hiddenSize;
  const qkv = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
  // One layer's autograd-saved tensors while recomputed (fused attention: no L x L scores kept): the two norm
  // inputs, q/k/v before and after rotary, the attention output, the MLP's gate, up, activation and product.
  const layer = tok * (2 * h + 2 * qkv + cfg.numHeads * cfg.headDim + 4 * cfg.intermediateSize) * 2;
  const activations = cfg.numLayers * tok * h * 2 + 2 * layer + 3 * 256 * MB;
  return {
    params, adapter,
    weights: params * 2,
    fullGrads: params * 2,
    rmspropBf16: params * 2,
    rmspropF32: params * 4,
    loraTrain: adapter * 16,
    activations,
  };
}

export async function run(opts: { device?: string; dtype?: DType; repeats?: number } = {}): Promise<void> {
  const device = opts.device ?? defaultDevice();
  const dtype = opts.dtype ?? 'float32';
  const cpu = device === 'cpu';
  const [batch, seqLen] = cpu ? [4, 128] : [8, 256];
  const o = { device, dtype, batch, seqLen, repeats: opts.repeats ?? 5 };
  const dir = writeBenchModel();
  try {
    const configs: (LoraOptions | undefined)[] = [undefined, { r: 16, alpha: 32, targetModules: ALL_LINEAR }, { r: 16, alpha: 32, targetModules: ['q_proj', 'v_proj'] }];
    const runs: Measured[][] = configs.map(() => []);
    // Two rounds, alternating the configurations, so that a slow spell of the machine falls on all.
    for (let round = 0; round < 2; round++) configs.forEach((c, i) => runs[i]!.push(measure(dir, o, c)));
    console.log(`lora: ~10.5M-parameter bench Llama, ${device}, ${dtype}, ${getNumThreads()} threads; training step b${batch} x ${seqLen} (AdamW), 2 rounds of 1 warm-up + ${o.repeats} timed steps`);
    console.log('| configuration | trainable parameters | RMSprop state | AdamW state | step, wall (median, min-max) | step, CPU time (median, min-max) | tok/s (wall) |');
    console.log('|---|---|---|---|---|---|---|');
    const span = (xs: number[]): string => {
      const s = stats(xs);
      return `${s.median.toFixed(1)} ms (${s.min.toFixed(1)}-${s.max.toFixed(1)})`;
    };
    for (const rs of runs) {
      const m = rs[0]!;
      const ms = rs.flatMap((r) => r.stepMs);
      console.log(`| ${m.what} | ${m.trainable.toLocaleString('en')} | ${(m.rmspropBytes / MB).toFixed(2)} MB | ${(m.adamwBytes / MB).toFixed(2)} MB | ${span(ms)} | ${span(rs.flatMap((r) => r.cpuMs))} | ${Math.round((batch * seqLen) / (median(ms) / 1000))} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const seqs = 4;
  const len = 1024;
  const r = 16;
  console.log(`\ncomputed, not measured: one micro-batch of ${seqs} sequences x ${len} tokens (2 pairs), bf16 weights, gradient checkpointing, chunked logits; LoRA r ${r} on all linear layers (A, B, their gradients and AdamW state in float32)`);
  console.log('| model | parameters | weights (bf16) | activations | full, RMSprop state bf16 | full, RMSprop state float32 | LoRA (adapter params) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, cfg] of Object.entries(PAPER_MODELS)) {
    const p = memoryPlan(cfg, { seqs, len, r, targets: ALL_LINEAR });
    const fullBf16 = p.weights + p.fullGrads + p.rmspropBf16 + p.activations;
    const fullF32 = p.weights + p.fullGrads + p.rmspropF32 + p.activations;
    const lora = p.weights + p.loraTrain + p.activations;
    const g = (x: number): string => `${(x / GB).toFixed(1)} GB`;
    console.log(`| ${name} | ${(p.params / 1e9).toFixed(2)}B | ${g(p.weights)} | ${g(p.activations)} | ${g(fullBf16)} | ${g(fullF32)} | ${g(lora)} (${(p.adapter / 1e6).toFixed(1)}M) |`);
  }
}

export interface StepResult {
  mode: 'full' | 'lora';
  seconds: number[];
  tokensPerS: number;
  /** Peak bytes the CUDA caching allocator held during the steps (null on the CPU). */
  peakAllocated: number | null;
  peakReserved: number | null;
}

/**
 * One SPPO training step (the trainer itself: a pair of `len`-token sequences, sppo loss, RMSprop, gradient
 * checkpointing, chunked logits) of a model of the given HF config with random weights, full or LoRA (r 16, all
 * linear layers), timed over `steps` optimizer steps; the reference log-probs come with the examples, so no
 * reference pass or copy is timed. For the GPU check of docs/lora.md:
 *   node dist/bench/lora.js --step Meta-Llama-3-8B-Instruct --device cuda --dtype bfloat16 [--layers N] [--len 1024]
 */
export async function trainStep(cfgJson: Record<string, unknown>, o: { device: string; dtype: DType; len: number; steps: number; mode: 'full' | 'lora'; layers?: number }): Promise<StepResult> {
  const { train } = await import('../src/sppo/trainer.js');
  const json = o.layers ? { ...cfgJson, num_hidden_layers: o.layers } : cfgJson;
  const model = createModel(parseConfig(json));
  model.initWeights({ std: 0.02, seed: 0, dtype: o.dtype, device: o.device });
  const gpu = o.device.startsWith('cuda') ? Number(o.device.split(':')[1] ?? 0) : null;
  try {
    const half = o.len / 2;
    const ids = (k: number, salt: number): number[] => Array.from({ length: k }, (_, i) => 3 + ((i * 7919 + salt) % (model.config.vocabSize - 3)));
    const examples = Array.from({ length: o.steps }, (_, i) => ({
      promptIds: ids(half, i), chosenIds: ids(half, i + 1), rejectedIds: ids(half, i + 2),
      chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8, chosenRefLogprob: -half * 10, rejectedRefLogprob: -half * 10,
    }));
    if (gpu !== null) cuda.resetPeakMemory(gpu);
    const seconds: number[] = [];
    let t0 = performance.now();
    const r = await train({
      policy: model, examples, loss: 'sppo', beta: 1e-3, lr: o.mode === 'lora' ? 5e-5 : 5e-7, epochs: 1, batchSize: 1, gradAccum: 1,
      optimizer: 'rmsprop', warmupRatio: 0, schedule: 'constant', maxLength: o.len, maxPromptLength: half, maxGradNorm: 1,
      dtype: o.dtype === 'bfloat16' ? 'bfloat16' : 'float32', device: o.device, seed: 0, gradientCheckpointing: true,
      lora: o.mode === 'lora' ? { r: 16, alpha: 32, targetModules: ALL_LINEAR } : undefined,
      onStep: () => {
        if (gpu !== null) cuda.synchronize();
        const t = performance.now();
        seconds.push((t - t0) / 1000);
        t0 = t;
      },
    });
    r.lora?.dispose();
    const stats0 = gpu !== null ? cuda.memoryStats(gpu) : null;
    // The first step includes the optimizer's state allocation and kernel warm-up: tok/s from the others when there are.
    const timed = seconds.length > 1 ? seconds.slice(1) : seconds;
    return { mode: o.mode, seconds, tokensPerS: (2 * o.len) / median(timed), peakAllocated: stats0?.peakAllocated ?? null, peakReserved: stats0?.peakReserved ?? null };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const step = arg('--step');
  if (step) {
    // 'bench': the ~10.5M-parameter bench Llama (a quick check of this path on the CPU).
    const cfg = step === 'bench' ? benchLlamaConfig() : PAPER_MODELS[step];
    if (!cfg) throw new Error(`--step: one of bench, ${Object.keys(PAPER_MODELS).join(', ')}`);
    const device = arg('--device') ?? defaultDevice();
    const dtype = (arg('--dtype') ?? (device.startsWith('cuda') ? 'bfloat16' : 'float32')) as DType;
    const len = Number(arg('--len') ?? 1024);
    const layers = arg('--layers') ? Number(arg('--layers')) : undefined;
    const modes = (arg('--modes') ?? 'lora,full').split(',') as ('full' | 'lora')[];
    for (const mode of modes) {
      const r = await trainStep(cfg, { device, dtype, len, steps: Number(arg('--steps') ?? 3), mode, layers });
      console.log(JSON.stringify({ model: step, layers: layers ?? cfg.num_hidden_layers, device, dtype, len, ...r }));
    }
  } else await run({ device: arg('--device'), dtype: arg('--dtype') as DType | undefined });
}
