#!/usr/bin/env python3
"""Writes test/fixtures/trl: TRL 1.13's DPOTrainer losses, rewards and gradients on the tiny Llama, for
test/trl_losses.test.ts (which needs no Python).

The policy is ../shared/fixtures/hf-tiny/llama with lm_head.weight scaled by 1.25 (so the log-ratios are not 0),
the reference the unchanged model (float32, attn_implementation="eager"; bf16=False: DPOConfig defaults to bf16
autocast, which moves the log-ratios by ~1e-2); two preference pairs, tokenized by TRL
itself (its prompt_ids / chosen_ids / rejected_ids, EOS appended, written to pairs.json); beta 0.1. For each of
TRL's loss types sigmoid, ipo and sppo_hard: DPOTrainer.compute_loss on each pair alone (per-example loss and
rewards/chosen, rewards/rejected from the trainer's metrics) and on both pairs (the batch loss, the mean, and its
gradients of two weights). Versions in expected.json.

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0 trl==1.13.0 accelerate datasets):
  python scripts/trl-fixtures.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny] [--out test/fixtures/trl]
"""
import argparse
import json
import os
import shutil
import tempfile

import torch
import transformers
import trl
from datasets import Dataset
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [
    {"prompt": "The capital of France is", "chosen": " Paris, a city.", "rejected": " Berlin"},
    {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " five, I think so"},
]
BETA = 0.1
LM_HEAD_SCALE = 1.25
GRADS = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(ROOT, "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--check", action="store_true", help="write to a temp folder and compare with the committed fixtures")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "trl"))
    a = ap.parse_args()
    committed = a.out
    if a.check:
        a.out = tempfile.mkdtemp()
    torch.set_num_threads(1)
    d = os.path.join(a.hf_tiny, "llama")
    tok = AutoTokenizer.from_pretrained(d)
    load = lambda: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    out = {}
    pairs = None
    tmp = tempfile.mkdtemp()
    try:
        for loss_type in ["sigmoid", "ipo", "sppo_hard"]:
            ref, pol = load(), load()
            with torch.no_grad():
                pol.lm_head.weight.mul_(LM_HEAD_SCALE)
            cfg = DPOConfig(output_dir=tmp, beta=BETA, loss_type=[loss_type], report_to=[], per_device_train_batch_size=2,
                            use_cpu=True, bf16=False, save_strategy="no", logging_strategy="no")
            tr = DPOTrainer(model=pol, ref_model=ref, args=cfg, train_dataset=Dataset.from_list(PAIRS), processing_class=tok)
            rows = [tr.train_dataset[i] for i in range(len(PAIRS))]
            pairs = [{"prompt_ids": r["prompt_ids"], "chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]} for r in rows]
            pol.train()
            losses, rc, rr = [], [], []
            for r in rows:
                tr._metrics["train"].clear()
                with torch.no_grad():
                    losses.append(float(tr.compute_loss(pol, tr.data_collator([r]))))
                rc.append(tr._metrics["train"]["rewards/chosen"][-1])
                rr.append(tr._metrics["train"]["rewards/rejected"][-1])
            pol.zero_grad()
            loss = tr.compute_loss(pol, tr.data_collator(rows))
            loss.backward()
            params = dict(pol.named_parameters())
            out[f"{loss_type}.losses"] = torch.tensor(losses, dtype=torch.float64)
            out[f"{loss_type}.chosen_rewards"] = torch.tensor(rc, dtype=torch.float64)
            out[f"{loss_type}.rejected_rewards"] = torch.tensor(rr, dtype=torch.float64)
            out[f"{loss_type}.loss"] = loss.detach().double().reshape(1)
            for g in GRADS:
                out[f"{loss_type}.grad.{g}"] = params[g].grad.detach().float().contiguous()
            print(f"{loss_type}: per-example losses {losses}, batch loss {float(loss):.6f}, rewards chosen {rc} rejected {rr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    save_file(out, os.path.join(a.out, "expected.safetensors"))
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
               "model": "hf-tiny/llama", "lm_head_scale": LM_HEAD_SCALE, "beta": BETA, "pairs": pairs, "grads": GRADS,
               "writer": "scripts/trl-fixtures.py"}, open(os.path.join(a.out, "expected.json"), "w"), indent=1)

    if a.check:
        from fixture_check import check_and_exit  # beside this script: python puts its folder on sys.path
        check_and_exit(a.out, committed)


if __name__ == "__main__":
    main()
