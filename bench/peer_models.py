# The PyTorch peer of bench/models.ts: the same Llama (loaded from the safetensors folder sppo wrote),
# as a plain PyTorch module, timed on (1) batched sampling with a preallocated KV cache and (2) a
# training step (forward, backward, AdamW). Prints one JSON object.
#   python3 bench/peer_models.py MODEL_DIR '{"task": "generate", ...}'
import json
import math
import struct
import sys
import time

import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    dtypes = {'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16, 'I64': torch.int64}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        buf = bytearray(data[8 + n + b: 8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=dtypes[e['dtype']]).reshape(e['shape']).clone()
    return out


class Llama(torch.nn.Module):
    def __init__(self, cfg, w, dtype, device):
        super().__init__()
        self.cfg = cfg
        self.nh = cfg['num_attention_heads']
        self.nkv = cfg['num_key_value_heads']
        self.hd = cfg.get('head_dim') or cfg['hidden_size'] // self.nh
        self.eps = cfg['rms_norm_eps']
        self.L = cfg['num_hidden_layers']
        self.p = torch.nn.ParameterDict({k.replace('.', '__'): torch.nn.Parameter(v.to(device=device, dtype=dtype)) for k, v in w.items()})
        theta = cfg.get('rope_theta') or cfg['rope_parameters']['rope_theta']
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float().to(device) / self.hd))

    def w(self, name):
        return self.p[name.replace('.', '__')]

    def norm(self, x, name):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.w(name) * xf.to(x.dtype)

    def forward(self, ids, pos, mask, cache=None, past=0):
        B, T = ids.shape
        x = F.embedding(ids, self.w('model.embed_tokens.weight'))
        freqs = pos.float()[:, :, None] * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos().to(x.dtype)[:, None], emb.sin().to(x.dtype)[:, None]

        def rot(t):
            h = t.shape[-1] // 2
            return t * cos + torch.cat([-t[..., h:], t[..., :h]], -1) * sin

        for i in range(self.L):
            pre = f'model.layers.{i}.'
            h = self.norm(x, pre + 'input_layernorm.weight')
            q = F.linear(h, self.w(pre + 'self_attn.q_proj.weight')).view(B, T, self.nh, self.hd).transpose(1, 2)
            k = F.linear(h, self.w(pre + 'self_attn.k_proj.weight')).view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = F.linear(h, self.w(pre + 'self_attn.v_proj.weight')).view(B, T, self.nkv, self.hd).transpose(1, 2)
            q, k = rot(q), rot(k)
            if cache is not None:
                kc, vc = cache[i]
                kc[:, :, past:past + T] = k
                vc[:, :, past:past + T] = v
                k, v = kc[:, :, :past + T], vc[:, :, :past + T]
            rep = self.nh // self.nkv
            if rep > 1:
                k = k[:, :, None].expand(B, self.nkv, rep, k.shape[2], self.hd).reshape(B, self.nh, k.shape[2], self.hd)
                v = v[:, :, None].expand(B, self.nkv, rep, v.shape[2], self.hd).reshape(B, self.nh, v.shape[2], self.hd)
            att = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(self.hd)) + mask
            att = att.softmax(-1) if att.dtype == torch.float32 else att.softmax(-1, dtype=torch.float32).to(q.dtype)
            y = (att @ v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
            x = x + F.linear(y, self.w(pre + 'self_attn.o_proj.weight'))
            h = self.norm(x, pre + 'post_attention_layernorm.weight')
            g = F.silu(F.linear(h, self.w(pre + 'mlp.gate_proj.weight'))) * F.linear(h, self.w(pre + 'mlp.up_proj.weight'))
            x = x + F.linear(g, self.w(pre + 'mlp.down_proj.weight'))
        return self.norm(x, 'model.norm.weight')

    def logits(self, h):
        return F.linear(h, self.w('lm_head.weight'))


def causal_mask(attn, T, past, dtype, device):
    q = torch.arange(past, past + T, device=device)[:, None]
    k = torch.arange(0, past + T, device=device)[None, :]
    ok = (k <= q)[None, None] & (attn[:, None, None, :past + T] != 0)
    return torch.zeros(ok.shape, dtype=dtype, device=device).masked_fill(~ok, torch.finfo(dtype).min)


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def bench_generate(m, o, dtype, device):
    B, P, N = o['batch'], o['prompt_len'], o['new_tokens']
    g = torch.Generator(device=device)
    g.manual_seed(0)
    ids = torch.randint(3, m.cfg['vocab_size'], (B, P), generator=g, device=device)
    cache = [(torch.empty(B, m.nkv, P + N, m.hd, dtype=dtype, device=device), torch.empty(B, m.nkv, P + N, m.hd, dtype=dtype, device=device)) for _ in range(m.L)]
    attn = torch.ones(B, P + N, dtype=torch.int64, device=device)
    times = []
    for rep in range(o['repeats'] + 1):
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            pos = torch.arange(P, device=device)[None].expand(B, P)
            h = m(ids, pos, causal_mask(attn, P, 0, dtype, device), cache, 0)
            logits = m.logits(h[:, -1])
            out = []
            for t in range(N):
                lf = logits.float()
                logp = lf.log_softmax(-1)
                tok = torch.multinomial(lf.softmax(-1), 1, generator=g)
                out.append(tok)
                lp = logp.gather(1, tok)
                if t == N - 1:
                    break
                pos = torch.full((B, 1), P + t, device=device)
                h = m(tok, pos, causal_mask(attn, 1, P + t, dtype, device), cache, P + t)
                logits = m.logits(h[:, -1])
            toks = torch.cat(out, 1).cpu()
        sync(device)
        if rep > 0:
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {'tokens_per_s': B * N / best, 'seconds': best}


def bench_train(m, o, dtype, device):
    B, T = o['batch'], o['seq_len']
    g = torch.Generator(device=device)
    g.manual_seed(0)
    ids = torch.randint(3, m.cfg['vocab_size'], (B, T), generator=g, device=device)
    attn = torch.ones(B, T, dtype=torch.int64, device=device)
    pos = torch.arange(T, device=device)[None].expand(B, T)
    mask = causal_mask(attn, T, 0, dtype, device)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    times = []
    for rep in range(o['repeats'] + 1):
        sync(device)
        t0 = time.perf_counter()
        h = m(ids, pos, mask)
        logits = m.logits(h[:, :-1]).float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if rep > 0:
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {'seconds': best, 'tokens_per_s': B * T / best, 'loss': loss.item()}


def main():
    d = sys.argv[1]
    o = json.loads(sys.argv[2])
    if o.get('threads'):
        torch.set_num_threads(o['threads'])
    cfg = json.load(open(f'{d}/config.json'))
    dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[o.get('dtype', 'float32')]
    device = o.get('device', 'cpu')
    m = Llama(cfg, load_safetensors(f'{d}/model.safetensors'), dtype, device)
    r = bench_generate(m, o, dtype, device) if o['task'] == 'generate' else bench_train(m, o, dtype, device)
    r['torch'] = torch.__version__
    r['threads'] = torch.get_num_threads()
    print(json.dumps(r))


if __name__ == '__main__':
    main()
