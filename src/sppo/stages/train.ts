// Stage 4, training: pi_t trained from pi_{t-1} (also the reference) on the iteration's pairs
// (iter-t/train-metrics.jsonl, iter-t/checkpoint/). With no informative pair, pi_t = pi_{t-1}. With several
// ranks, the trainer runs data parallel (DDP over ctx.dist's group) and rank 0 writes the files.
//
// With training.lora: a fresh adapter on pi_{t-1}'s weights trains (the reference is the same weights with the
// adapter off); it is saved to iter-t/adapter/ (PEFT's layout, base_model_name_or_path = pi_{t-1}'s folder),
// then merged, and the merged model is iter-t/checkpoint/, the base of iteration t + 1's fresh adapter.
import { existsSync } from 'node:fs';
import type { CausalLMBase } from '../../models/causal_lm.js';
import { saveModel } from '../../models/registry.js';
import { saveAdapter } from '../../models/peft.js';
import { Lora } from '../../nn/lora.js';
import { mixSeed } from '../../util/rng.js';
import { writeDirAtomic, writeJsonlAtomic } from '../run_dir.js';
import type { SppoConfig } from '../config.js';
import { train, type TrainExample, type TrainOptions } from '../trainer.js';
import { isLeader, loadStageModel, SEED_TRAIN, sync, timing, type StageContext } from './context.js';

/**
 * The trainer's options from the config's training section: each of its fields is the TrainOptions field of the
 * same name, passed as it is (a field that is not a trainer option does not compile).
 */
function trainOptionsOf(tc: SppoConfig['training']): Pick<TrainOptions, Exclude<keyof SppoConfig['training'], 'magnetEvery' | 'opponent' | 'baseline'>> {
  // magnetEvery, opponent and baseline are the loop's (which magnet each iteration uses, whom nash-md judges
  // against, how the opponent's win rates are centred: last_iterate.ts), not the trainer's.
  const { magnetEvery: _loop, opponent: _opponent, baseline: _baseline, ...rest } = tc;
  return rest;
}

export interface TrainInput {
  t: number;
  examples: TrainExample[];
  /** All pairs, degenerate ones included (for the message when none is informative). */
  pairCount: number;
  /** pi_{t-1}. */
  policyDir: string;
  /** The magnet's folder (mpo, nash-md, extragradient; last_iterate.ts). */
  magnetDir?: string;
  /** 'lookahead': extragradient's look-ahead policy, iter-t/lookahead-checkpoint/ (and lookahead-train-metrics.jsonl). */
  name?: 'lookahead';
}

/** Trains iteration t's checkpoint unless it is finished; returns its folder. */
export async function trainIteration(ctx: StageContext, input: TrainInput): Promise<string> {
  const { cfg, rd, progress, dtype, device } = ctx;
  const { t, examples, policyDir } = input;
  const prefix = input.name ? `${input.name}-` : '';
  const ckpt = rd.path(t, `${prefix}checkpoint`);
  if (existsSync(ckpt)) return ckpt;
  const t0 = performance.now();
  const metricsPath = rd.path(t, `${prefix}train-metrics.jsonl`);
  let speed: number[] = [];
  if (examples.length === 0) {
    ctx.log(`sppo run: iteration ${t}: no informative pair (all ${input.pairCount} degenerate); pi_${t} = pi_${t - 1}`);
    const m = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
    try {
      if (isLeader(ctx)) {
        writeJsonlAtomic(metricsPath, []);
        if (cfg.training.lora) {
          // The iteration's adapter is a fresh one (B = 0: no change), so that every iteration has iter-t/adapter/.
          const fresh = Lora.attach(m, { ...cfg.training.lora, seed: mixSeed(cfg.seed, t, SEED_TRAIN) });
          try {
            writeDirAtomic(rd.path(t, `${prefix}adapter`), (tmp) => saveAdapter(fresh, tmp, { baseModel: policyDir }));
          } finally {
            fresh.dispose();
          }
        }
        writeDirAtomic(ckpt, (tmp) => saveModel(m, tmp, { tokenizerDir: cfg.model }));
      }
    } finally {
      m.dispose();
    }
  } else {
    const tc = cfg.training;
    const groups = Math.ceil(examples.length / (tc.batchSize * tc.gradAccum)) * tc.epochs;
    progress.start(`iter ${t} ${prefix}train`, groups, 0);
    let model: CausalLMBase | undefined;
    let lora: Lora | undefined;
    try {
      model = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
      const res = await train({
        ...trainOptionsOf(tc),
        policy: model,
        // With LoRA the reference is the policy's own weights with the adapter off (no second copy).
        reference: tc.lora ? undefined : policyDir,
        ...(input.magnetDir !== undefined ? { magnet: input.magnetDir } : {}),
        examples,
        dtype: dtype as 'float32' | 'bfloat16',
        device,
        seed: mixSeed(cfg.seed, t, SEED_TRAIN),
        processGroup: ctx.dist?.pg,
        zero1: ctx.dist?.zero1,
        onStep: (m) => {
          progress.update(m.step);
          ctx.tracker?.trainStep(t, m);
          ctx.kill(t, 'train', m.step);
        },
      }).catch((e: unknown) => {
        // train()'s own errors start 'train: ' already: one stage name, not two.
        if (e instanceof Error) e.message = `iteration ${t} train: ${e.message.replace(/^train: /, '')}`;
        throw e;
      });
      model = res.model;
      lora = res.lora;
      // Step timings are not artifacts: they go to timings.jsonl.
      speed = res.metrics.map((m) => m.tokens_per_s);
      progress.stop();
      const m = model;
      if (lora) {
        const l = lora;
        if (isLeader(ctx)) {
          writeDirAtomic(rd.path(t, `${prefix}adapter`), (tmp) => saveAdapter(l, tmp, { baseModel: policyDir }));
        }
        lora.mergeAndDetach();
        lora = undefined;
      }
      if (isLeader(ctx)) {
        writeJsonlAtomic(metricsPath, res.metrics.map(({ tokens_per_s: _omit, ...rest }) => rest));
        writeDirAtomic(ckpt, (tmp) => saveModel(m, tmp, { tokenizerDir: cfg.model }));
      }
    } finally {
      progress.stop();
      lora?.dispose();
      model?.dispose();
    }
  }
  // The other ranks load the checkpoint next (evaluation): rank 0 has written it.
  await sync(ctx);
  timing(ctx, t, `${prefix}train`, t0, { examples: examples.length, tokens_per_s: speed, ...(ctx.dist ? { ranks: ctx.dist.world } : {}) });
  return ckpt;
}
