// GPU figures (scripts/gpu-check.sh runs this on the GPU machine, beside HF transformers'
// hf_baseline.py): bf16 matmul against PyTorch, and for a SmolLM2-135M-shaped Llama with random
// weights in bf16: sampling throughput (batch 64, 64-token prompts, 128 new tokens, temperature 0.7,
// top-p 0.9) and an SPPO-like training step (16 x 512 tokens, AdamW), as hf_baseline.py measures.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { matmulGflops } from './engine.js';
import { parseConfig } from '../src/models/config.js';
import { createModel } from '../src/models/registry.js';
import { generateTensors } from '../src/generate/generate.js';

const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const out: Record<string, unknown> = { libtorch: torch.libtorchVersion() };
const save = (path: string | undefined) => path && writeFileSync(path, JSON.stringify(out, null, 2));

// SPPO_BENCH_DRYRUN=1 runs the same code small, on the CPU, to check it before spending GPU time.
const dry = process.env.SPPO_BENCH_DRYRUN === '1';
const dev = dry ? 'cpu' : 'cuda';
const sync = (): void => {
  if (!dry) torch.cuda.synchronize();
};

function smollm135(): ReturnType<typeof createModel> {
  const cfg = parseConfig({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536,
    num_hidden_layers: dry ? 2 : 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152,
    max_position_embeddings: 2048, tie_word_embeddings: true, rms_norm_eps: 1e-5,
  });
  const m = createModel(cfg);
  m.initWeights({ std: 0.02, seed: 0, dtype: dry ? 'float32' : 'bfloat16', device: dev });
  return m;
}

async function main(): Promise<void> {
  const path = process.argv[2];
  // bf16 matmul, ours and PyTorch's
  const size = dry ? 256 : 8192;
  out.bf16_matmul_tflops = matmulGflops(size, dev, dry ? 'float32' : 'bfloat16') / 1000;
  const r = spawnSync(dry ? '/usr/bin/python3' : 'python3', [new URL('../../bench/peer_engine.py', import.meta.url).pathname, String(size), dev, dry ? 'float32' : 'bfloat16'], { encoding: 'utf8' });
  if (r.status === 0) out.pytorch_bf16_matmul_tflops = JSON.parse(r.stdout.trim().split('\n').pop()!).matmul_gflops[String(size)] / 1000;
  else out.pytorch_peer_error = r.stderr.slice(-500);
  console.log('bf16 matmul 8192^3 TFLOP/s: sppo', out.bf16_matmul_tflops, 'PyTorch', out.pytorch_bf16_matmul_tflops);
  save(path);

  const model = smollm135();
  out.params = model.numParameters();
  const B = dry ? 4 : 64, P = dry ? 8 : 64, N = dry ? 8 : 128;
  const g = new torch.Generator(0, dev);
  const ids = torch.keep(torch.randint(0, 49152, [B, P], { generator: g, device: dev }));
  const mask = torch.keep(torch.ones([B, P], { dtype: 'int64', device: dev }));
  const gen = (n: number) => torch.tidy(() => { generateTensors(model, ids, mask.clone(), { maxNewTokens: n, minNewTokens: n, temperature: 0.7, topP: 0.9, seed: 1 }); });
  gen(8);
  sync();
  let t = now();
  gen(N);
  sync();
  out.gen_tok_s = (B * N) / (now() - t);
  console.log('generation tokens/s', out.gen_tok_s);
  save(path);

  // training step: forward + backward + AdamW over 16 x 512 tokens
  const opt = torch.AdamW(model.parameters(), { lr: 5e-7 });
  for (const p of model.parameters()) p.requiresGrad_(true);
  const x = torch.keep(torch.randint(0, 49152, dry ? [2, 16] : [16, 512], { generator: g, device: dev }));
  const step = () => torch.tidy(() => {
    const lp = model.tokenLogprobs({ inputIds: x }).sum(1);
    lp.sub(1).square().mean().backward();
    opt.step();
    opt.zeroGrad();
  });
  step();
  sync();
  t = now();
  for (let i = 0; i < 5; i++) step();
  sync();
  out.train_tok_s = (5 * x.numel) / (now() - t);
  console.log('training tokens/s', out.train_tok_s);
  save(path);
}

await main();
