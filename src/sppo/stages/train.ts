// Stage 4, training: pi_t trained from pi_{t-1} (also the reference) on the iteration's pairs
// (iter-t/train-metrics.jsonl, iter-t/checkpoint/). With no informative pair, pi_t = pi_{t-1}. With several
// ranks, the trainer runs data parallel (DDP over ctx.dist's group) and rank 0 writes the files.
import { existsSync } from 'node:fs';
import type { CausalLMBase } from '../../models/causal_lm.js';
import { saveModel } from '../../models/registry.js';
import { mixSeed } from '../../util/rng.js';
import { writeDirAtomic, writeJsonlAtomic } from '../run_dir.js';
import { train, type TrainExample } from '../trainer.js';
import { isLeader, loadStageModel, SEED_TRAIN, sync, timing, type StageContext } from './context.js';

export interface TrainInput {
  t: number;
  examples: TrainExample[];
  /** All pairs, degenerate ones included (for the message when none is informative). */
  pairCount: number;
  /** pi_{t-1}. */
  policyDir: string;
}

/** Trains iteration t's checkpoint unless it is finished; returns its folder. */
export async function trainIteration(ctx: StageContext, input: TrainInput): Promise<string> {
  const { cfg, rd, progress, dtype, device } = ctx;
  const { t, examples, policyDir } = input;
  const ckpt = rd.path(t, 'checkpoint');
  if (existsSync(ckpt)) return ckpt;
  const t0 = performance.now();
  const metricsPath = rd.path(t, 'train-metrics.jsonl');
  let speed: number[] = [];
  if (examples.length === 0) {
    ctx.log(`sppo run: iteration ${t}: no informative pair (all ${input.pairCount} degenerate); pi_${t} = pi_${t - 1}`);
    const m = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
    try {
      if (isLeader(ctx)) {
        writeJsonlAtomic(metricsPath, []);
        await writeDirAtomic(ckpt, (tmp) => void saveModel(m, tmp, { tokenizerDir: cfg.model }));
      }
    } finally {
      m.dispose();
    }
  } else {
    const tc = cfg.training;
    const groups = Math.ceil(examples.length / (tc.batchSize * tc.gradAccum)) * tc.epochs;
    progress.start(`iter ${t} train`, groups, 0);
    let model: CausalLMBase | undefined;
    try {
      model = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
      const res = await train({
        policy: model,
        reference: policyDir,
        examples,
        loss: tc.loss,
        beta: tc.beta,
        labelSmoothing: tc.labelSmoothing,
        lr: tc.lr,
        epochs: tc.epochs,
        batchSize: tc.batchSize,
        gradAccum: tc.gradAccum,
        optimizer: tc.optimizer,
        weightDecay: tc.weightDecay,
        warmupRatio: tc.warmupRatio,
        schedule: tc.schedule,
        maxLength: tc.maxLength,
        maxPromptLength: tc.maxPromptLength,
        maxGradNorm: tc.maxGradNorm,
        gradientCheckpointing: tc.gradientCheckpointing,
        dtype: dtype as 'float32' | 'bfloat16',
        device,
        seed: mixSeed(cfg.seed, t, SEED_TRAIN),
        processGroup: ctx.dist?.pg,
        zero1: ctx.dist?.zero1,
        onStep: (m) => {
          progress.update(m.step);
          ctx.kill(t, 'train', m.step);
        },
      }).catch((e: unknown) => {
        if (e instanceof Error) e.message = `iteration ${t} train: ${e.message}`;
        throw e;
      });
      model = res.model;
      // Step timings are not artifacts: they go to timings.jsonl.
      speed = res.metrics.map((m) => m.tokens_per_s);
      progress.stop();
      if (isLeader(ctx)) {
        writeJsonlAtomic(metricsPath, res.metrics.map(({ tokens_per_s: _omit, ...rest }) => rest));
        const m = model;
        await writeDirAtomic(ckpt, (tmp) => void saveModel(m, tmp, { tokenizerDir: cfg.model }));
      }
    } finally {
      progress.stop();
      model?.dispose();
    }
  }
  // The other ranks load the checkpoint next (evaluation): rank 0 has written it.
  await sync(ctx);
  timing(ctx, t, 'train', t0, { examples: examples.length, tokens_per_s: speed, ...(ctx.dist ? { ranks: ctx.dist.world } : {}) });
  return ckpt;
}
