// The preference losses: values against hand-computed numbers, gradients (analytic by hand and against
// finite differences in float64), the official SPPO scaling, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { LOSS_TYPES, preferenceLoss, preferenceLossValue, type LossType, type PreferenceLossInputs } from '../src/sppo/losses.js';
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
  };
}

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
      const t = preferenceLoss(loss, x, { beta: 1e-3 }).losses.item();
      close(preferenceLossValue(loss, { aw: 0.3, al: -0.2, pw: 0.8, pl: 0.3, pwl: 0.7 }, { beta: 1e-3 }), t, 1e-9);
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
    const err = gradcheck(
      (a, bb, c, d, e, f, g) =>
        preferenceLoss(loss, { policyChosen: a!, policyRejected: bb!, refChosen: c!, refRejected: d!, chosenWinRate: e!, rejectedWinRate: f!, chosenOverRejected: g! }, { beta: 0.7, labelSmoothing: loss === 'dpo' ? 0.2 : 0 }).losses,
      [pc, pr, rc, rr, pw, pl, pwl],
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
