// What the last-iterate losses (losses.ts: mpo, nash-md, omwu, extragradient) need from the loop, per iteration.
//
//   mpo            the magnet mu: pi_0, then pi_s for the last s <= t - 1 that is a multiple of
//                  training.magnetEvery (MPO's periodically updated magnet); its log-probs are scored by the
//                  trainer as the reference's are (one more forward pass over the pairs; none when mu = pi_{t-1}).
//   nash-md        the magnet is pi_0 for every iteration (Nash-MD's fixed reference mu); from t = 2 the responses are
//                  judged against K samples of the geometric mixture pi_{t-1}^(1 - eta tau) mu^(eta tau), Nash-MD's
//                  opponent (training.opponent: 'policy' judges against pi_{t-1}'s own samples instead). At t = 1
//                  the mixture is pi_0 itself: the K x K matrix is the win rate against it.
//   extragradient  the magnet is pi_0 (EGPO's reference); with tau = 0 none.
//   omwu           no magnet; win rates against the previous policy's samples (stages/opponents.ts).
//
// What each costs per iteration, beside SPPO's K samples, K(K-1)/2 judged pairs and one training run per prompt set:
//   mpo, nash-md   one forward pass of the magnet over the pairs (none for mpo when the magnet is pi_{t-1});
//   nash-md        from t = 2 (opponent 'mixture'): K more samples per prompt, each token a forward pass of both
//                  pi_{t-1} and pi_0, and K x K more judged pairs;
//   omwu           from t = 2: K more samples per prompt (from pi_{t-2}) and K x K more judged pairs;
//   extragradient  a second training run (the look-ahead), K more samples per prompt from it and K x K more
//                  judged pairs (a judge that scores whole matrices scores the 2K union: (2K)(2K-1)/2 pairs).
import type { PreferenceOracle } from '../judge/oracle.js';
import type { Tokenizer } from '../text/tokenizer.js';
import type { SppoConfig } from './config.js';
import type { TrainExample } from './trainer.js';
import type { GenerationLine, Item, PairLine, SamplingConfig, StageContext } from './stages/context.js';
import { crossJudge, opponentSamples, type CrossLine, type OpponentKind } from './stages/opponents.js';
import { trainingExamples } from './stages/pairs.js';
import { trainIteration } from './stages/train.js';

/** The magnet's folder for iteration t (which trains pi_t from pi_{t-1}), or undefined when the loss has none. */
export function magnetDir(cfg: Pick<SppoConfig, 'model' | 'training'>, t: number, checkpointOf: (s: number) => string): string | undefined {
  const { loss, magnetEvery, tau } = cfg.training;
  if (loss === 'nash-md' || (loss === 'extragradient' && (tau ?? 0) > 0)) return cfg.model;
  if (loss !== 'mpo') return undefined;
  const s = magnetEvery * Math.floor((t - 1) / magnetEvery);
  return s === 0 ? cfg.model : checkpointOf(s);
}

/** Whom iteration t's responses are judged against beside each other (undefined: only each other, the K x K matrix). */
export function opponentOf(cfg: Pick<SppoConfig, 'training'>, t: number): OpponentKind | undefined {
  const { loss, opponent } = cfg.training;
  if (loss === 'omwu') return t >= 2 ? 'prev' : undefined;
  if (loss === 'extragradient') return 'lookahead';
  if (loss === 'nash-md') return t >= 2 && (opponent ?? 'mixture') === 'mixture' ? 'mixture' : undefined;
  return undefined;
}

/**
 * The training examples of iteration t for the loss: the pairs' (trainingExamples) for every loss but omwu,
 * extragradient and nash-md, which first judge the responses against another policy's samples:
 *   omwu           from t = 2 on: K samples from pi_{t-2} on the iteration's prompts, judged against (prev stages);
 *                  at t = 1 the previous win rates are the current ones (P pi_0 := P pi_1, as the game lab's).
 *   extragradient  the look-ahead pi_{t-1/2} trained from pi_{t-1} on the pairs (iter-t/lookahead-checkpoint),
 *                  K samples from it, judged against; the examples carry those win rates instead.
 *   nash-md        from t = 2 on: K samples from the geometric mixture of pi_{t-1} and the magnet (coefficient
 *                  eta tau), judged against; the examples carry those win rates instead.
 */
export async function iterationExamples(
  ctx: StageContext,
  input: {
    t: number;
    pairs: PairLine[];
    used: GenerationLine[];
    items: Item[];
    policyDir: string;
    /** pi_{t-2}'s folder (omwu), undefined at t = 1. */
    prevPolicyDir: string | undefined;
    magnetDir: string | undefined;
    sampling: SamplingConfig;
    tokenizer: Tokenizer;
    judge: () => Promise<PreferenceOracle>;
  },
): Promise<TrainExample[]> {
  const { t, pairs } = input;
  const { loss, beta, tau } = ctx.cfg.training;
  const base = trainingExamples(pairs);
  const kind = opponentOf(ctx.cfg, t);
  if (loss === 'omwu' && kind === undefined) {
    return base.map((e) => ({ ...e, chosenPrevWinRate: e.chosenWinRate, rejectedPrevWinRate: e.rejectedWinRate }));
  }
  if (kind === undefined || base.length === 0) return base;
  let modelDir = input.policyDir;
  if (kind === 'prev') modelDir = input.prevPolicyDir!;
  if (kind === 'lookahead') modelDir = await trainIteration(ctx, { t, examples: base, pairCount: pairs.length, policyDir: input.policyDir, name: 'lookahead', ...(input.magnetDir !== undefined ? { magnetDir: input.magnetDir } : {}) });
  const mixture = kind === 'mixture' ? { mixture: { modelDir: input.magnetDir!, coef: (tau ?? 0) / beta } } : {};
  const opponents = await opponentSamples(ctx, { t, kind, modelDir, ...mixture, items: input.items, sampling: input.sampling, tokenizer: input.tokenizer });
  const cross = await crossJudge(ctx, { t, kind, used: input.used, opponents, itemByIndex: new Map(input.items.map((it) => [it.index, it])), judge: input.judge });
  return withOpponentWinRates(pairs, cross, kind, baselineOf(ctx.cfg));
}

/**
 * training.baseline with its default: 'samples' for omwu, 'half' for extragradient and nash-md. As measured in the
 * demo (docs/demo.md, five seeds each): omwu's pi_{t-1} beats pi_{t-2} by 0.1 on average at iteration 2, and with
 * eta / 2 its targets sit 1 nat low; centred, its win rate at iteration 3 rose from 0.569 to 0.619 and its style
 * exploitability fell from 0.098 to 0.058. extragradient's offset is 0.15-0.4 nats; centred, it kept its win rate
 * and drifted more (0.028 against 0.016);
 * nash-md's mixture is within 0.01 of pi_{t-1} on average, and centring its noisy per-prompt offsets cost win rate.
 */
export function baselineOf(cfg: Pick<SppoConfig, 'training'>): 'samples' | 'half' {
  return cfg.training.baseline ?? (cfg.training.loss === 'omwu' ? 'samples' : 'half');
}

/**
 * The pairs' training examples with each response's win rate against the opponents (cross lines by prompt).
 *
 * The targets (losses.ts) subtract eta / 2 from eta P(y > opponent): SPPO's estimate of the exact update's
 * log-normaliser log E_{pi_t} exp(eta P(y > opponent)), which to first order is eta E_{pi_t} P(y > opponent) and is
 * eta / 2 when the opponent is pi_t. Against another policy (the look-ahead, the mixture, pi_{t-2}) the mean is not
 * 1/2: in the demo pi_{t-1}'s samples win 0.42-0.47 against the look-ahead and 0.60 against pi_{t-2} at iteration 2,
 * so with eta / 2 every sampled response's target is off by eta (P_bar - 1/2) — a push on all of them, which the
 * exact update's normalisation would cancel but a loss on sampled responses does not. With baseline 'samples' each
 * example carries P_bar, the mean over all of pi_{t-1}'s K samples of its prompt (winRateBaseline), and the targets
 * read eta (P - P_bar) (omwu: eta (2 P_t - P_{t-1} - 1 + P_bar_{t-1}), P_t's mean being 1/2); the win rates stay
 * the judged probabilities.
 */
export function withOpponentWinRates(pairs: PairLine[], cross: CrossLine[], kind: OpponentKind, baseline: 'samples' | 'half' = 'half'): TrainExample[] {
  const byIndex = new Map(cross.map((c) => [c.index, c.win_rates]));
  const kept = pairs.filter((p) => !p.degenerate);
  return trainingExamples(pairs).map((e, i) => {
    const p = kept[i]!;
    const wr = byIndex.get(p.index);
    if (!wr || wr.length === 0) throw new Error(`no ${kind} win rates for prompt #${p.index}`);
    const b = baseline === 'samples' ? { winRateBaseline: wr.reduce((a, x) => a + x, 0) / wr.length } : {};
    const [w, l] = [wr[p.chosen]!, wr[p.rejected]!];
    return kind === 'prev' ? { ...e, chosenPrevWinRate: w, rejectedPrevWinRate: l, ...b } : { ...e, chosenWinRate: w, rejectedWinRate: l, ...b };
  });
}
