// `npm run bench -- ddp`: data-parallel training throughput, 2 ranks (Gloo over 127.0.0.1, one intra-op thread
// each) against 1 process (two intra-op threads) on the same machine, the same model (the bench's ~10.5M-
// parameter Llama, random weights; the single process also with one thread), the same global batch (16 pairs per optimizer step: batchSize 4 x gradAccum
// 4) and the same steps (SPPO loss, RMSprop, reference log-probs given). Each figure is the median of the
// steps after the first two (warm-up), with the spread (min-max); ranks are processes started here with
// torchrun's variables, as `sppo run --nproc 2` starts them.
//   node dist/bench/ddp.js [--nproc 2] [--steps 6]
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { train, type TrainExample } from '../src/sppo/trainer.js';
import { createRng } from '../src/util/rng.js';
import { writeBenchModel } from './models.js';
import { stats } from './stats.js';

const self = fileURLToPath(import.meta.url);
const PAIRS_PER_STEP = 16;

function examples(n: number): TrainExample[] {
  const rng = createRng(11);
  const ids = (k: number): number[] => Array.from({ length: k }, () => 3 + rng.int(8000));
  return Array.from({ length: n }, () => ({
    promptIds: ids(32), chosenIds: ids(48), rejectedIds: ids(48),
    chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8,
    chosenRefLogprob: -400, rejectedRefLogprob: -400,
  }));
}

/** One rank (or the single process): trains and prints the seconds of each optimizer step (rank 0). */
async function worker(dir: string, steps: number): Promise<void> {
  const pg = torch.distEnv() ? await torch.initProcessGroup({ backend: 'gloo', timeoutMs: 600_000 }) : undefined;
  const times: number[] = [];
  let last = performance.now();
  const r = await train({
    policy: dir, examples: examples(PAIRS_PER_STEP * steps), loss: 'sppo', beta: 0.1, lr: 1e-4, epochs: 1, batchSize: 4, gradAccum: 4,
    optimizer: 'rmsprop', warmupRatio: 0, schedule: 'constant', maxLength: 128, maxPromptLength: 64, maxGradNorm: 1,
    dtype: 'float32', device: 'cpu', seed: 0, processGroup: pg,
    onStep: () => {
      const now = performance.now();
      times.push((now - last) / 1000);
      last = now;
    },
  });
  r.model.dispose();
  if (!pg || pg.rank === 0) console.log(JSON.stringify({ times, threads: torch.getNumThreads() }));
  if (pg) {
    await pg.barrier();
    pg.destroy();
  }
}

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

async function measure(dir: string, nproc: number, threads: number, steps: number): Promise<{ times: number[]; threads: number }> {
  const port = await freePort();
  const outs = await Promise.all(Array.from({ length: nproc }, (_, rank) => new Promise<string>((res, rej) => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
    if (nproc > 1) Object.assign(env, { RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    const p = spawn(process.execPath, [self, 'worker', dir, String(steps)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`rank ${rank} exited ${code}`))));
  })));
  return JSON.parse(outs[0]!.trim()) as { times: number[]; threads: number };
}

export async function run(nproc = 2, steps = 6): Promise<void> {
  const dir = writeBenchModel();
  try {
    const cores = os.availableParallelism?.() ?? os.cpus().length;
    console.log(`data parallel: ~10.5M Llama, ${PAIRS_PER_STEP} pairs per step (2 x (32 + 48) tokens each), ${steps} steps, ${cores} cores`);
    console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    // One process with 1 thread and with all the cores' threads, and nproc ranks sharing the cores.
    const per = Math.max(1, Math.floor(cores / nproc));
    const configs: [number, number][] = [[1, 1], [1, cores], [nproc, per]];
    const pps: number[] = [];
    for (const [n, threads] of configs) {
      const m = await measure(dir, n, threads, steps);
      const s = stats(m.times.slice(2));
      pps.push(PAIRS_PER_STEP / s.median);
      console.log(`${n} ${n > 1 ? 'ranks' : 'process'} x ${m.threads} thread(s): step ${s.median.toFixed(3)} s (${s.min.toFixed(3)}-${s.max.toFixed(3)}), ${pps.at(-1)!.toFixed(2)} pairs/s`);
    }
    console.log(`${nproc} ranks vs 1 process: ${(pps[2]! / pps[0]!).toFixed(2)}x of 1 thread, ${(pps[2]! / pps[1]!).toFixed(2)}x of ${cores} threads`);
    console.log(`load average after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'worker') {
  await worker(process.argv[3]!, Number(process.argv[4]));
} else if (process.argv[1] === self) {
  const arg = (name: string, d: number): number => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  await run(arg('--nproc', 2), arg('--steps', 6));
}
