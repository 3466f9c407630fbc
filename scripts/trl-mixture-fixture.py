#!/usr/bin/env python3
"""Writes test/fixtures/trl/mixture.json: greedy generations of TRL 1.13's GeometricMixtureWrapper (Nash-MD's
opponent, trl.experimental.nash_md) over two tiny models of ../shared/fixtures/hf-tiny, for the mixture test of
test/generate.test.ts (which needs no Python).

The model is llama, the reference qwen2 (the same 512-token vocabulary and tokenizer; float32, eager attention); each
of llama's expected.json prompts alone, greedy, 12 new tokens, EOS off, at mixture coefficients 0.1 and 0.5. Per
generation: the tokens and each step's score, which for this wrapper is the mixture's log-prob of the chosen token
(it returns log_softmax of coef * z_ref + (1 - coef) * z_model as the logits, and greedy decoding leaves them as is).

The generation config has use_cache=False, as the wrapper intends (its prepare_inputs_for_generation turns the cache
off). With the cache on (the Nash-MD trainer's config without gradient checkpointing), transformers 5.17's generate
gives another result: at coefficient 0.1 the first token's log-prob is -2.6309 where the mixture computed from full
forward passes of both models gives -2.6518, and the second greedy token is 304 where that mixture's argmax is 333
(probably one cache handed to both models; not investigated further).

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0 trl==1.13.0 accelerate datasets):
  python scripts/trl-mixture-fixture.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny] [--out test/fixtures/trl/mixture.json]
--check writes nothing: it compares TRL's generations now with the committed file (the same tokens; log-probs within
LOGPROB32 = 2 * 2048 * 2^-24 * 16 of test/helpers/tolerances.ts, as another CPU's kernels sum in other orders).
"""
import argparse
import json
import os

import torch
import transformers
import trl
from transformers import AutoModelForCausalLM, GenerationConfig
from trl.experimental.nash_md.nash_md_trainer import GeometricMixtureWrapper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COEFS = [0.1, 0.5]
NEW_TOKENS = 12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(ROOT, "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "trl", "mixture.json"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    load = lambda name: AutoModelForCausalLM.from_pretrained(os.path.join(a.hf_tiny, name), dtype=torch.float32, attn_implementation="eager").eval()
    model, ref = load("llama"), load("qwen2")
    prompts = json.load(open(os.path.join(a.hf_tiny, "llama", "expected.json")))["prompt_ids"]
    gc = GenerationConfig(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=False)
    runs = []
    for coef in COEFS:
        wrapper = GeometricMixtureWrapper(model, ref, gc, mixture_coef=coef, device=torch.device("cpu"))
        gens = []
        for p in prompts:
            ids = torch.tensor([p])
            out = wrapper.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc, output_scores=True, return_dict_in_generate=True)
            tokens = out.sequences[0, len(p):].tolist()
            logprobs = [out.scores[j][0, t].item() for j, t in enumerate(tokens)]
            gens.append({"prompt_ids": p, "tokens": tokens, "logprobs": logprobs})
        runs.append({"coef": coef, "generations": gens})
    if a.check:
        from fixture_check import check_runs  # beside this script: python puts its folder on sys.path
        raise SystemExit(check_runs(runs, json.load(open(a.out))["runs"], a.out, "coef", ("logprobs",), 2 * 2048 * 2 ** -24 * 16,
                                    "TRL's GeometricMixtureWrapper gives the committed tokens and log-probs"))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                   "model": "llama", "ref_model": "qwen2", "max_new_tokens": NEW_TOKENS, "runs": runs}, f, indent=1)
        f.write("\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
