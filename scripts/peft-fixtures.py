#!/usr/bin/env python3
"""Writes test/fixtures/peft: LoRA adapters written by PEFT itself, with the logits PEFT gives, for
test/peft_interop.test.ts (which needs no Python).

For every architecture of ../shared/fixtures/hf-tiny that sppo supports (llama, qwen2, mistral, gemma2, gpt2),
PEFT 0.21 on transformers 5.17 (torch 2.13, CPU, float32):
  <arch>/plain/    get_peft_model(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                   init_lora_weights=False))  (B not zero)
  <arch>/rslora/   use_rslora=True, r=4, lora_alpha=8, a list of module names
  <arch>/regex/    target_modules given as a regular expression (PEFT: re.fullmatch on the module's full name)
and PEFT's LoRA variants, which `sppo merge` merges (the trained tensors besides A and B, which PEFT starts at
the base's values or at one, moved by N(0, 0.05^2) noise, as training moves them, so that a merge that ignores one fails):
  llama/dora/              use_dora=True on every linear layer (lora_magnitude_vector)
  gpt2/dora/               use_dora=True on Conv1D layers (fan_in_fan_out)
  llama/pattern/           rank_pattern / alpha_pattern (per-module r and lora_alpha, regular expressions)
  qwen2/bias_all/          bias="all": every bias trained and saved
  gpt2/bias_lora_only/     bias="lora_only"
  qwen2/lora_bias/         lora_bias=True (lora_B has a bias)
  llama/embedding/         a LoRA on embed_tokens (lora_embedding_A / _B; PEFT saves the embedding beside it)
  qwen2/embedding/         the same on tied embeddings (PEFT's merge adds it to the shared matrix, which moves the
                           output layer too: merged_logits differ from logits by O(1); sppo unties them, and matches logits)
  llama/trainable_tokens/  trainable_token_indices=[3, 7, 500]
  qwen2/trainable_tokens/  the same, tied
  llama/modules_to_save/   modules_to_save=["lm_head"]
  qwen2/modules_to_save/   modules_to_save=["embed_tokens"] on tied embeddings: merge_and_unload() unties them
  qwen2/tied_copies/       the same with ensure_weight_tying=True: they stay tied
  qwen3-moe/experts/       (test/fixtures/hf-extra's Qwen3-MoE, on transformers 5's fused experts) target_parameters
                           ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"] beside target_modules ["q_proj"]:
                           PEFT's ParamWrapper LoRA on the 3-D expert weights ([experts * r, in] lora_A, [out, experts *
                           r] lora_B, saved as mlp.experts.base_layer.lora_* and mlp.experts.lora_*), which is what PEFT
                           trains and saves on a MoE model under transformers 5
  mixtral/experts/         the same on the Mixtral fixture, target_modules "all-linear": PEFT resolves it to the
                           attention projections and, as target_parameters, the router (mlp.gate, sppo's
                           block_sparse_moe.gate) and the fused experts (rank and alpha doubled for gate_up_proj)
  llama/resized/           the vocabulary resized to 520 (resize_token_embeddings, 8 added tokens saved with the
                           tokenizer into the adapter folder, as trainers save it), modules_to_save=["embed_tokens", "lm_head"]
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
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDS = [[5, 17, 42, 99, 311, 128], [9, 8, 7, 6, 5, 400]]
IDS_RESIZED = [[5, 17, 515, 99, 519, 128], [9, 8, 7, 512, 5, 400]]
RESIZED = 520
# Variants whose trained non-LoRA tensors get noise (see above); the plain ones are as PEFT initialises them.
PERTURBED = {"dora", "pattern", "bias_all", "bias_lora_only", "lora_bias", "embedding", "trainable_tokens",
             "modules_to_save", "tied_copies", "resized"}
ARCHS = ["llama", "qwen2", "mistral", "gemma2", "gpt2", "qwen3-moe", "mixtral"]
# Architectures whose base is a committed fixture of this repository (scripts/hf-extra-fixtures.py), not hf-tiny's.
HF_EXTRA = {"qwen3-moe", "mixtral"}


def variants(arch):
    if arch == "qwen3-moe":
        return {"experts": dict(r=2, lora_alpha=6, target_modules=["q_proj"],
                                target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])}
    if arch == "mixtral":
        return {"experts": dict(r=2, lora_alpha=6, target_modules="all-linear")}
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
        v["dora"] = dict(r=4, lora_alpha=8, target_modules="all-linear", use_dora=True)
        v["pattern"] = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                            rank_pattern={"q_proj": 2, r"layers\.1\.mlp\.down_proj": 6}, alpha_pattern={"v_proj": 3})
        v["embedding"] = dict(r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"])
        v["trainable_tokens"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], trainable_token_indices=[3, 7, 500])
        v["resized"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], modules_to_save=["embed_tokens", "lm_head"])
    if arch == "qwen2":
        v["bias_all"] = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], bias="all")
        v["lora_bias"] = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_bias=True)
        v["embedding"] = dict(r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"])
        v["trainable_tokens"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], trainable_token_indices=[3, 7, 500])
        v["modules_to_save"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], modules_to_save=["embed_tokens"])
        v["tied_copies"] = dict(r=4, lora_alpha=8, target_modules=["q_proj"], modules_to_save=["embed_tokens"],
                                ensure_weight_tying=True)
    if arch == "gpt2":
        v["dora"] = dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], use_dora=True)
        v["bias_lora_only"] = dict(r=4, lora_alpha=8, target_modules=["c_attn"], bias="lora_only")
    return v


def forward(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits.float().contiguous()


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
            src = os.path.join(ROOT, "test", "fixtures", "hf-extra", arch) if arch in HF_EXTRA else os.path.join(a.hf_tiny, arch)
            base = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32,
                                                        attn_implementation="eager")
            base.eval()
            out = os.path.join(a.out, arch, name)
            ids = IDS
            if name == "resized":
                ids = IDS_RESIZED
                tok = AutoTokenizer.from_pretrained(os.path.join(a.hf_tiny, arch))
                tok.add_special_tokens({"additional_special_tokens": [f"<|added_{i}|>" for i in range(RESIZED - 512)]})
                tok.save_pretrained(out)
                base.resize_token_embeddings(RESIZED)
            cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, init_lora_weights=False, **kw)
            pm = get_peft_model(base, cfg)
            pm.eval()
            if name in PERTURBED:
                with torch.no_grad():
                    for n, p in pm.named_parameters():
                        is_ab = (".lora_A." in n or ".lora_B." in n) and n.endswith(".weight")
                        if p.requires_grad and not is_ab:
                            p.add_(torch.randn_like(p) * 0.05)
            pm.save_pretrained(out)
            os.remove(os.path.join(out, "README.md"))  # PEFT's model card, naming this machine's paths
            # base_model_name_or_path: the fixture's name, not this machine's path.
            cpath = os.path.join(out, "adapter_config.json")
            c = json.load(open(cpath))
            c["base_model_name_or_path"] = f"{'hf-extra' if arch in HF_EXTRA else 'hf-tiny'}/{arch}"
            for k in ("target_modules", "target_parameters"):  # PEFT writes a set's order, which varies between runs
                if isinstance(c.get(k), list):
                    c[k] = sorted(c[k])
            json.dump(c, open(cpath, "w"), indent=2, sort_keys=True)
            logits = forward(pm, ids)
            adapted = sum(1 for n, _ in pm.named_modules() if n.endswith(".lora_A"))
            with pm.disable_adapter():
                base_logits = forward(pm, ids)
            merged = pm.merge_and_unload()
            merged_logits = forward(merged, ids)
            tied = bool(merged.config.tie_word_embeddings)
            save_file({"logits": logits, "merged_logits": merged_logits, "ids": torch.tensor(ids, dtype=torch.int64),
                       "merged_tied": torch.tensor([int(tied)]), "merged_vocab": torch.tensor([merged.config.vocab_size])},
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
