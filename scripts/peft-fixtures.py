#!/usr/bin/env python3
"""Writes test/fixtures/peft: LoRA adapters written by PEFT itself, with the logits PEFT gives, for
test/peft_interop.test.ts (which needs no Python).

For every architecture of ../shared/fixtures/hf-tiny that sppo supports (llama, qwen2, mistral, gemma2, gpt2),
PEFT 0.21 on transformers 5.17 (torch 2.13, CPU, float32):
  <arch>/plain/    get_peft_model(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                   init_lora_weights=False))  (B not zero)
  <arch>/rslora/   use_rslora=True, r=4, lora_alpha=8, a list of module names
  <arch>/regex/    target_modules given as a regular expression (PEFT: re.fullmatch on the module's full name)
  llama/modules_to_save/  modules_to_save=["lm_head"]: sppo must refuse it, naming the option
Each folder: PEFT's save_pretrained files (adapter_config.json, adapter_model.safetensors) and
expected.safetensors: "logits" (the PeftModel's forward on IDS, [2, 6, 512]) and "merged_logits" (the forward of
merge_and_unload()'s model), with the versions in expected.json. The models run with
attn_implementation="eager": transformers' default SDPA path leaves out Gemma-2's attention logit soft-capping
(attn_logit_softcapping), which moves the tiny gemma2's logits by ~1e-3 relative; eager computes the model
as its config defines it, as sppo does.

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0 peft==0.21.0):
  python scripts/peft-fixtures.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny] [--out test/fixtures/peft]
"""
import argparse
import json
import os
import shutil
import tempfile

import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDS = [[5, 17, 42, 99, 311, 128], [9, 8, 7, 6, 5, 400]]
ARCHS = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]


def variants(arch):
    gpt2 = arch == "gpt2"
    v = {
        "plain": dict(r=4, lora_alpha=8, target_modules="all-linear"),
        "rslora": dict(r=4, lora_alpha=8, use_rslora=True,
                       target_modules=["c_attn", "c_proj"] if gpt2 else ["q_proj", "v_proj", "down_proj"]),
        "regex": dict(r=2, lora_alpha=6,
                      target_modules=r".*\.h\.1\.(attn\.c_attn|mlp\.c_fc)" if gpt2 else r".*\.layers\.[01]\.(self_attn\.(k|o)_proj|mlp\.up_proj)"),
    }
    if arch == "llama":
        v["modules_to_save"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], modules_to_save=["lm_head"])
    return v


def forward(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits.float().contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(ROOT, "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--check", action="store_true", help="write to a temp folder and compare with the committed fixtures")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "peft"))
    a = ap.parse_args()
    committed = a.out
    if a.check:
        a.out = tempfile.mkdtemp()
    torch.set_num_threads(1)
    if os.path.isdir(a.out):
        shutil.rmtree(a.out)
    for arch in ARCHS:
        for name, kw in variants(arch).items():
            torch.manual_seed(1000 + ARCHS.index(arch) * 10 + len(name))
            base = AutoModelForCausalLM.from_pretrained(os.path.join(a.hf_tiny, arch), dtype=torch.float32,
                                                        attn_implementation="eager")
            base.eval()
            cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, init_lora_weights=False, **kw)
            pm = get_peft_model(base, cfg)
            pm.eval()
            out = os.path.join(a.out, arch, name)
            pm.save_pretrained(out)
            # base_model_name_or_path: the fixture's name, not this machine's path.
            cpath = os.path.join(out, "adapter_config.json")
            c = json.load(open(cpath))
            c["base_model_name_or_path"] = f"hf-tiny/{arch}"
            if isinstance(c["target_modules"], list):  # PEFT writes a set's order, which varies between runs
                c["target_modules"] = sorted(c["target_modules"])
            json.dump(c, open(cpath, "w"), indent=2, sort_keys=True)
            logits = forward(pm)
            adapted = sum(1 for n, _ in pm.named_modules() if n.endswith(".lora_A"))
            with pm.disable_adapter():
                base_logits = forward(pm)
            merged = pm.merge_and_unload()
            merged_logits = forward(merged)
            save_file({"logits": logits, "merged_logits": merged_logits, "ids": torch.tensor(IDS, dtype=torch.int64)},
                      os.path.join(out, "expected.safetensors"))
            print(f"{arch}/{name}: {adapted} adapted layers, max |logit change| from the base"
                  f" {float((logits - base_logits).abs().max()):.2e}, PeftModel vs merged {float((logits - merged_logits).abs().max()):.2e}")
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
               "ids": IDS, "writer": "scripts/peft-fixtures.py"},
              open(os.path.join(a.out, "expected.json"), "w"), indent=2)

    if a.check:
        from fixture_check import check_and_exit  # beside this script: python puts its folder on sys.path
        check_and_exit(a.out, committed)


if __name__ == "__main__":
    main()
