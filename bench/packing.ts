// Training on packed sequences against right-padded batches (`npm run bench -- packing`): one SPPO-like
// training step (the summed response log-probs of 2 x pairs sequences, a squared loss, backward, RMSprop) of the
// bench Llama (bench/models.ts, ~10M parameters), with sequences of SPPO's mixed lengths (prompts 16-96 tokens,
// responses 8-256: most generations stop at EOS before the cap), padded (packSequences) and packed
// (packRows), timed alternately in rounds. Tokens/s counts the sequences' tokens (no padding) on both sides.
//   node dist/bench/bench.js packing [--pairs 8] [--device cpu] [--dtype float32] [--rounds 2]
import { cuda, defaultDevice, RMSprop, tidy, type DType } from '../src/torch/index.js';
import { createModel, parseConfig, type CausalLMBase } from '../src/models/index.js';
import { packRows, packSequences, responseLogprobs, type PromptResponse } from '../src/sppo/logprobs.js';
import { createRng } from '../src/util/rng.js';
import { benchLlamaConfig } from './models.js';
import { arg, numArg, stats } from './stats.js';

/** Sequences of SPPO's shape: `pairs` prompts, each with two responses of independent lengths. */
export function sppoLikeSequences(pairs: number, opts: { seed?: number; vocab?: number; prompt?: [number, number]; response?: [number, number] } = {}): PromptResponse[] {
  const rng = createRng(opts.seed ?? 1);
  const [p0, p1] = opts.prompt ?? [16, 96];
  const [r0, r1] = opts.response ?? [8, 256];
  const vocab = opts.vocab ?? 8192;
  const ids = (n: number): number[] => Array.from({ length: n }, () => 3 + rng.int(vocab - 3));
  const len = (a: number, b: number): number => a + rng.int(b - a + 1);
  const prompts = Array.from({ length: pairs }, () => ids(len(p0, p1)));
  return [
    ...prompts.map((p) => ({ promptIds: p, responseIds: ids(len(r0, r1)) })),
    ...prompts.map((p) => ({ promptIds: p, responseIds: ids(len(r0, r1)) })),
  ];
}

export interface PackingTiming {
  /** Seconds per training step, every timed repeat. */
  padded: number[];
  packed: number[];
  tokens: number;
  /** Positions through the model: padded N x Lmax, packed R x L. */
  paddedPositions: number;
  packedPositions: number;
}

/** Times training steps over the same sequences, padded and packed, alternating in rounds. */
export function timePacking(model: CausalLMBase, seqs: PromptResponse[], opts: { rounds?: number; repeats?: number; sync?: () => void } = {}): PackingTiming {
  const sync = opts.sync ?? (() => {});
  const params = model.parameters();
  for (const p of params) p.requiresGrad_(true);
  const opt = RMSprop(params, { lr: 1e-7, alpha: 0.99, eps: 1e-8 });
  const pad = model.config.padTokenId ?? 0;
  const dev = model.device;
  const step = (packed: boolean): void => tidy(() => {
    const batch = packed ? packRows(seqs, pad, { device: dev }) : packSequences(seqs, pad, dev);
    responseLogprobs(model, batch).add(100).square().mean().backward();
    opt.step();
    opt.zeroGrad();
  });
  const padded: number[] = [];
  const packed: number[] = [];
  const time = (packedSide: boolean, out: number[], n: number): void => {
    for (let i = 0; i < n; i++) {
      sync();
      const t0 = performance.now();
      step(packedSide);
      sync();
      out.push((performance.now() - t0) / 1000);
    }
  };
  try {
    time(false, [], 1);
    time(true, [], 1);
    for (let r = 0; r < (opts.rounds ?? 2); r++) {
      time(false, padded, opts.repeats ?? 2);
      time(true, packed, opts.repeats ?? 2);
    }
  } finally {
    opt.dispose();
    for (const p of params) p.requiresGrad_(false);
  }
  const lens = seqs.map((s) => s.promptIds.length + s.responseIds.length);
  const layout = tidy(() => {
    const b = packRows(seqs, pad);
    return { rows: b.rows, rowLength: b.rowLength };
  });
  return {
    padded, packed,
    tokens: lens.reduce((a, x) => a + x, 0),
    paddedPositions: seqs.length * Math.max(...lens),
    packedPositions: layout.rows * layout.rowLength,
  };
}

export async function run(): Promise<void> {
  const device = arg('--device') ?? defaultDevice();
  const dtype = (arg('--dtype') ?? (device.startsWith('cuda') ? 'bfloat16' : 'float32')) as DType;
  const pairs = numArg('--pairs') ?? 8;
  const model = createModel(parseConfig(benchLlamaConfig()));
  model.initWeights({ std: 0.02, seed: 0, dtype, device });
  const sync = device.startsWith('cuda') ? () => cuda.synchronize() : undefined;
  try {
    console.log(`packed vs padded training step: bench Llama (${(model.numParameters() / 1e6).toFixed(1)}M), ${device} ${dtype}, ${pairs} pairs (${2 * pairs} sequences), prompts 16-96, responses 8-256 tokens`);
    for (const seed of [1, 2, 3]) {
      const seqs = sppoLikeSequences(pairs, { seed });
      const t = timePacking(model, seqs, { rounds: numArg('--rounds') ?? 2, sync });
      const a = stats(t.padded), b = stats(t.packed);
      console.log(`  seed ${seed}: ${t.tokens} tokens; positions padded ${t.paddedPositions}, packed ${t.packedPositions} (${(t.packedPositions / t.paddedPositions).toFixed(2)}x); ` +
        `tokens/s padded ${(t.tokens / a.median).toFixed(0)} (${(t.tokens / a.max).toFixed(0)}-${(t.tokens / a.min).toFixed(0)}), packed ${(t.tokens / b.median).toFixed(0)} (${(t.tokens / b.max).toFixed(0)}-${(t.tokens / b.min).toFixed(0)}): packed/padded ${(a.median / b.median).toFixed(2)}x`);
    }
  } finally {
    model.dispose();
  }
}
