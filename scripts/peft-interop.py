#!/usr/bin/env python3
"""Checks the files scripts/peft-interop.mjs had sppo write, with the real libraries:
  python scripts/peft-interop.py WORKDIR ARCH...
For each ARCH under WORKDIR: f32/, bf16/, sharded/ (checkpoints), adapter-plain/, adapter-rslora/ (LoRA adapters),
tokens.json (sppo's token ids of a few texts), expected.safetensors (sppo's logits); merged/<arch>-<variant>/: PEFT's
adapter variants of test/fixtures/peft merged by sppo, with peft-expected.safetensors (the PeftModel's logits).
Bounds (as test/helpers/tolerances.ts derives them for the hf-tiny fixtures): float32 forwards agree within
FWD32 = 2048 * 2^-24 relative to the largest |logit|; a bfloat16 forward on either side is within
BF16 = 64 * 2^-8 of the float32 logits, relative (8 significand bits, rounding at every one of the ~3 layers'
stages; the two sides' bfloat16 forwards each within it of float32's). Models run with attn_implementation="eager"
(transformers' SDPA path leaves out Gemma-2's attention soft-capping).

MoE adapters under transformers 5 (qwen3-moe, mixtral): PEFT 0.21 converts an adapter on the experts' per-expert
projections (transformers 4's layout, and sppo's) to transformers 5's fused experts, and gets two cases wrong
(KNOWN_V5): rsLoRA on the experts (it doubles r and alpha for the fused gate_up_proj, which keeps alpha / r but scales
rsLoRA's alpha / sqrt(r) by sqrt(2)), and a dense MLP beside the experts (Qwen3-MoE's mlp_only_layers: its gate_proj,
up_proj, down_proj are taken for the experts' and left without their LoRA). For these the check is that cause (the
experts' scaling, the dense layer's missing LoRA), printed as "known"; it fails when the logits agree (fixed upstream:
drop the entry). transformers 4.57 loads both as trained.
"""
import json
import os
import sys

import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

FWD32 = 2048 * 2 ** -24
BF16 = 64 * 2 ** -8
failures = 0


def check(ok, what):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failures += 1


KNOWN_V5 = {
    ("qwen3-moe", "plain"): "PEFT's transformers 5 conversion leaves the dense layer's MLP (mlp_only_layers) without its LoRA",
    ("qwen3-moe", "rslora"): "PEFT's transformers 5 conversion scales rsLoRA on the fused experts by sqrt(2)",
    ("mixtral", "rslora"): "PEFT's transformers 5 conversion scales rsLoRA on the fused experts by sqrt(2)",
}


def known_cause(pm, arch, ad):
    """Whether the PeftModel shows KNOWN_V5's cause for (arch, ad)."""
    if ad == "rslora":
        cfg = pm.peft_config["default"]
        want = cfg.lora_alpha / cfg.r ** 0.5
        return any(abs(m.scaling["default"] / want - 2 ** 0.5) < 1e-6 for n, m in pm.named_modules() if n.endswith(".experts") and hasattr(m, "scaling"))
    dense = [n for n, m in pm.named_modules() if n.endswith(".mlp.gate_proj")]
    return bool(dense) and not any(hasattr(m, "lora_A") for n, m in pm.named_modules() if n.endswith(".mlp.gate_proj"))


def rel(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


def load(path, dtype):
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()


def main():
    global failures
    work, archs = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    for arch in archs:
        d = os.path.join(work, arch)
        e = load_file(os.path.join(d, "expected.safetensors"))
        ids = e["ids"]
        with torch.no_grad():
            for name in ("f32", "sharded"):
                m = load(os.path.join(d, name), torch.float32)
                err = rel(m(input_ids=ids).logits, e["base_logits"])
                shards = sorted(f for f in os.listdir(os.path.join(d, name)) if f.endswith(".safetensors"))
                check(err <= FWD32, f"{arch}: AutoModelForCausalLM loads sppo's {name} checkpoint ({len(shards)} file(s)):"
                      f" logits within {err:.2e} of sppo's (bound {FWD32:.2e})")
            m = load(os.path.join(d, "bf16"), torch.bfloat16)
            check(next(m.parameters()).dtype == torch.bfloat16, f"{arch}: the bfloat16 checkpoint loads as bfloat16")
            got = m(input_ids=ids).logits
            err = rel(got, e["base_logits"])
            err_sppo = rel(e["bf16_logits"], e["base_logits"])
            check(err <= BF16 and err_sppo <= BF16, f"{arch}: bfloat16 checkpoint: transformers' bf16 logits within {err:.2e},"
                  f" sppo's within {err_sppo:.2e} of float32 (bound {BF16:.2e})")
            for ad in ("plain", "rslora"):
                base = load(os.path.join(d, "f32"), torch.float32)
                pm = PeftModel.from_pretrained(base, os.path.join(d, f"adapter-{ad}")).eval()
                n = sum(1 for k, _ in pm.named_modules() if k.endswith(".lora_A"))
                err = rel(pm(input_ids=ids).logits, e[f"lora_{ad}_logits"])
                moved = rel(e["base_logits"], e[f"lora_{ad}_logits"])
                if (arch, ad) in KNOWN_V5 and int(transformers.__version__.split(".")[0]) >= 5:
                    cause = known_cause(pm, arch, ad)
                    if err > FWD32 and cause:
                        print(f"known {arch}: PeftModel.from_pretrained on sppo's {ad} adapter: logits {err:.2e} off: {KNOWN_V5[(arch, ad)]}", flush=True)
                        continue
                    check(False, f"{arch}: {ad} adapter under transformers 5: logits within {err:.2e}, the known cause {'present' if cause else 'absent'}: update KNOWN_V5")
                    continue
                check(err <= FWD32 and moved > 100 * FWD32, f"{arch}: PeftModel.from_pretrained loads sppo's {ad} adapter"
                      f" ({n} layers): logits within {err:.2e} of sppo's LoRA forward (bound {FWD32:.2e}; the adapter moves them {moved:.2e})")
        tok = AutoTokenizer.from_pretrained(os.path.join(d, "f32"))
        rust = Tokenizer.from_file(os.path.join(d, "f32", "tokenizer.json"))
        for t in json.load(open(os.path.join(d, "tokens.json"))):
            got = tok(t["text"])["input_ids"]
            if got == t["ids"]:
                check(True, f"{arch}: AutoTokenizer on sppo's saved tokenizer files encodes {t['text']!r} to sppo's ids")
                continue
            # transformers 5 builds some tokenizer classes (Qwen2Tokenizer) from the vocabulary and merges with the
            # class's own pre-tokenizer, not tokenizer.json's: then the saved files still round trip (AutoTokenizer on
            # the source folder gives the same ids) and the tokenizers library on tokenizer.json gives sppo's ids.
            try:  # transformers 4 cannot load a transformers 5 source folder's tokenizer (class TokenizersBackend)
                orig = AutoTokenizer.from_pretrained(os.path.join(work, arch, "source"))
                same_files = orig(t["text"])["input_ids"] == got
            except ValueError:
                same_files = False
            file_ids = rust.encode(t["text"], add_special_tokens=False).ids
            known = same_files and file_ids == t["ids"][len(t["ids"]) - len(file_ids):]
            print(f"{'diff' if known else 'FAIL'} {arch}: AutoTokenizer gives {got} for {t['text']!r}, sppo {t['ids']}:"
                  + (" AutoTokenizer gives the same on the source folder and tokenizers.Tokenizer.from_file(tokenizer.json)"
                     " gives sppo's ids (transformers' tokenizer class replaces the file's pre-tokenizer)" if known else ""), flush=True)
            if not known:
                failures += 1
    # PEFT's adapter variants merged by sppo (merged/<arch>-<variant>/, with the PeftModel's logits PEFT computed).
    merged = os.path.join(work, "merged")
    for name in sorted(os.listdir(merged)) if os.path.isdir(merged) else []:
        d = os.path.join(merged, name)
        e = load_file(os.path.join(d, "peft-expected.safetensors"))
        cfg = json.load(open(os.path.join(d, "config.json")))
        with torch.no_grad():
            m = load(d, torch.float32)
            err = rel(m(input_ids=e["ids"]).logits, e["logits"])
        tied = m.lm_head.weight.data_ptr() == m.get_input_embeddings().weight.data_ptr()
        check(err <= FWD32 and m.config.vocab_size == m.get_input_embeddings().weight.shape[0] and tied == bool(cfg.get("tie_word_embeddings", tied)),
              f"{name}: AutoModelForCausalLM loads the model sppo merged (vocab_size {m.config.vocab_size}, tied {tied}):"
              f" logits within {err:.2e} of PEFT's PeftModel (bound {FWD32:.2e})")
    print(f"{failures} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
