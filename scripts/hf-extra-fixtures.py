#!/usr/bin/env python3
"""Writes test/fixtures/hf-extra: tiny random models of architectures that ../shared/fixtures/hf-tiny lacks, in
its layout and with its expected outputs, written by Hugging Face transformers itself, for test/conformance.test.ts
(which needs no Python).

  qwen3/   Qwen3ForCausalLM (Qwen3 0.6B-32B): Qwen2's decoder without q/k/v biases, with an RMSNorm over each
           head's dimensions of q and of k (q_norm, k_norm) before the rotary embedding, and head_dim set apart
           from hidden_size / num_attention_heads (here 24, not 16, as Qwen3's 128 is not 1024 / 16). The norm
           weights are drawn around one (1 + N(0, 0.1^2)), so that a model that leaves a norm out, or applies it
           after the rotation, fails. The tokenizer and chat template are hf-tiny/qwen2's (Qwen3 shares Qwen2's).
  gemma3/  Gemma3ForCausalLM (Gemma 3's text model, model_type gemma3_text): Gemma 2's decoder with q/k norms (Gemma's
           1 + w, weights drawn around zero), a rope per layer type (sliding layers rope_local_base_freq 10000, full
           ones rope_theta 1e6 with linear scaling, factor 8, as the 4B-27B models), layers sliding except every
           sliding_window_pattern-th (here 2: sliding, full, sliding) with a window of 6 tokens, so that the fixture's
           prompts (23-60 tokens) cross it, and no soft-capping. The tokenizer and chat template are hf-tiny/gemma2's
           (and its special ids: bos 1, eos 2, where Gemma 3's own are 2 and 1).
  gemma3-mm/ Gemma3ForConditionalGeneration (gemma-3-4b-it and the larger Gemma 3s) with gemma3's text model and a tiny
           SigLIP vision tower, its config.json's text_config cut to the fields that differ from Gemma3TextConfig's
           defaults (as google/gemma-3-4b-it's is): sppo reads its language model (the `language_model.*` tensors),
           whose text-only forward (no image) the expected outputs are; gradients named as Gemma3ForCausalLM's.
  smollm3/ SmolLM3ForCausalLM (SmolLM3-3B): Llama's decoder with NoPE layers, which attend without rotary positions
           (no_rope_layers; here every 2nd of 4 layers: 1, 0, 1, 0, where SmolLM3 has every 4th). The tokenizer and
           chat template are hf-tiny/llama's.
  olmo2/   Olmo2ForCausalLM (OLMo 2): Llama's blocks with the norms after attention and MLP instead of before, and RMSNorms
           on q and k over the whole projection before the rotary embedding; untied embeddings. Norm weights drawn
           around one. The tokenizer and chat template are hf-tiny/llama's.
  phi3/    Phi3ForCausalLM (Phi-3.5-mini, Phi-4-mini): fused qkv_proj and gate_up_proj, a rotary embedding over 3/4 of
           each head (partial_rotary_factor 0.75, Phi-4-mini's) with LongRoPE scaling (random short and long factors,
           original_max_position_embeddings 64 of 128): the prompts (54 tokens at most) and their 10 greedy tokens stay
           within 64 positions, so every call takes the short factors. The tokenizer and chat template are hf-tiny/llama's.
  phi3-long/ the same model with original_max_position_embeddings 40: every call reaches past it (the prompts' forward
           already), so every call takes the long factors and the attention factor sqrt(1 + ln(128/40) / ln 40).
           (Where a generation crosses the point, transformers' Phi-3 generate drops its cache and recomputes every
           position with the long factors; the fixtures leave that out.)
  qwen3-moe/ Qwen3MoeForCausalLM (Qwen3-30B-A3B, Qwen3-235B-A22B): qwen3's attention with a sparse mixture of experts as
           the MLP: 8 experts of moe_intermediate_size 32, 2 per token, the router's top weights renormalised
           (norm_topk_prob, as the Qwen3-MoE checkpoints set it); layer 1 of 3 is dense (mlp_only_layers [1],
           intermediate_size 176). Saved as transformers writes it, one tensor per expert and projection
           (mlp.experts.E.gate_proj.weight, ...), which is also the Hub checkpoints' layout; the gradients are named so
           (transformers 5 holds the experts fused, gate_up_proj [E, 2I, H] and down_proj [E, H, I]: split per
           expert here), and left out for experts that no token of row 2 chose (their gradient is zero; sppo's none).
           expected.safetensors also holds aux_loss, the load-balancing loss transformers computes over the batch
           (output_router_logits, the padding masked out), and aux_grad.<router>, its gradient in layer 0's router.
           The script checks that every token's top-2 router probabilities stand apart from the 3rd by a margin far
           above float32 rounding, so the routing cannot flip between implementations. Tokenizer: hf-tiny/qwen2's.
  mixtral/ MixtralForCausalLM (Mixtral 8x7B, 8x22B): Mistral's decoder with block_sparse_moe: 4 experts (w1 gate, w3 up,
           w2 down) of intermediate_size 48, 2 per token, always renormalised; no sliding window (Mixtral's). The
           same gradient naming and routing margin check as qwen3-moe. Tokenizer: hf-tiny/llama's.
  qwen3-rm/ Qwen3ForSequenceClassification (the layout of Skywork-Reward-V2-Qwen3 and other Qwen3 reward models):
           qwen3's backbone under model.*, a random score.weight [1, 64], pad_token_id 0; expected.safetensors holds
           input_ids (the three chat prompts followed by an answer, right-padded with the pad id, and one left-padded
           row) and "rewards" [4, 1], transformers' logits (pooled at each row's rightmost non-pad token).

Each model folder, as hf-tiny's README describes them (transformers 5.17, torch 2.13 CPU, float32, eager attention,
initializer_range 0.2, vocabulary of 512; the tokenizer and chat template of an hf-tiny folder, named above):
save_pretrained's files; expected.safetensors with input_ids / attention_mask / position_ids (the three chat
prompts of expected.json, left-padded), logits, token_logprobs, greedy_tokens (10 greedy steps, EOS forbidden),
seq_logprob_sum (row 2) and grad.<name> for layer 0's parameters; expected.json with messages, prompts,
prompt_ids, greedy_text and roundtrip.

Run with the local wheelhouse (pip install torch==2.13.0+cpu transformers==5.17.0):
  python scripts/hf-extra-fixtures.py [--check] [--hf-tiny ../shared/fixtures/hf-tiny] [--out test/fixtures/hf-extra]
(--check, a step of scripts/peft-interop.mjs: writes them again and compares, scripts/fixture_check.py)
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoTokenizer, Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, Gemma3TextConfig,
                          SiglipVisionConfig, Qwen3Config, Qwen3ForCausalLM,
                          Olmo2Config, Olmo2ForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen3ForSequenceClassification,
                          SmolLM3Config, SmolLM3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM, MixtralConfig, MixtralForCausalLM)

ROUNDTRIP = ["Hello world", "  two spaces", "line\nbreak", "Hi éè 😀 café", "1 2 3, reverse!"]


def instantiate(cls, cfg, seed: int, norm_center: float):
    """The model of `cfg` with random weights (seed), its norm weights drawn around norm_center (1, or 0 for Gemma's
    1 + w), so that a norm left out or misapplied shows in the logits; eager attention, as the expected outputs use."""
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(norm_center + 0.1 * torch.randn_like(p))
    return model


def build_qwen3() -> Qwen3ForCausalLM:
    cfg = Qwen3Config(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
        attention_bias=False, use_sliding_window=False, attn_implementation="eager",
    )
    return instantiate(Qwen3ForCausalLM, cfg, 0, 1)


def build_qwen3_moe() -> Qwen3MoeForCausalLM:
    cfg = Qwen3MoeConfig(
        vocab_size=512, hidden_size=64, intermediate_size=176, moe_intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, mlp_only_layers=[1], max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
        attn_implementation="eager",
    )
    return instantiate(Qwen3MoeForCausalLM, cfg, 7, 1)


def build_mixtral() -> MixtralForCausalLM:
    cfg = MixtralConfig(
        vocab_size=512, hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None, tie_word_embeddings=False, bos_token_id=1,
        eos_token_id=2, pad_token_id=0, initializer_range=0.2, attn_implementation="eager",
    )
    return instantiate(MixtralForCausalLM, cfg, 8, 1)


def expert_grads(model, name: str, grad: torch.Tensor) -> dict:
    """transformers 5's fused expert gradients ([E, 2I, H] gate_up_proj, [E, H, I] down_proj) as the checkpoint names
    each expert's (Qwen3-MoE's mlp.experts.E.gate_proj/up_proj/down_proj, Mixtral's block_sparse_moe.experts.E.w1/w3/w2);
    experts with an all-zero gradient (no token of the row chose them) left out. Other names as they are."""
    mixtral = model.config.model_type == "mixtral"
    if mixtral:
        name = name.replace(".mlp.", ".block_sparse_moe.")
    if not (name.endswith(".experts.gate_up_proj") or name.endswith(".experts.down_proj")):
        return {name: grad}
    gate, up, down = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    prefix = name.rsplit(".", 1)[0]
    out = {}
    for e in range(grad.shape[0]):
        if not grad[e].any():
            continue
        if name.endswith("gate_up_proj"):
            g, u = grad[e].chunk(2, dim=0)
            out[f"{prefix}.{e}.{gate}.weight"], out[f"{prefix}.{e}.{up}.weight"] = g, u
        else:
            out[f"{prefix}.{e}.{down}.weight"] = grad[e]
    return out


def routing_margin(model, **inputs) -> float:
    """The smallest gap, over every token of every sparse layer, between the k-th and (k+1)-th router probability."""
    gaps = []
    def hook(mod, args, out):
        p = torch.softmax(out[0].float(), -1).sort(-1, descending=True).values
        gaps.append((p[:, mod.top_k - 1] - p[:, mod.top_k]).min().item())
    hooks = [m.register_forward_hook(hook) for n, m in model.named_modules() if n.endswith("mlp.gate")]
    with torch.no_grad():
        model(**inputs)
    for h in hooks:
        h.remove()
    return min(gaps)


def build_gemma3() -> Gemma3ForCausalLM:
    cfg = Gemma3TextConfig(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=24, max_position_embeddings=128, rms_norm_eps=1e-6,
        sliding_window=6, sliding_window_pattern=2, rope_scaling={"rope_type": "linear", "factor": 8.0},
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
        attn_implementation="eager",
    )
    model = instantiate(Gemma3ForCausalLM, cfg, 1, 0)
    assert model.config.layer_types == ["sliding_attention", "full_attention", "sliding_attention"], model.config.layer_types
    return model


def build_gemma3_mm() -> Gemma3ForConditionalGeneration:
    text = build_gemma3().config.to_dict()
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision.to_dict(), mm_tokens_per_image=4, image_token_index=500,
                       boi_token_index=501, eoi_token_index=502, attn_implementation="eager")
    torch.manual_seed(6)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def trim_text_config(folder: str) -> None:
    """config.json's text_config without the fields equal to Gemma3TextConfig's defaults (as Google's configs give it)."""
    path = os.path.join(folder, "config.json")
    cfg = json.load(open(path))
    defaults = Gemma3TextConfig().to_dict()
    cfg["text_config"] = {k: v for k, v in cfg["text_config"].items() if k == "model_type" or defaults.get(k, object()) != v}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def build_smollm3() -> SmolLM3ForCausalLM:
    cfg = SmolLM3Config(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=2000000.0,
        no_rope_layer_interval=2, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        initializer_range=0.2, attn_implementation="eager",
    )
    model = instantiate(SmolLM3ForCausalLM, cfg, 3, 1)
    assert model.config.no_rope_layers == [1, 0, 1, 0], model.config.no_rope_layers
    return model


def build_olmo2() -> Olmo2ForCausalLM:
    cfg = Olmo2Config(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=500000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
        attn_implementation="eager",
    )
    return instantiate(Olmo2ForCausalLM, cfg, 4, 1)


def build_phi3(original_max: int) -> Phi3ForCausalLM:
    g = torch.Generator().manual_seed(5)
    half = int(16 * 0.75) // 2
    cfg = Phi3Config(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, original_max_position_embeddings=original_max, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                         "short_factor": [round(1 + float(x), 4) for x in torch.rand(half, generator=g)],
                         "long_factor": [round(2 + 6 * float(x), 4) for x in torch.rand(half, generator=g)]},
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
        attn_implementation="eager",
    )
    return instantiate(Phi3ForCausalLM, cfg, 5, 1)


def write_reward_model(out_root: str) -> None:
    """qwen3-rm/: the qwen3 fixture's backbone as Qwen3ForSequenceClassification, with transformers' rewards."""
    src = os.path.join(out_root, "qwen3")
    out = os.path.join(out_root, "qwen3-rm")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(2)
    rm = Qwen3ForSequenceClassification.from_pretrained(src, num_labels=1, attn_implementation="eager").eval()
    with torch.no_grad():
        rm.score.weight.copy_(0.3 * torch.randn_like(rm.score.weight))
    rm.save_pretrained(out)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copyfile(os.path.join(src, f), os.path.join(out, f))
    tok = AutoTokenizer.from_pretrained(out)
    expected = json.load(open(os.path.join(src, "expected.json")))
    rows = [ids + tok(" An answer.", add_special_tokens=False)["input_ids"] for ids in expected["prompt_ids"]]
    rows.append([0, 0, 0] + rows[0][:20])  # left padding: pooled at its last token all the same
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        rewards = rm(input_ids=input_ids).logits
    save_file({"input_ids": input_ids.contiguous(), "rewards": rewards.contiguous()}, os.path.join(out, "expected.safetensors"))
    print(f"{out}: {sorted(os.listdir(out))}")


def write(name: str, model, hf_tiny: str, out_root: str, tokenizer_from: str, rename=lambda n: n, after_save=None) -> None:
    src = os.path.join(hf_tiny, tokenizer_from)
    out = os.path.join(out_root, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    model.save_pretrained(out)
    if after_save:
        after_save(out)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copyfile(os.path.join(src, f), os.path.join(out, f))
    tok = AutoTokenizer.from_pretrained(out)
    messages = json.load(open(os.path.join(src, "expected.json")))["messages"]
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(p) for p in prompt_ids)
    pad = model.config.get_text_config().pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)

    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    lp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, input_ids[:, 1:, None])[..., 0] * attention_mask[:, 1:]
    seq = lp[2].sum()
    model.zero_grad()
    seq.backward()
    grads = {f"grad.{k}": v.detach().clone() for n, p in model.named_parameters() if rename(n).startswith("model.layers.0.") and p.grad is not None
             for k, v in expert_grads(model, rename(n), p.grad).items()}
    if getattr(model.config, "num_experts_per_tok", None):
        margin = routing_margin(model, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        assert margin > 1e-4, f"{name}: a token's router probabilities tie within {margin}: pick another seed"
        print(f"{name}: smallest routing margin {margin:.2e}")
        # The load-balancing loss transformers adds (output_router_logits), over the padded batch with its mask, and its
        # gradient in layer 0's router.
        model.zero_grad()
        aux = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_router_logits=True).aux_loss
        aux.backward()
        router = next(n for n, _ in model.named_parameters() if n.startswith("model.layers.0.") and n.endswith("gate.weight"))
        grads["aux_loss"] = aux.detach().reshape(1)
        (router_name, router_grad), = expert_grads(model, router, dict(model.named_parameters())[router].grad.detach().clone()).items()
        grads[f"aux_grad.{router_name}"] = router_grad
    with torch.no_grad():
        gen = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=10, min_new_tokens=10, pad_token_id=pad)
    greedy = gen[:, width:]
    tensors = {
        "input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
        "logits": logits.detach(), "token_logprobs": lp.detach(), "greedy_tokens": greedy,
        "seq_logprob_sum": seq.detach().reshape(1), **grads,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"))
    roundtrip = {}
    for text in ROUNDTRIP:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        roundtrip[text] = {"ids": ids, "decoded": tok.decode(ids)}
    expected = {
        "messages": messages, "prompts": prompts, "prompt_ids": prompt_ids,
        "greedy_text": tok.batch_decode(greedy, skip_special_tokens=True), "roundtrip": roundtrip,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
    }
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{out}: {sorted(os.listdir(out))}")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-tiny", default=os.path.join(here, "..", "..", "shared", "fixtures", "hf-tiny"))
    ap.add_argument("--out", default=os.path.join(here, "..", "test", "fixtures", "hf-extra"))
    ap.add_argument("--check", action="store_true", help="write to a temp folder and compare with the committed fixtures")
    a = ap.parse_args()
    committed = a.out
    if a.check:
        a.out = tempfile.mkdtemp()
    torch.set_num_threads(1)
    torch.set_grad_enabled(True)
    write("qwen3", build_qwen3(), a.hf_tiny, a.out, "qwen2")
    write("gemma3", build_gemma3(), a.hf_tiny, a.out, "gemma2")
    write("gemma3-mm", build_gemma3_mm(), a.hf_tiny, a.out, "gemma2", rename=lambda n: n.replace("model.language_model.", "model."), after_save=trim_text_config)
    write("smollm3", build_smollm3(), a.hf_tiny, a.out, "llama")
    write("olmo2", build_olmo2(), a.hf_tiny, a.out, "llama")
    write("qwen3-moe", build_qwen3_moe(), a.hf_tiny, a.out, "qwen2")
    write("mixtral", build_mixtral(), a.hf_tiny, a.out, "llama")
    write("phi3", build_phi3(64), a.hf_tiny, a.out, "llama")
    write("phi3-long", build_phi3(40), a.hf_tiny, a.out, "llama")
    write_reward_model(a.out)
    if a.check:
        sys.path.insert(0, here)
        from fixture_check import compare
        bad = compare(a.out, committed)
        shutil.rmtree(a.out)
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
