// Decoding on a GPU as one replayed CUDA graph per batch bucket: the static step (decode_step.ts) for a
// bucket (rows, prompt length, max new tokens, sampling options) is captured once, with its own sampling
// Generator registered with the graph, and every later batch of that bucket loads its prefill into the
// step's tensors, reseeds the generator and replays the graph once per token.
import { CudaGraph, Generator } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { DecodeStep, type DecodeStepOptions, type PrefillState } from './decode_step.js';
import { isGreedy } from './sampling.js';

/** Prompt lengths are padded up to a multiple of this on the graph path (fewer buckets, fewer captures). */
export const GRAPH_PROMPT_MULTIPLE = 16;
/** Graphs kept per model (the least recently used one is freed beyond it). */
const MAX_GRAPHS = 4;

export class GraphedDecoder implements Disposable {
  /** The static step the graph replays. */
  readonly decodeStep: DecodeStep;
  readonly graph: CudaGraph;
  readonly generator: Generator | undefined;

  constructor(model: CausalLM, opts: Omit<DecodeStepOptions, 'generator'>) {
    this.generator = isGreedy(opts) ? undefined : new Generator(0, model.device);
    const step = new DecodeStep(model, { ...opts, generator: this.generator });
    let graph: CudaGraph | null = null;
    try {
      graph = new CudaGraph(model.device);
      // The warm-up calls run for real (from step 0, before any load): no more of them than the bucket has
      // steps, or they would write past the [rows, maxNew] outputs (on a GPU a device-side assert, fatal to the process).
      graph.capture(() => step.run(), { generators: this.generator ? [this.generator] : [], warmup: Math.min(2, opts.maxNewTokens) });
    } catch (e) {
      graph?.dispose();
      step.dispose();
      throw e;
    }
    this.decodeStep = step;
    this.graph = graph;
  }

  /** Starts a batch: its prefill loaded, the generator seeded (as the op-by-op loop's new Generator(seed)). */
  load(prefill: PrefillState, seed: number): void {
    this.decodeStep.load(prefill);
    this.generator?.manualSeed(seed);
  }

  replay(): void {
    this.graph.replay();
  }

  dispose(): void {
    this.graph.dispose();
    this.decodeStep.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

const graphs = new WeakMap<CausalLM, Map<string, GraphedDecoder>>();
let failure: string | null = null;

/**
 * Why a capture failed in this process (graph: 'auto' then decodes op by op from there on, after one warning
 * on stderr), or null. graph: 'on' still tries, and throws.
 */
export function decodeGraphFailure(): string | null {
  return failure;
}

function keyOf(model: CausalLM, o: Omit<DecodeStepOptions, 'generator'>): string {
  const greedy = isGreedy(o);
  return JSON.stringify([model.device, model.dtype, o.rows, o.promptLength, o.maxNewTokens, o.minNewTokens ?? 0, [...o.endTokenIds].sort((a, b) => a - b), o.padTokenId,
    greedy ? 0 : o.temperature ?? 1, greedy ? 0 : o.topK ?? 0, greedy ? 1 : o.topP ?? 1]);
}

/** The graphed decoder of a bucket, captured on first use and kept (up to 4 per model) for the next batches. */
export function graphedDecoder(model: CausalLM, opts: Omit<DecodeStepOptions, 'generator'>): GraphedDecoder {
  let m = graphs.get(model);
  if (!m) graphs.set(model, (m = new Map()));
  const key = keyOf(model, opts);
  let d = m.get(key);
  if (d) {
    m.delete(key); // most recently used last
    m.set(key, d);
    return d;
  }
  while (m.size >= MAX_GRAPHS) {
    const [k, old] = m.entries().next().value as [string, GraphedDecoder];
    old.dispose();
    m.delete(k);
  }
  try {
    d = new GraphedDecoder(model, opts);
  } catch (e) {
    failure ??= (e as Error).message;
    throw e;
  }
  m.set(key, d);
  return d;
}

/** Frees a model's captured decoding graphs and their static caches (e.g. before training on the same GPU). */
export function releaseDecodeGraphs(model: CausalLM): void {
  const m = graphs.get(model);
  if (!m) return;
  for (const d of m.values()) d.dispose();
  graphs.delete(model);
}

/** How many decoding graphs a model holds now. */
export function decodeGraphCount(model: CausalLM): number {
  return graphs.get(model)?.size ?? 0;
}
