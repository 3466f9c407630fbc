// sppo's preference losses against TRL 1.13's DPOTrainer itself (test/fixtures/trl, written by
// scripts/trl-fixtures.py): the tiny Llama as reference, the same with lm_head scaled by 1.25 as policy, the two
// pairs as TRL tokenized them, beta 0.1. TRL's `sigmoid`, `ipo` and `sppo_hard` against sppo's `dpo`,
// `ipo` with lengthNormalized, and `sppo_hard`: per-example losses, rewards (beta * log-ratio), and the gradients
// of the batch's mean loss. By design, sppo's default `ipo` (summed log-ratios, the official SPPO trainer's form)
// is not TRL's (averaged over each response's tokens): shown below as a difference far outside the bound.
//
// Bounds from the arithmetic: a summed log-prob of n tokens is within n * LOGPROB32 on each side (sppo's and
// PyTorch's float32 forwards), so a log-ratio a within da = 2 n LOGPROB32; each loss's error follows from its
// derivative (dpo: beta (da_w + da_l); ipo on averages: 2 |d - 1/(2 beta)| dd + dd^2 with dd = da_w/n_w + da_l/n_l;
// sppo_hard: 2 |a_w - eta/2| da_w + da_w^2 + 2 |a_l + eta/2| da_l + da_l^2). Gradients (relative to the largest
// |gradient|): BWD32 plus the relative error of the per-example factor dL/da that scales each example's gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { packSequences, responseLogprobs } from '../src/sppo/logprobs.js';
import { preferenceLoss, type LossType } from '../src/sppo/losses.js';
import { hfTiny, projectRoot } from './helpers/fixtures.js';
import { BWD32, LOGPROB32, reportError } from './helpers/tolerances.js';

const dir = join(projectRoot, 'test', 'fixtures', 'trl');
const meta = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  beta: number; lm_head_scale: number; grads: string[];
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
};
const llama = join(hfTiny, 'llama');
const skip = existsSync(join(llama, 'model.safetensors')) ? false : `no fixture at ${llama}`;

interface Side { aw: number[]; al: number[]; losses: number[]; grads: Map<string, torch.Tensor> }

/** sppo's losses, log-ratios and the gradients of the batch's mean loss. */
function sppoSide(loss: LossType, lengthNormalized: boolean): Side {
  const ref = loadModel(llama, { dtype: 'float32', device: 'cpu' });
  const pol = loadModel(llama, { dtype: 'float32', device: 'cpu' });
  try {
    torch.noGrad(() => {
      const w = pol.namedParameters().find(([n]) => n === 'lm_head.weight')![1];
      w.mul_(meta.lm_head_scale);
    });
    const seqs = meta.pairs.flatMap((p) => [{ promptIds: p.prompt_ids, responseIds: p.chosen_ids }, { promptIds: p.prompt_ids, responseIds: p.rejected_ids }]);
    const batch = packSequences(seqs, 0);
    const refLp = torch.noGrad(() => responseLogprobs(ref, batch));
    for (const [, p] of pol.namedParameters()) p.requiresGrad_(true);
    const lp = responseLogprobs(pol, batch);
    const idx = (o: number) => torch.tensor(meta.pairs.map((_, i) => BigInt(2 * i + o)));
    const [iw, il] = [idx(0), idx(1)];
    const out = preferenceLoss(loss, {
      policyChosen: lp.indexSelect(0, iw), policyRejected: lp.indexSelect(0, il),
      refChosen: refLp.indexSelect(0, iw), refRejected: refLp.indexSelect(0, il),
      chosenLength: torch.tensor(meta.pairs.map((p) => p.chosen_ids.length)).float(),
      rejectedLength: torch.tensor(meta.pairs.map((p) => p.rejected_ids.length)).float(),
    }, { beta: meta.beta, lengthNormalized });
    out.losses.mean().backward();
    const params = new Map(pol.namedParameters());
    const grads = new Map(meta.grads.map((g) => [g, params.get(g)!.grad!]));
    return { aw: (out.chosenLogratio.float().toArray() as number[]), al: (out.rejectedLogratio.float().toArray() as number[]), losses: (out.losses.detach().float().toArray() as number[]), grads };
  } finally {
    ref.dispose();
    pol.dispose();
  }
}

function trlSide(name: string): { losses: number[]; rc: number[]; rr: number[]; grads: Map<string, torch.Tensor> } {
  const { tensors } = torch.loadSafetensors(join(dir, 'expected.safetensors'));
  const arr = (k: string) => (tensors.get(`${name}.${k}`)!.toArray() as number[]);
  return { losses: arr('losses'), rc: arr('chosen_rewards'), rr: arr('rejected_rewards'), grads: new Map(meta.grads.map((g) => [g, tensors.get(`${name}.grad.${g}`)!])) };
}

const CASES: { trl: string; sppo: LossType; lengthNormalized: boolean }[] = [
  { trl: 'sigmoid', sppo: 'dpo', lengthNormalized: false },
  { trl: 'ipo', sppo: 'ipo', lengthNormalized: true },
  { trl: 'sppo_hard', sppo: 'sppo_hard', lengthNormalized: false },
];

for (const c of CASES) {
  test(`TRL's ${c.trl} = sppo's ${c.sppo}${c.lengthNormalized ? ' (lengthNormalized)' : ''}: per-example losses, rewards, gradients`, { skip }, () => {
    const s = sppoSide(c.sppo, c.lengthNormalized);
    const t = trlSide(c.trl);
    const beta = meta.beta;
    const eta = 1 / beta;
    meta.pairs.forEach((p, i) => {
      const [nw, nl] = [p.chosen_ids.length, p.rejected_ids.length];
      const [daw, dal] = [2 * nw * LOGPROB32, 2 * nl * LOGPROB32];
      const [aw, al] = [s.aw[i]!, s.al[i]!];
      // rewards
      for (const [got, want, da, what] of [[beta * aw, t.rc[i]!, daw, 'chosen'], [beta * al, t.rr[i]!, dal, 'rejected']] as const) {
        reportError(`${c.trl} pair ${i} reward ${what}`, Math.abs(got - want), beta * da);
        assert.ok(Math.abs(got - want) <= beta * da, `pair ${i} rewards/${what}: sppo ${got}, TRL ${want}`);
      }
      let bound: number;
      if (c.sppo === 'dpo') bound = beta * (daw + dal);
      else if (c.sppo === 'ipo') {
        const dd = daw / nw + dal / nl;
        bound = 2 * Math.abs(aw / nw - al / nl - eta / 2) * dd + dd * dd;
      } else bound = 2 * Math.abs(aw - eta / 2) * daw + daw * daw + 2 * Math.abs(al + eta / 2) * dal + dal * dal;
      const err = Math.abs(s.losses[i]! - t.losses[i]!);
      reportError(`${c.trl} pair ${i} loss`, err, bound);
      assert.ok(err <= bound, `pair ${i} loss: sppo ${s.losses[i]}, TRL ${t.losses[i]} (bound ${bound})`);
    });
    // The relative error of each example's factor dL/da (what scales its gradient).
    const factorErr = Math.max(...meta.pairs.map((p, i) => {
      const [nw, nl] = [p.chosen_ids.length, p.rejected_ids.length];
      const [daw, dal] = [2 * nw * LOGPROB32, 2 * nl * LOGPROB32];
      const [aw, al] = [s.aw[i]!, s.al[i]!];
      if (c.sppo === 'dpo') return beta * (daw + dal);
      if (c.sppo === 'ipo') return (daw / nw + dal / nl) / Math.abs(aw / nw - al / nl - eta / 2);
      return Math.max(daw / Math.abs(aw - eta / 2), dal / Math.abs(al + eta / 2));
    }));
    for (const g of meta.grads) {
      const got = s.grads.get(g)!;
      const want = t.grads.get(g)!;
      const err = torch.tidy(() => got.sub(want).abs().max().item() / want.abs().max().item());
      reportError(`${c.trl} grad ${g}`, err, BWD32 + factorErr);
      assert.ok(err <= BWD32 + factorErr, `${g}: relative gradient error ${err}`);
      assert.ok(want.abs().max().item() > 0, `${g}: TRL's gradient is not zero`);
    }
  });
}

test("by design: sppo's default ipo (summed log-ratios) is not TRL's ipo (averaged over each response's tokens)", { skip }, () => {
  const summed = sppoSide('ipo', false);
  const t = trlSide('ipo');
  meta.pairs.forEach((p, i) => {
    const aw = summed.aw[i]!;
    const al = summed.al[i]!;
    // sppo's: (a_w - a_l - 1/(2 beta))^2; TRL's: (a_w/|y_w| - a_l/|y_l| - 1/(2 beta))^2.
    const trlForm = (aw / p.chosen_ids.length - al / p.rejected_ids.length - 1 / (2 * meta.beta)) ** 2;
    assert.ok(Math.abs(summed.losses[i]! - (aw - al - 1 / (2 * meta.beta)) ** 2) <= 1e-5 * Math.max(1, summed.losses[i]!), "summed form");
    assert.ok(Math.abs(t.losses[i]! - trlForm) <= 0.05 * trlForm, "TRL's is the averaged form");
    assert.ok(Math.abs(summed.losses[i]! - t.losses[i]!) > 0.1 * t.losses[i]!, `pair ${i}: summed ${summed.losses[i]} vs TRL ${t.losses[i]}`);
    if (process.env.SPPO_PRINT_ERRORS) console.log(`[by design] pair ${i}: sppo ipo (summed) ${summed.losses[i]!.toFixed(4)}, TRL ipo (averaged) ${t.losses[i]!.toFixed(4)}`);
  });
});
