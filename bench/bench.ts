// `npm run bench`: sppo side by side with plain PyTorch eager, measured in the same run on the same
// machine. Every figure is the median of timed repeats after warm-up, with its spread (min-max);
// ratios are of medians and are what to compare (these machines are noisy).
//   npm run bench [-- engine] [-- models] [-- hf]   (all three by default)
//   npm run bench -- hf [--shape small|qwen0.5b|both] [--threads 1,2]   sppo beside transformers' generate and TRL's
//                                              DPOTrainer step, at the small Llama's and Qwen2.5-0.5B's shape (bench/hf_peers.ts;
//                                              needs the wheelhouse, skipped with one line without it)
//   npm run bench -- profile                   sppo's training step per operator (libtorch's profiler)
//   npm run bench -- serve                     sppo serve's throughput and latency vs in-process generate
//   npm run bench -- pairrm [pairrm-large]     the PairRM judge's pairs/s (fixture; DeBERTa-v3-large shape)
//   npm run bench -- lora                      LoRA vs full fine-tuning: optimizer state, step time; memory of 7B-9B (computed)
//   npm run bench -- ddp                       data-parallel training: 2 ranks (Gloo) vs 1 process
//   npm run bench -- packing                   training on packed sequences vs right-padded batches
//   npm run bench -- tokenizer                 encoding/decoding with the real tokenizers vs transformers + tokenizers (Rust)
//   npm run bench -- --gpu                     the GPU figures, sppo and HF transformers side by side (bench/gpu.ts)
import * as torch from '../src/torch/index.js';
import { matmulGflopsRuns, opOverheadUsRuns } from './engine.js';
import { PYTHON, runPeer } from './peer.js';
import { header, row } from './stats.js';

interface EnginePeer {
  torch: string;
  threads: number;
  op_overhead_us_runs: number[];
  matmul_gflops_runs: Record<string, number[]>;
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  if (only.includes('--gpu')) {
    // The GPU figures beside transformers (bench/gpu.ts): every part, or those of --part a,b.
    const m = await import('./gpu.js');
    const i = only.indexOf('--part');
    await m.run(i >= 0 ? only[i + 1]!.split(',') : m.PARTS);
    return;
  }
  // The parts named (words not starting with --, and not the value of a --name value option).
  const flags = new Set(['--checkpointing']);
  const named = only.filter((a, i) => !a.startsWith('--') && !(i > 0 && only[i - 1]!.startsWith('--') && !flags.has(only[i - 1]!)));
  const want = (s: string) => (named.length === 0 && s !== 'profile') || named.includes(s);
  console.log(`sppo bench: libtorch ${torch.libtorchVersion()}, ${torch.getNumThreads()} threads; peer: ${PYTHON}`);
  if (want('engine')) {
    const sizes = [256, 1024, 2048];
    const p = runPeer<EnginePeer>('peer_engine.py', [sizes.join(','), 'cpu', 'float32', String(torch.getNumThreads())]);
    if (p) console.log(`PyTorch ${p.torch}, ${p.threads} threads`);
    console.log(header());
    console.log(row('tiny op call (add, 4 elements)', opOverheadUsRuns(), p?.op_overhead_us_runs ?? null, 'us', 'lower'));
    for (const s of sizes) console.log(row(`fp32 matmul ${s}x${s}`, matmulGflopsRuns(s), p?.matmul_gflops_runs[String(s)] ?? null, 'GFLOP/s', 'higher', 1));
  }
  if (want('models')) {
    const m = await import('./models.js');
    await m.run();
  }
  if (want('hf')) {
    const m = await import('./hf_peers.js');
    await m.run(m.optionsFromArgs());
  }
  if (only.includes('pairrm') || only.includes('pairrm-large')) {
    const m = await import('./pairrm.js');
    if (want('hf')) {
    const m = await import('./hf_peers.js');
    await m.run(m.optionsFromArgs());
  }
  if (only.includes('pairrm')) await m.run();
    if (only.includes('pairrm-large')) await m.run({ large: true });
  }
  if (only.includes('lora')) {
    const m = await import('./lora.js');
    await m.run();
  }
  if (only.includes('ddp')) {
    const m = await import('./ddp.js');
    await m.run();
  }
  if (only.includes('packing')) {
    const m = await import('./packing.js');
    await m.run();
  }
  if (only.includes('tokenizer')) {
    const m = await import('./tokenizer.js');
    await m.run();
  }
  if (only.includes('serve')) {
    const m = await import('./serve.js');
    await m.run();
  }
  if (want('profile')) {
    const m = await import('./models.js');
    console.log(m.profileTrainStep());
  }
}

await main();
