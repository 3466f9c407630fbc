// Fitting the next tabular log-policy by gradient steps on each method's loss, with pi_t as reference.
//
// theta are free logits, log pi_theta(y) = theta_y - logsumexp(theta), started at log pi_t, and
// a(y) = log pi_theta(y) - log pi_t(y). With eta = 1/beta:
//   sppo: mean over kept y of (a(y) - eta (P^(y > pi_t) - 1/2))^2   (the paper's square loss; with the
//         best and worst it is [(a_w - eta(P^_w - 1/2))^2 + (a_l - eta(P^_l - 1/2))^2] / 2)
//   dpo:  mean over pairs of -log sigmoid(beta (a_w - a_l))
//   ipo:  mean over pairs of (a_w - a_l - 1/(2 beta))^2
// The gradients are analytic: d log pi_theta(y) / d theta_k = [k = y] - pi_theta(k), and a_w - a_l does
// not depend on the normalizer, so the pairwise losses only move theta_w and theta_l.
//
// Step sizes are the base learning rate divided by each loss's curvature at a = 0 along the direction it
// moves, so the three losses are fitted at comparable speed: 1 for sppo (2 kept responses), 4 for ipo, and
// beta^2 / 2 for dpo. The sppo and ipo losses have a minimizer, reached to about 0.5^steps; the dpo loss
// has none (it keeps widening the margin), so its result depends on the number of steps.
import { logSumExp, normalizeLog } from './policy.js';

export interface FitOptions {
  eta: number;
  steps: number;
  lr: number;
}

/**
 * The SPPO square loss at logits theta over the kept responses `ys` with estimated win rates `winRates`,
 * mean over kept of (a(y) - eta (P^(y) - 1/2))^2 (targetLossGrad with those targets); writes its gradient in theta into `grad`.
 */
export function sppoLossGrad(theta: Float64Array, ref: Float64Array, ys: ArrayLike<number>, winRates: ArrayLike<number>, eta: number, grad: Float64Array): number {
  return targetLossGrad(theta, ref, ys, Array.from(winRates, (w) => eta * (w - 0.5)), grad);
}

/** The DPO or IPO loss at logits theta, mean over (winner, loser) pairs; writes its gradient into `grad`. */
export function pairLossGrad(kind: 'dpo' | 'ipo', theta: Float64Array, ref: Float64Array, pairs: ReadonlyArray<readonly [number, number]>, eta: number, grad: Float64Array): number {
  const beta = 1 / eta;
  const m = pairs.length;
  grad.fill(0);
  let loss = 0;
  for (const [w, l] of pairs) {
    const delta = theta[w]! - ref[w]! - (theta[l]! - ref[l]!);
    let g: number;
    if (kind === 'dpo') {
      // -log sigmoid(z) = softplus(-z), computed stably; d/d(delta) = -beta sigmoid(-beta delta)
      const z = beta * delta;
      loss += (z > 0 ? Math.log1p(Math.exp(-z)) : -z + Math.log1p(Math.exp(z))) / m;
      g = -beta / (1 + Math.exp(z));
    } else {
      const r = delta - 1 / (2 * beta);
      loss += (r * r) / m;
      g = 2 * r;
    }
    grad[w] = grad[w]! + g / m;
    grad[l] = grad[l]! - g / m;
  }
  return loss;
}

/**
 * The square loss toward given log-ratio targets at logits theta, mean over kept y of (a(y) - target(y))^2;
 * writes its gradient in theta into `grad`. SPPO's loss is this with target = eta (P^(y) - 1/2); the
 * last-iterate methods (last_iterate.ts) regress on their own targets.
 */
export function targetLossGrad(theta: Float64Array, ref: Float64Array, ys: ArrayLike<number>, targets: ArrayLike<number>, grad: Float64Array): number {
  const m = ys.length;
  const lse = logSumExp(theta);
  grad.fill(0);
  let loss = 0;
  let rsum = 0;
  for (let i = 0; i < m; i++) {
    const y = ys[i]!;
    const r = theta[y]! - lse - ref[y]! - targets[i]!;
    loss += (r * r) / m;
    const c = (2 / m) * r;
    grad[y] = grad[y]! + c;
    rsum += c;
  }
  for (let k = 0; k < theta.length; k++) grad[k] = grad[k]! - rsum * Math.exp(theta[k]! - lse);
  return loss;
}

/** Square-loss fit of the log-ratios of the kept responses `ys` to `targets` (pi_t = `ref`). Returns the new log-policy. */
export function fitTargets(ref: Float64Array, ys: ArrayLike<number>, targets: ArrayLike<number>, o: Omit<FitOptions, 'eta'>): Float64Array {
  const n = ref.length;
  const m = ys.length;
  const theta = Float64Array.from(ref);
  const grad = new Float64Array(n);
  // A response kept c times weighs c/m in the mean, so its curvature is 2c/m: scale the step to match.
  const count = new Int32Array(n);
  let maxCount = 1;
  for (let i = 0; i < m; i++) maxCount = Math.max(maxCount, ++count[ys[i]!]!);
  const lr = (o.lr * m) / (2 * maxCount);
  for (let s = 0; s < o.steps; s++) {
    targetLossGrad(theta, ref, ys, targets, grad);
    for (let k = 0; k < n; k++) theta[k] = theta[k]! - lr * grad[k]!;
  }
  return normalizeLog(theta);
}

/** SPPO square-loss fit on the kept responses `ys` with their estimated win rates. Returns the new log-policy. */
export function fitSppo(ref: Float64Array, ys: ArrayLike<number>, winRates: ArrayLike<number>, o: FitOptions): Float64Array {
  const targets = Array.from(winRates, (w) => o.eta * (w - 0.5));
  return fitTargets(ref, ys, targets, o);
}

/** DPO or IPO fit on (winner, loser) pairs. Returns the new log-policy. */
export function fitPairs(kind: 'dpo' | 'ipo', ref: Float64Array, pairs: ReadonlyArray<readonly [number, number]>, o: FitOptions): Float64Array {
  const theta = Float64Array.from(ref);
  if (pairs.length === 0) return normalizeLog(theta);
  const beta = 1 / o.eta;
  const grad = new Float64Array(ref.length);
  const lr = kind === 'dpo' ? o.lr / ((beta * beta) / 2) : o.lr / 4;
  for (let s = 0; s < o.steps; s++) {
    pairLossGrad(kind, theta, ref, pairs, o.eta, grad);
    for (let k = 0; k < theta.length; k++) theta[k] = theta[k]! - lr * grad[k]!;
  }
  return normalizeLog(theta);
}
