# The PyTorch peer of bench/models.ts: the same Llama written the way a PyTorch user writes one
# (nn.Module subclasses, nn.Linear / nn.Embedding parameters as attributes, F.cross_entropy on the
# logits, F.scaled_dot_product_attention where the torch has it, the eager composition otherwise),
# loaded from the safetensors folder sppo wrote, and timed on
#   (1) batched sampling with a preallocated KV cache, and
#   (2) a training step (forward, cross-entropy, backward, AdamW),
# each repeated after warm-up. Prints one JSON object with every timed repeat.
#   python3 bench/peer_models.py MODEL_DIR '{"task": "generate", ...}'
import json
import math
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    dtypes = {'F32': torch.float32, 'BF16': torch.bfloat16, 'F16': torch.float16, 'I64': torch.int64}
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        out[name] = torch.frombuffer(bytearray(data[8 + n + b: 8 + n + end]), dtype=dtypes[e['dtype']]).reshape(e['shape'])
    return out


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg['num_attention_heads']
        self.n_kv = cfg['num_key_value_heads']
        self.head_dim = cfg.get('head_dim') or cfg['hidden_size'] // self.n_heads
        d = cfg['hidden_size']
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin, mask, cache=None, past=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            kc, vc = cache
            kc[:, :, past:past + T] = k
            vc[:, :, past:past + T] = v
            k, v = kc[:, :, :past + T], vc[:, :, :past + T]
        if self.n_heads != self.n_kv:  # grouped-query attention: transformers' repeat_kv
            rep = self.n_heads // self.n_kv
            k = k[:, :, None].expand(B, self.n_kv, rep, k.size(2), self.head_dim).reshape(B, self.n_heads, k.size(2), self.head_dim)
            v = v[:, :, None].expand(B, self.n_kv, rep, v.size(2), self.head_dim).reshape(B, self.n_heads, v.size(2), self.head_dim)
        if hasattr(F, 'scaled_dot_product_attention'):
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            if mask is not None:
                att = att + mask
            elif T > 1:
                att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float('-inf'))
            y = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg['hidden_size'], cfg['intermediate_size']
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])

    def forward(self, x, cos, sin, mask, cache=None, past=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, past)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], cfg['hidden_size'])
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg['num_hidden_layers'])])
        self.norm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        hd = self.model.layers[0].self_attn.head_dim
        theta = cfg.get('rope_theta') or cfg['rope_parameters']['rope_theta']
        self.register_buffer('inv_freq', 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd)), persistent=False)

    def forward(self, ids, past=0, cache=None):
        B, T = ids.shape
        x = self.model.embed_tokens(ids)
        pos = torch.arange(past, past + T, device=ids.device).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, None, None if cache is None else cache[i], past)
        return self.lm_head(self.model.norm(x))


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, o, device):
    """Runs fn warmup + repeats times; returns the seconds of the timed repeats."""
    times = []
    for rep in range(o.get('warmup', 1) + o['repeats']):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if rep >= o.get('warmup', 1):
            times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def sample(m, ids, new_tokens, g):
    B, P = ids.shape
    attn = m.model.layers[0].self_attn
    cache = [(ids.new_empty(B, attn.n_kv, P + new_tokens, attn.head_dim, dtype=m.lm_head.weight.dtype),
              ids.new_empty(B, attn.n_kv, P + new_tokens, attn.head_dim, dtype=m.lm_head.weight.dtype)) for _ in m.model.layers]
    logits = m(ids, 0, cache)[:, -1]
    out = []
    for t in range(new_tokens):
        probs = F.softmax(logits.float(), dim=-1)
        tok = torch.multinomial(probs, 1, generator=g)
        out.append(tok)
        if t < new_tokens - 1:
            logits = m(tok, P + t, cache)[:, -1]
    return torch.cat(out, 1).cpu()


def main():
    d = sys.argv[1]
    o = json.loads(sys.argv[2])
    if o.get('threads'):
        torch.set_num_threads(o['threads'])
    cfg = json.load(open(f'{d}/config.json'))
    dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[o.get('dtype', 'float32')]
    device = o.get('device', 'cpu')
    m = Llama(cfg)
    m.load_state_dict(load_safetensors(f'{d}/model.safetensors'))
    m.to(device=device, dtype=dtype)
    g = torch.Generator(device=device)
    g.manual_seed(0)
    if o['task'] == 'generate':
        ids = torch.randint(3, cfg['vocab_size'], (o['batch'], o['prompt_len']), generator=g, device=device)
        times = timed(lambda: sample(m.eval(), ids, o['new_tokens'], g), o, device)
        r = {'seconds': times, 'tokens': o['batch'] * o['new_tokens']}
    else:
        ids = torch.randint(3, cfg['vocab_size'], (o['batch'], o['seq_len']), generator=g, device=device)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        m.train()

        def step():
            logits = m(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), ids[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        r = {'seconds': timed(step, o, device)}
    r['torch'] = torch.__version__
    r['threads'] = torch.get_num_threads()
    print(json.dumps(r))


if __name__ == '__main__':
    main()
