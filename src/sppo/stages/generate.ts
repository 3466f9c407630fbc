// Stage 1, generation: K responses per prompt of the iteration from pi_{t-1} (iter-t/generations.jsonl), and
// the one response per held-out prompt that evaluation compares (iter-t/eval-responses.jsonl). Prompts go in
// length-sorted chunks; each chunk is saved (a unit of resumption) before the next. With several ranks, chunk c
// is rank c mod worldSize's (its seed depends on c only, so the lines are those one process writes); after a
// barrier every rank reads the others' chunks, and rank 0 writes the stage's file.
import { existsSync } from 'node:fs';
import type { CausalLMBase } from '../../models/causal_lm.js';
import { hasLearnedPositions, readConfig } from '../../models/config.js';
import { generate } from '../../generate/generate.js';
import { releaseDecodeGraphs } from '../../generate/decode_graph.js';
import type { Tokenizer } from '../../text/tokenizer.js';
import { mixSeed } from '../../util/rng.js';
import { readJsonl, writeJsonlAtomic } from '../run_dir.js';
import { idOf, isLeader, loadStageModel, ownsChunk, SEED_GENERATE, sync, timing, type GenerationLine, type Item, type SamplingConfig, type StageContext } from './context.js';
import { remoteGenerator, type RemoteGenerator } from '../remote_generation.js';

export interface GenerateInput {
  t: number;
  /** 'generate' or 'eval-generate' (names the chunks, the progress bar and the kill hook's stage). */
  stage: string;
  modelDir: string;
  items: Item[];
  sampling: SamplingConfig;
  tokenizer: Tokenizer;
  seedParts: number[];
  /** The finished file. */
  out: string;
  /** Sample from the geometric mixture of modelDir's model and this one's (generate.ts GenerateOptions.mixture). */
  mixture?: { modelDir: string; coef: number };
}

/** Generates (or reads back the finished chunks of) `n` responses per item, in length-sorted chunks of `batchSize` prompts. */
export async function generateStage(ctx: StageContext, input: GenerateInput): Promise<GenerationLine[]> {
  const { cfg, rd, progress } = ctx;
  const { t, stage, items, sampling: s, out } = input;
  const t0 = performance.now();
  // A prompt is skipped (and says why in the file) when empty, longer than training.maxPromptLength, or, for a
  // model with learned positions (GPT-2), too long to leave room for maxNewTokens within them.
  const model0 = readConfig(input.modelDir);
  const room = hasLearnedPositions(model0) ? model0.maxPositions - s.maxNewTokens : Infinity;
  const skipReason = (it: Item): string | undefined =>
    it.ids.length === 0
      ? 'empty prompt'
      : it.ids.length > cfg.training.maxPromptLength
        ? `prompt has ${it.ids.length} tokens > training.maxPromptLength = ${cfg.training.maxPromptLength}`
        : it.ids.length > room
          ? `prompt has ${it.ids.length} tokens; with generation.maxNewTokens = ${s.maxNewTokens} that passes the model's ${model0.maxPositions} positions (config.json n_positions)`
          : undefined;
  const usable = items.filter((it) => skipReason(it) === undefined);
  const order = usable.map((_, i) => i).sort((a, b) => usable[a]!.ids.length - usable[b]!.ids.length || usable[a]!.index - usable[b]!.index);
  const nChunks = Math.ceil(order.length / s.batchSize);
  const byIndex = new Map<number, GenerationLine>();
  let model: CausalLMBase | undefined;
  let mixModel: CausalLMBase | undefined;
  let remote: RemoteGenerator | undefined;
  let tokens = 0;
  // Remote generation (generation.backend) runs from rank 0 only.
  const owns = (c: number): boolean => (cfg.generation.backend && stage === 'generate' ? isLeader(ctx) : ownsChunk(ctx, c));
  progress.start(`iter ${t} ${stage}`, nChunks, 0);
  try {
    for (let c = 0; c < nChunks; c++) {
      const path = rd.chunkPath(t, stage, c);
      if (!owns(c)) continue;
      let lines: GenerationLine[];
      if (existsSync(path)) {
        lines = readJsonl<GenerationLine>(path);
      } else {
        const chunk = order.slice(c * s.batchSize, (c + 1) * s.batchSize).map((i) => usable[i]!);
        const load = (dir = input.modelDir): CausalLMBase => loadStageModel(dir, `iteration ${t} ${stage}`, ctx.dtype, ctx.device);
        const mixture = input.mixture ? { mixture: { model: (mixModel ??= load(input.mixture.modelDir)), coef: input.mixture.coef } } : {};
        // generation.backend: the training samples come from OpenAI-compatible servers (remote_generation.ts).
        if (cfg.generation.backend && stage === 'generate') remote ??= remoteGenerator(cfg.generation.backend, { checkpoint: input.modelDir, tokenizer: input.tokenizer, log: ctx.log, loadModel: load, prompts: { raw: cfg.raw, chatTemplateKwargs: cfg.chatTemplateKwargs } });
        const gens = remote
          ? await remote.generate(chunk.map((it) => it.ids), { ...s, seed: mixSeed(...input.seedParts, c) })
          : generate((model ??= load()), chunk.map((it) => it.ids), {
              n: s.n, temperature: s.temperature, topP: s.topP, topK: s.topK, maxNewTokens: s.maxNewTokens, minNewTokens: s.minNewTokens,
              stopStrings: s.stop.length ? s.stop : undefined, seed: mixSeed(...input.seedParts, c), tokenizer: input.tokenizer, graph: s.graph, ...mixture,
            });
        lines = chunk.map((it, j) => ({
          index: it.index,
          ...idOf(it),
          prompt_text: it.text,
          prompt_ids: it.ids,
          responses: gens.slice(j * s.n, (j + 1) * s.n).map((g) => {
            tokens += g.tokens.length;
            return { text: g.text, token_ids: g.tokens, logprob: g.logprobs.reduce((a, x) => a + x, 0), finish_reason: g.finishReason };
          }),
        }));
        writeJsonlAtomic(path, lines);
        ctx.kill(t, stage, c + 1);
      }
      for (const l of lines) byIndex.set(l.index, l);
      progress.update(c + 1);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    progress.stop();
    if (model) releaseDecodeGraphs(model);
    model?.dispose();
    mixModel?.dispose();
    await remote?.stop();
  }
  if (ctx.dist) {
    // Every rank's chunks are saved: read the others'. The second barrier keeps rank 0 from dropping them before.
    await sync(ctx);
    for (let c = 0; c < nChunks; c++) if (!owns(c)) for (const l of readJsonl<GenerationLine>(rd.chunkPath(t, stage, c))) byIndex.set(l.index, l);
    await sync(ctx);
  }
  const all: GenerationLine[] = items.map((it) =>
    byIndex.get(it.index) ?? { index: it.index, ...idOf(it), prompt_text: it.text, prompt_ids: it.ids, responses: [], skipped: skipReason(it) ?? 'not generated' },
  );
  if (isLeader(ctx)) {
    writeJsonlAtomic(out, all);
    rd.dropPartial(t, stage);
  }
  const skipped = all.filter((l) => l.skipped).length;
  if (skipped) ctx.log(`sppo run: iteration ${t} ${stage}: ${skipped} prompt(s) skipped (too long or empty; see ${out})`);
  timing(ctx, t, stage, t0, { tokens });
  return all;
}

/** Iteration t's samples from pi_{t-1} (policyDir): iter-t/generations.jsonl, read back when finished. */
export async function generateIteration(ctx: StageContext, input: { t: number; policyDir: string; items: Item[]; sampling: SamplingConfig; tokenizer: Tokenizer }): Promise<GenerationLine[]> {
  const { t } = input;
  const genPath = ctx.rd.path(t, 'generations.jsonl');
  if (existsSync(genPath)) return readJsonl<GenerationLine>(genPath);
  return generateStage(ctx, { t, stage: 'generate', modelDir: input.policyDir, items: input.items, sampling: input.sampling, tokenizer: input.tokenizer, seedParts: [ctx.cfg.seed, t, SEED_GENERATE], out: genPath });
}
