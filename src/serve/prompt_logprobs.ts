// Log-probs of a prompt's own tokens (echo with logprobs, vLLM's prompt_logprobs): log p(x[t] | x[<t]) for
// t >= 1 under the untempered policy, the same computation as the trainer's (CausalLM.tokenLogprobs), so
// that a client scoring text (lm-evaluation-harness's loglikelihood) gets sppo's own numbers; with k > 0,
// also each position's k most likely tokens and the rank of the prompt's token. One forward pass of the
// prompt, outside the engine's batch (as long as a prefill of it).
import { noGrad, tensor, tidy, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';

export interface PromptLogprobs {
  /** Position t's log-prob (t = 1..T-1; index 0 is the first token's: none). */
  logprobs: (number | null)[];
  /** Position t's k most likely tokens and their log-probs (null at 0, and when k = 0). */
  tops: ([number, number][] | null)[];
  /** Position t's rank of the prompt's token (1 = the most likely; null at 0, and when k = 0). */
  ranks: (number | null)[];
}

export function promptLogprobs(model: CausalLM, ids: readonly number[], k: number): PromptLogprobs {
  const T = ids.length;
  const out: PromptLogprobs = { logprobs: [null], tops: [null], ranks: [null] };
  if (T < 2) return out;
  noGrad(() => tidy(() => {
    const inputIds = tensor(BigInt64Array.from(ids, (x) => BigInt(x)), { device: model.device }).unsqueeze(0);
    const lp = model.tokenLogprobs({ inputIds }).toTypedArray() as Float32Array;
    for (let t = 1; t < T; t++) out.logprobs.push(lp[t - 1]!);
    if (k > 0) {
      const logp: Tensor = model.logits(model.hidden({ inputIds })).squeeze(0).narrow(0, 0, T - 1).float().logSoftmax(-1);
      const kk = Math.min(k, logp.size(1));
      const [vals, idx] = logp.topk(kk, -1);
      const chosen = logp.gather(1, inputIds.squeeze(0).narrow(0, 1, T - 1).unsqueeze(1));
      const ranks = logp.gt(chosen).sum(1).toTypedArray() as BigInt64Array;
      const v = vals.toTypedArray() as Float32Array;
      const ix = idx.toTypedArray() as BigInt64Array;
      for (let t = 0; t < T - 1; t++) {
        const top: [number, number][] = [];
        for (let j = 0; j < kk; j++) top.push([Number(ix[t * kk + j]!), v[t * kk + j]!]);
        out.tops.push(top);
        out.ranks.push(Number(ranks[t]!) + 1);
      }
    } else {
      for (let t = 1; t < T; t++) {
        out.tops.push(null);
        out.ranks.push(null);
      }
    }
  }));
  return out;
}
