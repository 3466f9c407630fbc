// Preference losses of SPPO and its baselines, as pure functions of summed sequence log-probs.
//
// Inputs are [B] tensors (TRL style): the policy's and the reference's log-probs of the chosen (y_w) and
// rejected (y_l) responses, each summed over the response tokens, and the win-rate targets. With
//   a_w = log pi(y_w|x) - log pi_ref(y_w|x),   a_l = log pi(y_l|x) - log pi_ref(y_l|x),   eta = 1 / beta,
// the per-example losses are
//   sppo         [(a_w - eta (P_w - 1/2))^2 + (a_l - eta (P_l - 1/2))^2] / 2
//                P_w, P_l: win rates P^(y > pi_t | x) of y_w and y_l against the current policy.
//   sppo_hard    (a_w - eta/2)^2 + (a_l + eta/2)^2               (= 2 x sppo with P_w = 1, P_l = 0)
//   sppo_single  [(a_w - eta (P_wl - 1/2))^2 + (a_l + eta (P_wl - 1/2))^2] / 2
//                P_wl = P(y_w > y_l | x), the judge's probability for the pair itself.
//   dpo          -(1 - eps) log sigmoid(beta (a_w - a_l)) - eps log sigmoid(-beta (a_w - a_l))   (cDPO)
//   ipo          (a_w - a_l - 1/(2 beta))^2;  with lengthNormalized (TRL): (a_w/|y_w| - a_l/|y_l| - 1/(2 beta))^2
//
// The last-iterate methods (docs/game-lab.md, "Last-iterate methods") regress the same log-ratios on their own
// targets, [(a_w - T_w)^2 + (a_l - T_l)^2] / 2, with m(y) = log mu(y|x) - log pi_t(y|x), mu the magnet (the
// magnet model's summed log-probs, as the reference's) and tau the KL strength toward it:
//   mpo            T = [eta (P - 1/2) + eta tau m] / (1 + eta tau)      magnetic mirror descent (Wang et al. 2025)
//   nash-md        T = eta (P - 1/2) + eta tau m                        Nash-MD (Munos et al. 2023); P is the win
//                  rate against the geometric mixture pi_t^(1 - eta tau) mu^(eta tau) (the loop samples it token by
//                  token; training.opponent: policy judges against pi_t's samples instead, docs/sppo-loop.md)
//   omwu           T = eta (2 P - P_prev - 1/2)                         optimistic MWU; P_prev: the win rate
//                  against the previous policy pi_{t-1}
//   extragradient  T = eta (P - 1/2) + eta tau m                        (Zhou et al. 2025) the same form as nash-md,
//                  with P the win rate against the look-ahead policy pi_{t+1/2}'s samples
// Each target is the exact update's log-ratio log pi_{t+1}(y) - log pi_t(y) up to a constant, with the constant
// taken as SPPO takes it (the 1/2 inside P - 1/2): test/losses.test.ts checks each against the game lab. For
// nash-md, omwu and extragradient a per-example `winRateBaseline` b (training.baseline 'samples': the mean win
// rate of pi_t's samples of the prompt against the opponent) takes the place of that 1/2: T = eta (P - b) + ...,
// and omwu's T = eta (2 P - P_prev - (1 - b)), b then P_prev's mean (docs/sppo-loop.md).
//
// The halving of the SPPO squares follows the official trainer (uclaml/SPPO, sppo/trainer.py: its
// SPPOTrainer computes every loss type in one method, which keeps DPO's name, `dpo_loss`, in the versions
// we read; `losses = (loss_w + loss_l)/2` for both "sppo" and "sppo_single", targets `(1/self.beta)*(p - 0.5)`).
// The official code has no "sppo_hard"; it is the paper's hard-label form (P_w = 1, P_l = 0), written
// as the project states it, without the halving: twice "sppo" with hard win rates (same minimiser, twice
// the gradient scale).
// DPO is TRL's "sigmoid" loss. IPO is the official trainer's "ipo": on summed log-probs, as every loss here.
// TRL's "ipo" averages each response's log-probs over its tokens instead (a_w / |y_w|, a_l / |y_l|), so the
// same beta is a different strength there; `lengthNormalized: true` gives TRL's form.
//
// Everything is computed in float32 (or float64 when the inputs are float64): 16-bit inputs are upcast.
import { z } from 'zod';
import { tidy, type Tensor } from '../torch/index.js';

/** The losses, as the schema of the run configuration's `training.loss` (src/sppo/config.ts) and of the trainer's. */
export const lossTypeSchema = z.enum(['sppo', 'sppo_hard', 'sppo_single', 'dpo', 'ipo', 'mpo', 'nash-md', 'omwu', 'extragradient']);
export const LOSS_TYPES = lossTypeSchema.options;
export type LossType = z.infer<typeof lossTypeSchema>;

export function isLossType(s: string): s is LossType {
  return lossTypeSchema.safeParse(s).success;
}

/** The losses that regress toward a magnet (need magnet log-probs and tau). */
export const MAGNET_LOSSES: readonly LossType[] = ['mpo', 'nash-md', 'extragradient'];

export function usesMagnet(loss: LossType): boolean {
  return MAGNET_LOSSES.includes(loss);
}

/** The losses whose win rates are against another policy than pi_t, so that their targets take a winRateBaseline. */
export const BASELINE_LOSSES: readonly LossType[] = ['omwu', 'extragradient', 'nash-md'];
export function usesBaseline(loss: LossType): boolean {
  return BASELINE_LOSSES.includes(loss);
}

export interface PreferenceLossInputs {
  /** [B] summed log-probs of the responses under the policy being trained (carry the graph). */
  policyChosen: Tensor;
  policyRejected: Tensor;
  /** [B] summed log-probs under the frozen reference pi_t. */
  refChosen: Tensor;
  refRejected: Tensor;
  /** [B] P^(y_w > pi_t | x) and P^(y_l > pi_t | x): needed by `sppo`. */
  chosenWinRate?: Tensor;
  rejectedWinRate?: Tensor;
  /** [B] P(y_w > y_l | x): needed by `sppo_single`. */
  chosenOverRejected?: Tensor;
  /** [B] summed log-probs under the magnet mu: needed by `mpo`, `nash-md`, `extragradient`. */
  magnetChosen?: Tensor;
  magnetRejected?: Tensor;
  /** [B] P^(y_w > pi_{t-1} | x) and P^(y_l > pi_{t-1} | x): needed by `omwu`. */
  chosenPrevWinRate?: Tensor;
  rejectedPrevWinRate?: Tensor;
  /** [B] the constant the last-iterate targets subtract in place of 1/2 (omwu: P_prev's), absent: 1/2. */
  winRateBaseline?: Tensor;
  /** [B] response lengths in tokens |y_w|, |y_l|: needed by `ipo` with lengthNormalized. */
  chosenLength?: Tensor;
  rejectedLength?: Tensor;
}

export interface PreferenceLossOptions {
  /** The KL strength beta; SPPO's eta = 1 / beta (official beta 1e-3). DPO's beta, IPO's tau. */
  beta: number;
  /** cDPO label smoothing eps in [0, 0.5) (dpo only). */
  labelSmoothing?: number;
  /** ipo only: TRL's form, each response's log-ratio averaged over its tokens instead of summed. */
  lengthNormalized?: boolean;
  /** mpo, nash-md, extragradient: the KL strength toward the magnet (> 0 for mpo and nash-md, >= 0 for extragradient). */
  tau?: number;
}

export interface PreferenceLossOutput {
  /** [B] per-example losses (differentiable). */
  losses: Tensor;
  /** [B] a_w and a_l, detached. */
  chosenLogratio: Tensor;
  rejectedLogratio: Tensor;
}

function up(t: Tensor): Tensor {
  return t.dtype === 'float64' ? t : t.float();
}

function need(t: Tensor | undefined, name: string, loss: LossType): Tensor {
  if (!t) throw new Error(`loss '${loss}' needs ${name}`);
  return up(t);
}

function checkOptions(loss: LossType, o: PreferenceLossOptions): void {
  if (!(o.beta > 0) || !Number.isFinite(o.beta)) throw new RangeError(`loss '${loss}': beta must be a positive number, got ${o.beta}`);
  const eps = o.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 0.5)) throw new RangeError(`loss '${loss}': labelSmoothing must be in [0, 0.5), got ${eps}`);
  if (eps !== 0 && loss !== 'dpo') throw new RangeError(`loss '${loss}': labelSmoothing applies to dpo only`);
  if (o.lengthNormalized && loss !== 'ipo') throw new RangeError(`loss '${loss}': lengthNormalized applies to ipo only`);
  if (usesMagnet(loss)) {
    const tau = o.tau;
    const ok = tau !== undefined && Number.isFinite(tau) && (loss === 'extragradient' ? tau >= 0 : tau > 0);
    if (!ok) throw new RangeError(`loss '${loss}': tau must be a number ${loss === 'extragradient' ? '>= 0' : '> 0'}, got ${tau}`);
  } else if (o.tau !== undefined) {
    throw new RangeError(`loss '${loss}': tau applies to mpo, nash-md and extragradient only`);
  }
}

/** The inputs of one response's log-ratio target (numbers: documentation, tests, the game lab's check). */
export interface TargetInputs {
  /** P^(y > pi_t) (for extragradient: against the look-ahead policy; for nash-md: against the mixture). */
  winRate: number;
  /** omwu: P^(y > pi_{t-1}). */
  prevWinRate?: number;
  /** log pi_t(y) and log mu(y) (the methods with a magnet). */
  refLogprob?: number;
  magnetLogprob?: number;
  /** nash-md, omwu, extragradient: the constant in place of 1/2 (default 1/2; omwu: P_prev's). */
  winRateBaseline?: number;
}

/** The log-ratio target T(y) that the squared losses regress log pi(y) - log pi_t(y) on (formulas at the top). */
export function logRatioTarget(loss: LossType, x: TargetInputs, opts: PreferenceLossOptions): number {
  const eta = 1 / opts.beta;
  const tau = opts.tau ?? 0;
  const m = usesMagnet(loss) ? x.magnetLogprob! - x.refLogprob! : 0;
  const b = x.winRateBaseline ?? 0.5;
  switch (loss) {
    case 'sppo':
      return eta * (x.winRate - 0.5);
    case 'mpo':
      return (eta * (x.winRate - 0.5) + eta * tau * m) / (1 + eta * tau);
    case 'nash-md':
    case 'extragradient':
      return eta * (x.winRate - b) + eta * tau * m;
    case 'omwu':
      return eta * (2 * x.winRate - x.prevWinRate! - (1 - b));
    default:
      throw new Error(`loss '${loss}' has no per-response log-ratio target`);
  }
}

/** The [B] targets of the last-iterate losses, as tensors (the same arithmetic as logRatioTarget). */
function targetTensor(loss: LossType, x: PreferenceLossInputs, side: 'chosen' | 'rejected', opts: PreferenceLossOptions): Tensor {
  const eta = 1 / opts.beta;
  const tau = opts.tau ?? 0;
  const c = side === 'chosen';
  const p = need(c ? x.chosenWinRate : x.rejectedWinRate, c ? 'chosenWinRate' : 'rejectedWinRate', loss);
  const b = usesBaseline(loss) ? x.winRateBaseline : undefined;
  if (loss === 'omwu') {
    const prev = need(c ? x.chosenPrevWinRate : x.rejectedPrevWinRate, c ? 'chosenPrevWinRate' : 'rejectedPrevWinRate', loss);
    return (b ? p.mul(2).sub(prev).add(up(b)).sub(1) : p.mul(2).sub(prev).sub(0.5)).mul(eta);
  }
  const m = need(c ? x.magnetChosen : x.magnetRejected, c ? 'magnetChosen' : 'magnetRejected', loss).sub(up(c ? x.refChosen : x.refRejected));
  const t = (b ? p.sub(up(b)) : p.sub(0.5)).mul(eta).add(m.mul(eta * tau));
  return loss === 'mpo' ? t.div(1 + eta * tau) : t;
}

/** The per-example losses of `loss` (see the formulas at the top of this file). */
export function preferenceLoss(loss: LossType, x: PreferenceLossInputs, opts: PreferenceLossOptions): PreferenceLossOutput {
  checkOptions(loss, opts);
  return tidy(() => {
    const aw = up(x.policyChosen).sub(up(x.refChosen));
    const al = up(x.policyRejected).sub(up(x.refRejected));
    const eta = 1 / opts.beta;
    let losses: Tensor;
    switch (loss) {
      case 'sppo': {
        const tw = need(x.chosenWinRate, 'chosenWinRate', loss).sub(0.5).mul(eta);
        const tl = need(x.rejectedWinRate, 'rejectedWinRate', loss).sub(0.5).mul(eta);
        losses = aw.sub(tw).square().add(al.sub(tl).square()).mul(0.5);
        break;
      }
      case 'sppo_hard':
        losses = aw.sub(eta / 2).square().add(al.add(eta / 2).square());
        break;
      case 'sppo_single': {
        const t = need(x.chosenOverRejected, 'chosenOverRejected', loss).sub(0.5).mul(eta);
        losses = aw.sub(t).square().add(al.add(t).square()).mul(0.5);
        break;
      }
      case 'dpo': {
        const z = aw.sub(al).mul(opts.beta);
        const eps = opts.labelSmoothing ?? 0;
        losses = z.logSigmoid().mul(-(1 - eps));
        if (eps > 0) losses = losses.sub(z.neg().logSigmoid().mul(eps));
        break;
      }
      case 'ipo': {
        const [w, l] = opts.lengthNormalized
          ? [aw.div(need(x.chosenLength, 'chosenLength', loss)), al.div(need(x.rejectedLength, 'rejectedLength', loss))]
          : [aw, al];
        losses = w.sub(l).sub(1 / (2 * opts.beta)).square();
        break;
      }
      case 'mpo':
      case 'nash-md':
      case 'omwu':
      case 'extragradient': {
        const tw = targetTensor(loss, x, 'chosen', opts);
        const tl = targetTensor(loss, x, 'rejected', opts);
        losses = aw.sub(tw).square().add(al.sub(tl).square()).mul(0.5);
        break;
      }
      default:
        throw new Error(`unknown loss type '${loss as string}' (known: ${LOSS_TYPES.join(', ')})`);
    }
    return { losses, chosenLogratio: aw.detach(), rejectedLogratio: al.detach() };
  });
}

/** Scalar-number versions of the losses (for documentation, tests and quick checks). */
export function preferenceLossValue(
  loss: LossType,
  a: {
    aw: number; al: number; pw?: number; pl?: number; pwl?: number; lw?: number; ll?: number;
    /** omwu: previous-policy win rates; mpo, nash-md, extragradient: reference and magnet log-probs. */
    pwPrev?: number; plPrev?: number; rw?: number; rl?: number; mw?: number; ml?: number;
  },
  opts: PreferenceLossOptions,
): number {
  checkOptions(loss, opts);
  const eta = 1 / opts.beta;
  const logSig = (z: number): number => (z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z)));
  switch (loss) {
    case 'sppo':
      return ((a.aw - eta * (a.pw! - 0.5)) ** 2 + (a.al - eta * (a.pl! - 0.5)) ** 2) / 2;
    case 'sppo_hard':
      return (a.aw - eta / 2) ** 2 + (a.al + eta / 2) ** 2;
    case 'sppo_single':
      return ((a.aw - eta * (a.pwl! - 0.5)) ** 2 + (a.al + eta * (a.pwl! - 0.5)) ** 2) / 2;
    case 'dpo': {
      const z = opts.beta * (a.aw - a.al);
      const eps = opts.labelSmoothing ?? 0;
      return -(1 - eps) * logSig(z) - eps * logSig(-z);
    }
    case 'ipo':
      return opts.lengthNormalized ? (a.aw / a.lw! - a.al / a.ll! - 1 / (2 * opts.beta)) ** 2 : (a.aw - a.al - 1 / (2 * opts.beta)) ** 2;
    case 'mpo':
    case 'nash-md':
    case 'omwu':
    case 'extragradient': {
      const tw = logRatioTarget(loss, { winRate: a.pw!, prevWinRate: a.pwPrev, refLogprob: a.rw, magnetLogprob: a.mw }, opts);
      const tl = logRatioTarget(loss, { winRate: a.pl!, prevWinRate: a.plPrev, refLogprob: a.rl, magnetLogprob: a.ml }, opts);
      return ((a.aw - tw) ** 2 + (a.al - tl) ** 2) / 2;
    }
  }
}
