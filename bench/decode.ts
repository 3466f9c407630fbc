// The two decoding loops of generate side by side on one device: the op-by-op loop (graph: 'off') and the
// static step (graph: 'on': on the CPU run eagerly, on a GPU captured once as a CUDA graph and replayed),
// same model, prompts and seed, alternated in rounds so that a slow spell of a shared machine falls on both.
// Checks that both give the same tokens, then prints decoded tokens per second and the ratio.
//   node dist/bench/decode.js [--device cpu|cuda] [--dtype float32|bfloat16] [--batch 8] [--prompt 32] [--new 64] [--rounds 5] [--layers 8]
import { cuda, randint, tidy, type DType } from '../src/torch/index.js';
import { createModel, parseConfig } from '../src/models/index.js';
import { generate, type GraphMode } from '../src/generate/index.js';
import { benchLlamaConfig } from './models.js';
import { arg, header, numArg, row } from './stats.js';

const device = arg('--device') ?? 'cpu';
const batch = numArg('--batch') ?? 8;
const promptLen = numArg('--prompt') ?? 32;
const maxNew = numArg('--new') ?? 64;
const rounds = numArg('--rounds') ?? 5;
const layers = numArg('--layers') ?? 8;
const dtype = (arg('--dtype') ?? 'float32') as DType;

const model = createModel(parseConfig({ ...benchLlamaConfig(), num_hidden_layers: layers }));
model.initWeights({ std: 0.02, seed: 0, device, dtype });
const vocab = model.config.vocabSize;
const prompts = tidy(() => randint(3, vocab, [batch, promptLen], { device: 'cpu' }).toArray() as number[][]);
const opts = { temperature: 0.7, topP: 0.9, maxNewTokens: maxNew, seed: 1, eosTokenIds: [] as number[] };
const sync = (): void => {
  if (device.startsWith('cuda')) cuda.synchronize();
};

/** Wall seconds, and the process's CPU seconds (all libtorch threads): on a shared machine the CPU time
 * per token is the steadier comparison of two CPU loops, as other processes' load stretches wall time. */
function timed(graph: GraphMode): { seconds: number; cpuSeconds: number; tokens: number[][] } {
  sync();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const gens = generate(model, prompts, { ...opts, graph });
  sync();
  const c = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (c.user + c.system) / 1e6, tokens: gens.map((g) => g.tokens) };
}

// Warm-up (and, on a GPU, the graph's capture), then the check that both loops agree.
const a0 = timed('off');
const b0 = timed('on');
const same = JSON.stringify(a0.tokens) === JSON.stringify(b0.tokens);
const loop: number[] = [];
const stat: number[] = [];
const loopCpu: number[] = [];
const statCpu: number[] = [];
for (let r = 0; r < rounds; r++) {
  const a = timed('off');
  const b = timed('on');
  loop.push((batch * maxNew) / a.seconds);
  stat.push((batch * maxNew) / b.seconds);
  loopCpu.push((batch * maxNew) / a.cpuSeconds);
  statCpu.push((batch * maxNew) / b.cpuSeconds);
}
console.log(`# decode loops on ${device} (${dtype}): Llama ${layers} x 256, vocab ${vocab}, batch ${batch}, prompt ${promptLen}, ${maxNew} new tokens, temperature 0.7 top-p 0.9; ${rounds} rounds`);
console.log(`# same tokens from both loops: ${same}`);
console.log(header().replace('sppo: median', 'static: median').replace('PyTorch: median', 'op-by-op: median').replace('sppo/PyTorch', 'static/op-by-op'));
console.log(row('generated tokens/s', stat, loop, 'tok/s', 'higher', 1));
if (!device.startsWith('cuda')) console.log(row('generated tokens per CPU-second', statCpu, loopCpu, 'tok/cpu-s', 'higher', 1));
model.dispose();
if (!same) process.exit(1);
