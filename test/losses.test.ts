// The preference losses: values against hand-computed numbers, gradients (analytic by hand and against
// finite differences in float64), the official SPPO scaling, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { LOSS_TYPES, logRatioTarget, preferenceLoss, preferenceLossValue, usesMagnet, type LossType, type PreferenceLossInputs } from '../src/sppo/losses.js';
import { makeGame } from '../src/game/game.js';
import { extragradientExactStep, geometricMixtureLog, mpoExactStep, nashMdExactStep, newLastIterateState, omwuExactStep } from '../src/game/last_iterate.js';
import { winRates } from '../src/game/measures.js';
import { normalizeLog, softmax } from '../src/game/policy.js';
import { flat, gradcheck, values } from './helpers/torch.js';

const f64 = (xs: number[]): torch.Tensor => torch.tensor(Float64Array.from(xs), { shape: [xs.length] });

// One example, beta = 0.5 (eta = 2): a_w = -1.2 - (-1.5) = 0.3, a_l = -2.0 - (-1.8) = -0.2.
function example(): PreferenceLossInputs {
  return {
    policyChosen: f64([-1.2]),
    policyRejected: f64([-2.0]),
    refChosen: f64([-1.5]),
    refRejected: f64([-1.8]),
    chosenWinRate: f64([0.8]),
    rejectedWinRate: f64([0.3]),
    chosenOverRejected: f64([0.7]),
    magnetChosen: f64([-1.1]),
    magnetRejected: f64([-2.4]),
    chosenPrevWinRate: f64([0.6]),
    rejectedPrevWinRate: f64([0.45]),
  };
}

/** tau for the losses that take one. */
const tauOf = (loss: LossType, tau = 0.3): { tau?: number } => (usesMagnet(loss) ? { tau } : {});

const close = (a: number, b: number, tol = 1e-12): void => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

test('loss values match hand-computed numbers (beta 0.5, eta 2)', () => {
  torch.tidy(() => {
    const x = example();
    const v = (loss: LossType, labelSmoothing?: number): number => preferenceLoss(loss, x, { beta: 0.5, labelSmoothing }).losses.item();
    // sppo: targets eta(P - 1/2) = 0.6 and -0.4: ((0.3-0.6)^2 + (-0.2+0.4)^2)/2 = (0.09 + 0.04)/2
    close(v('sppo'), 0.065);
    // sppo_hard: targets +1 and -1: (0.3-1)^2 + (-0.2+1)^2 = 0.49 + 0.64
    close(v('sppo_hard'), 1.13);
    // sppo_single: target 2*(0.7-0.5) = 0.4: ((0.3-0.4)^2 + (-0.2+0.4)^2)/2 = (0.01 + 0.04)/2
    close(v('sppo_single'), 0.025);
    // dpo: z = 0.5 * (0.3 + 0.2) = 0.25; -log sigmoid(0.25) = log(1 + e^-0.25)
    close(v('dpo'), Math.log(1 + Math.exp(-0.25)));
    close(v('dpo', 0.1), 0.9 * Math.log(1 + Math.exp(-0.25)) + 0.1 * Math.log(1 + Math.exp(0.25)));
    // ipo: (0.5 - 1/(2*0.5))^2 = 0.25
    close(v('ipo'), 0.25);
    const out = preferenceLoss('sppo', x, { beta: 0.5 });
    close(out.chosenLogratio.item(), 0.3);
    close(out.rejectedLogratio.item(), -0.2);
    assert.equal(out.chosenLogratio.requiresGrad, false);
  });
});

test('the official scaling: beta 1e-3, eta 1000, sppo = half the sum of squares', () => {
  torch.tidy(() => {
    const x = example();
    // targets 1000*(0.3) = 300 and 1000*(-0.2) = -200.
    const expected = ((0.3 - 300) ** 2 + (-0.2 + 200) ** 2) / 2;
    close(preferenceLoss('sppo', x, { beta: 1e-3 }).losses.item(), expected);
    // The scalar reference version agrees with the tensor version for every loss.
    for (const loss of LOSS_TYPES) {
      const t = preferenceLoss(loss, x, { beta: 1e-3, ...tauOf(loss, 1e-4) }).losses.item();
      const a = { aw: 0.3, al: -0.2, pw: 0.8, pl: 0.3, pwl: 0.7, pwPrev: 0.6, plPrev: 0.45, rw: -1.5, rl: -1.8, mw: -1.1, ml: -2.4 };
      close(preferenceLossValue(loss, a, { beta: 1e-3, ...tauOf(loss, 1e-4) }), t, 1e-9);
    }
  });
});

test('sppo_hard is twice sppo with win rates 1 and 0; sppo_single equals sppo with P_w = P_wl, P_l = 1 - P_wl', () => {
  torch.tidy(() => {
    const base = example();
    const hard = preferenceLoss('sppo_hard', base, { beta: 0.25 }).losses.item();
    const sppo10 = preferenceLoss('sppo', { ...base, chosenWinRate: f64([1]), rejectedWinRate: f64([0]) }, { beta: 0.25 }).losses.item();
    close(hard, 2 * sppo10);
    const single = preferenceLoss('sppo_single', base, { beta: 0.25 }).losses.item();
    const sppoSym = preferenceLoss('sppo', { ...base, chosenWinRate: f64([0.7]), rejectedWinRate: f64([0.3]) }, { beta: 0.25 }).losses.item();
    close(single, sppoSym);
  });
});

test('gradients by hand: d sppo / d logp_w = a_w - target_w, d dpo / d logp_w = -beta sigmoid(-z)', () => {
  torch.tidy(() => {
    const x = example();
    x.policyChosen.requiresGrad_(true);
    x.policyRejected.requiresGrad_(true);
    preferenceLoss('sppo', x, { beta: 0.5 }).losses.sum().backward();
    close(x.policyChosen.grad!.item(), 0.3 - 0.6);
    close(x.policyRejected.grad!.item(), -0.2 + 0.4);
    const y = example();
    y.policyChosen.requiresGrad_(true);
    y.policyRejected.requiresGrad_(true);
    preferenceLoss('dpo', y, { beta: 0.5 }).losses.sum().backward();
    const s = 1 / (1 + Math.exp(0.25)); // sigmoid(-0.25)
    close(y.policyChosen.grad!.item(), -0.5 * s);
    close(y.policyRejected.grad!.item(), 0.5 * s);
  });
});

for (const loss of LOSS_TYPES) {
  test(`gradient of ${loss} matches finite differences (float64)`, () => {
    const b = 4;
    const pc = values(b, 1, -3, -1);
    const pr = values(b, 2, -3, -1);
    const rc = values(b, 3, -3, -1);
    const rr = values(b, 4, -3, -1);
    const pw = values(b, 5, 0.5, 1);
    const pl = values(b, 6, 0, 0.5);
    const pwl = values(b, 7, 0.3, 1);
    const mc = values(b, 8, -3, -1);
    const mr = values(b, 9, -3, -1);
    const ppw = values(b, 10, 0, 1);
    const ppl = values(b, 11, 0, 1);
    const err = gradcheck(
      (a, bb, c, d, e, f, g, h, i, j, k) =>
        preferenceLoss(
          loss,
          { policyChosen: a!, policyRejected: bb!, refChosen: c!, refRejected: d!, chosenWinRate: e!, rejectedWinRate: f!, chosenOverRejected: g!, magnetChosen: h!, magnetRejected: i!, chosenPrevWinRate: j!, rejectedPrevWinRate: k! },
          { beta: 0.7, labelSmoothing: loss === 'dpo' ? 0.2 : 0, ...tauOf(loss) },
        ).losses,
      [pc, pr, rc, rr, pw, pl, pwl, mc, mr, ppw, ppl],
    );
    // float64 central differences, step 1e-6: as torch_gradcheck's TOL (truncation + rounding ~1e-10).
    assert.ok(err < 1e-6, `relative gradient error ${err}`);
  });
}

test('batched: per-example losses, float32 inputs upcast, bf16 accepted', () => {
  torch.tidy(() => {
    const x = {
      policyChosen: torch.tensor([-1, -2], { dtype: 'bfloat16' }),
      policyRejected: torch.tensor([-3, -1], { dtype: 'bfloat16' }),
      refChosen: torch.tensor([-1, -2.5]),
      refRejected: torch.tensor([-2, -1]),
    };
    const out = preferenceLoss('ipo', x, { beta: 1 });
    assert.equal(out.losses.dtype, 'float32');
    // a_w - a_l = (0 - (-1)) = 1 and (0.5 - 0) = 0.5; (1 - 0.5)^2 = 0.25, (0.5 - 0.5)^2 = 0
    assert.deepEqual(flat(out.losses), [0.25, 0]);
  });
});

test('errors: missing targets, bad beta, label smoothing outside dpo', () => {
  torch.tidy(() => {
    const x = example();
    assert.throws(() => preferenceLoss('sppo', { ...x, chosenWinRate: undefined }, { beta: 1 }), /needs chosenWinRate/);
    assert.throws(() => preferenceLoss('sppo_single', { ...x, chosenOverRejected: undefined }, { beta: 1 }), /needs chosenOverRejected/);
    assert.throws(() => preferenceLoss('sppo', x, { beta: 0 }), /beta must be a positive/);
    assert.throws(() => preferenceLoss('dpo', x, { beta: 1, labelSmoothing: 0.5 }), /labelSmoothing/);
    assert.throws(() => preferenceLoss('ipo', x, { beta: 1, labelSmoothing: 0.1 }), /dpo only/);
  });
});

test("ipo with lengthNormalized is TRL's form: each log-ratio divided by its response's length", () => {
  torch.tidy(() => {
    // a_w = 0.3 over 3 tokens, a_l = -0.2 over 4 tokens, beta 0.5: (0.1 - (-0.05) - 1)^2 = 0.7225;
    // summed (the official trainer's): (0.3 + 0.2 - 1)^2 = 0.25.
    const x = { ...example(), chosenLength: f64([3]), rejectedLength: f64([4]) };
    close(preferenceLoss('ipo', x, { beta: 0.5, lengthNormalized: true }).losses.item(), 0.7225);
    close(preferenceLoss('ipo', x, { beta: 0.5 }).losses.item(), 0.25);
    close(preferenceLossValue('ipo', { aw: 0.3, al: -0.2, lw: 3, ll: 4 }, { beta: 0.5, lengthNormalized: true }), 0.7225);
    assert.throws(() => preferenceLoss('ipo', example(), { beta: 0.5, lengthNormalized: true }), /needs chosenLength/);
    assert.throws(() => preferenceLoss('dpo', x, { beta: 0.5, lengthNormalized: true }), /lengthNormalized applies to ipo only/);
  });
});

test('last-iterate losses by hand (beta 0.5, eta 2, tau 0.3: eta tau = 0.6)', () => {
  torch.tidy(() => {
    const x = example();
    const v = (loss: LossType): number => preferenceLoss(loss, x, { beta: 0.5, ...tauOf(loss) }).losses.item();
    // m_w = -1.1 - (-1.5) = 0.4, m_l = -2.4 - (-1.8) = -0.6
    // mpo: T_w = (0.6 + 0.6 * 0.4) / 1.6 = 0.525, T_l = (-0.4 + 0.6 * -0.6) / 1.6 = -0.475
    close(v('mpo'), ((0.3 - 0.525) ** 2 + (-0.2 + 0.475) ** 2) / 2);
    // nash-md, extragradient: T_w = 0.6 + 0.24 = 0.84, T_l = -0.4 - 0.36 = -0.76
    close(v('nash-md'), ((0.3 - 0.84) ** 2 + (-0.2 + 0.76) ** 2) / 2);
    close(v('extragradient'), v('nash-md'));
    // omwu: T_w = 2 (1.6 - 0.6 - 0.5) = 1.0, T_l = 2 (0.6 - 0.45 - 0.5) = -0.7
    close(v('omwu'), ((0.3 - 1.0) ** 2 + (-0.2 + 0.7) ** 2) / 2);
    // extragradient with tau 0 is sppo's form (its win rates are against the look-ahead policy).
    close(preferenceLoss('extragradient', x, { beta: 0.5, tau: 0 }).losses.item(), preferenceLoss('sppo', x, { beta: 0.5 }).losses.item());
    assert.throws(() => preferenceLoss('mpo', x, { beta: 0.5 }), /tau must be a number > 0/);
    assert.throws(() => preferenceLoss('sppo', x, { beta: 0.5, tau: 0.1 }), /tau applies to mpo, nash-md and extragradient only/);
    assert.throws(() => preferenceLoss('omwu', { ...x, chosenPrevWinRate: undefined }, { beta: 0.5 }), /needs chosenPrevWinRate/);
    assert.throws(() => preferenceLoss('nash-md', { ...x, magnetRejected: undefined }, { beta: 0.5, tau: 0.1 }), /needs magnetRejected/);
  });
});

// The game whose responses are enumerable: random-7-8 of the fixture would do; a 5-response intransitive game
// written out keeps the test self-contained.
const GAME = makeGame('five', [
  [0.5, 0.8, 0.3, 0.6, 0.9],
  [0.2, 0.5, 0.75, 0.4, 0.7],
  [0.7, 0.25, 0.5, 0.65, 0.55],
  [0.4, 0.6, 0.35, 0.5, 0.8],
  [0.1, 0.3, 0.45, 0.2, 0.5],
]);

test("each last-iterate loss's minimiser is its method's exact update (the game lab's), on every pair of an enumerable game", () => {
  const n = GAME.n;
  const logp = normalizeLog(Float64Array.from([-0.3, 0.4, -1.2, 0.1, 0.6]));
  const logMu = normalizeLog(Float64Array.from([0.5, -0.2, 0.3, -0.9, 0.0]));
  const logPrev = normalizeLog(Float64Array.from([0.2, 0.1, -0.5, 0.7, -0.4]));
  const beta = 0.8;
  const eta = 1 / beta;
  const tau = 0.35;
  const p = { eta, tau, magnetEvery: 0 };
  const pi = softmax(logp);
  const w = winRates(GAME, pi);
  // Each method's exact pi_{t+1} from the game lab, and the win rates the loss is given (what the loop computes).
  const cases: Array<{ loss: LossType; next: Float64Array; win: Float64Array; prev?: Float64Array }> = [];
  {
    const next = Float64Array.from(logp);
    mpoExactStep(GAME, next, pi, newLastIterateState(logMu), p);
    cases.push({ loss: 'mpo', next, win: w });
  }
  {
    const next = Float64Array.from(logp);
    nashMdExactStep(GAME, next, newLastIterateState(logMu), p);
    cases.push({ loss: 'nash-md', next, win: winRates(GAME, softmax(geometricMixtureLog(logp, logMu, eta * tau))) });
  }
  {
    const s = newLastIterateState(logMu);
    const prev = Float64Array.from(logPrev);
    omwuExactStep(GAME, prev, softmax(logPrev), s, p); // the state now holds P pi_prev
    s.prevWinRates = winRates(GAME, softmax(logPrev));
    const next = Float64Array.from(logp);
    omwuExactStep(GAME, next, pi, s, p);
    cases.push({ loss: 'omwu', next, win: w, prev: winRates(GAME, softmax(logPrev)) });
  }
  {
    const next = Float64Array.from(logp);
    extragradientExactStep(GAME, next, pi, newLastIterateState(logMu), p);
    const half = normalizeLog(logp.map((x, y) => (1 - eta * tau) * x + eta * tau * logMu[y]! + eta * w[y]!));
    cases.push({ loss: 'extragradient', next, win: winRates(GAME, softmax(half)) });
  }
  for (const c of cases) {
    for (let yw = 0; yw < n; yw++) {
      for (let yl = 0; yl < n; yl++) {
        if (yw === yl) continue;
        torch.tidy(() => {
          // Minimise the loss over the policy's log-probs of the pair by gradient steps (float64, autograd).
          const pol = f64([logp[yw]!, logp[yl]!]).requiresGrad_(true);
          for (let k = 0; k < 60; k++) {
            torch.tidy(() => {
              const x: PreferenceLossInputs = {
                policyChosen: pol.narrow(0, 0, 1),
                policyRejected: pol.narrow(0, 1, 1),
                refChosen: f64([logp[yw]!]),
                refRejected: f64([logp[yl]!]),
                chosenWinRate: f64([c.win[yw]!]),
                rejectedWinRate: f64([c.win[yl]!]),
                magnetChosen: f64([logMu[yw]!]),
                magnetRejected: f64([logMu[yl]!]),
                ...(c.prev ? { chosenPrevWinRate: f64([c.prev[yw]!]), rejectedPrevWinRate: f64([c.prev[yl]!]) } : {}),
              };
              preferenceLoss(c.loss, x, { beta, ...tauOf(c.loss, tau) }).losses.sum().backward();
              torch.noGrad(() => pol.sub_(pol.grad!.mul(0.5)));
              pol.grad!.zero_();
            });
          }
          const [aw, al] = Array.from(pol.detach().toTypedArray() as Float64Array).map((v, i) => v - logp[i === 0 ? yw : yl]!);
          // The exact update's log-ratios, log pi_{t+1}(y) - log pi_t(y), agree up to one constant (the normalizer):
          const ew = c.next[yw]! - logp[yw]!;
          const el = c.next[yl]! - logp[yl]!;
          close(aw! - al!, ew - el, 1e-10);
          // and the minimiser is the target itself (logRatioTarget, the same arithmetic in numbers).
          const tw = logRatioTarget(c.loss, { winRate: c.win[yw]!, prevWinRate: c.prev?.[yw], refLogprob: logp[yw], magnetLogprob: logMu[yw] }, { beta, ...tauOf(c.loss, tau) });
          close(aw!, tw, 1e-10);
        });
      }
    }
  }
});
