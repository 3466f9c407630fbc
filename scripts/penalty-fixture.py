#!/usr/bin/env python3
"""Writes test/fixtures/transformers/penalties.json: greedy generations of transformers 5.17's generate with
repetition_penalty (its RepetitionPenaltyLogitsProcessor, the rule vLLM applies too) on the tiny llama of
../shared/fixtures/hf-tiny, for test/penalties.test.ts (which needs no Python).

Each of llama's expected.json prompts alone (no padding: transformers' processor would count left padding as seen
tokens, vLLM's and sppo's do not), float32, eager attention, greedy, 16 new tokens, at repetition_penalty 1.5
and 0.7, EOS (id 2) banned throughout (min_new_tokens = max_new_tokens). Per generation: the tokens; each step's processed score of the chosen token (generate's `scores`: the logits
after the penalty) and its margin over the runner-up; and the chosen token's log-prob under the raw logits
(`logits`: what sppo returns as log-probs).

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0):
  python scripts/penalty-fixture.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny] [--out test/fixtures/transformers/penalties.json]
--check writes nothing: it compares transformers' generations now with the committed file (the same tokens; scores
and log-probs within 2 * 2048 * 2^-24 * 16, as another CPU's kernels sum in other orders).
"""
import argparse
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PENALTIES = [1.5, 0.7]
NEW_TOKENS = 16
BOUND = 2 * 2048 * 2 ** -24 * 16


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(ROOT, "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "transformers", "penalties.json"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(os.path.join(a.hf_tiny, "llama"), dtype=torch.float32, attn_implementation="eager").eval()
    prompts = json.load(open(os.path.join(a.hf_tiny, "llama", "expected.json")))["prompt_ids"]
    runs = []
    for penalty in PENALTIES:
        gc = GenerationConfig(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=2, pad_token_id=0, repetition_penalty=penalty)
        gens = []
        for p in prompts:
            ids = torch.tensor([p])
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc, output_scores=True, output_logits=True, return_dict_in_generate=True)
            tokens = out.sequences[0, len(p):].tolist()
            scores, margins, logprobs = [], [], []
            for j, t in enumerate(tokens):
                s = out.scores[j][0]
                top2 = s.topk(2).values
                scores.append(s[t].item())
                margins.append((top2[0] - top2[1]).item())
                logprobs.append(out.logits[j][0].log_softmax(-1)[t].item())
            gens.append({"prompt_ids": p, "tokens": tokens, "scores": scores, "margins": margins, "logprobs": logprobs})
        runs.append({"repetition_penalty": penalty, "generations": gens})
    if a.check:
        from fixture_check import check_runs  # beside this script: python puts its folder on sys.path
        raise SystemExit(check_runs(runs, json.load(open(a.out))["runs"], a.out, "repetition_penalty", ("scores", "logprobs"), BOUND,
                                    "transformers' generate with repetition_penalty gives the committed tokens, scores and log-probs"))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "model": "llama",
                   "max_new_tokens": NEW_TOKENS, "runs": runs}, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
