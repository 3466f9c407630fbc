# The transformers peer of `npm run bench -- --gpu` (bench/gpu.ts) for the shapes ../shared/device/hf_baseline.py
# does not measure (batch 256; a Qwen2.5-1.5B-shaped model): written the way transformers users write it. Random
# weights in bfloat16 on the GPU; generation is model.generate(do_sample=True, temperature, top_p) with
# min_new_tokens = max_new_tokens (every sequence generates them all, as sppo's side); training is an SPPO-like
# step over 16 x 512 tokens (summed log-probs, a squared loss, backward, AdamW), as hf_baseline.py's.
#   python3 bench/peer_gpu.py SPEC.json OUT.json
# SPEC.json: [{"name", "arch": "llama"|"qwen2", "config": {...}, "gen": [{"batch", "prompt", "new"}], "train": bool}]
# Results go to OUT.json after every measurement (a timeout keeps what was measured).
import json
import sys
import time

import torch

spec = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
try:
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    res["transformers"] = transformers.__version__
except ImportError as e:  # the CPU machine's python3-torch has no transformers
    res["error"] = f"no transformers: {e}"
    json.dump(res, open(out_path, "w"), indent=2)
    print(json.dumps(res))
    sys.exit(0)


def save():
    json.dump(res, open(out_path, "w"), indent=2)


ARCH = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
torch.manual_seed(0)
for s in spec:
    Config, Model = ARCH[s["arch"]]
    c = Config(**s["config"])
    # Built on the GPU in bfloat16 directly (a 1.5B model initialised in float32 on the CPU takes minutes).
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = Model(c)
    torch.set_default_dtype(torch.float32)
    m.eval()
    r = res.setdefault(s["name"], {"params": sum(p.numel() for p in m.parameters())})
    for g in s.get("gen", []):
        B, P, N = g["batch"], g["prompt"], g["new"]
        ids = torch.randint(0, c.vocab_size, (B, P), device="cuda")
        m.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=True, temperature=0.7, top_p=0.9)
        torch.cuda.synchronize()
        t = time.perf_counter()
        m.generate(ids, max_new_tokens=N, min_new_tokens=N, do_sample=True, temperature=0.7, top_p=0.9)
        torch.cuda.synchronize()
        r[f"gen_b{B}_tok_s"] = B * N / (time.perf_counter() - t)
        print(s["name"], f"batch {B}", round(r[f"gen_b{B}_tok_s"]), "tok/s", flush=True)
        save()
    if s.get("train"):
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=5e-7)
        x = torch.randint(0, c.vocab_size, (16, 512), device="cuda")

        def step():
            logits = m(x).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1).sum(-1)
            loss = ((lp - 1.0) ** 2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()

        step()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        r["train_tok_s"] = 3 * 16 * 512 / (time.perf_counter() - t)
        print(s["name"], "train", round(r["train_tok_s"]), "tok/s", flush=True)
        save()
        del opt
    del m
    torch.cuda.empty_cache()
save()
print(json.dumps(res))
