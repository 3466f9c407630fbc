// `npm run bench -- serve` (or node dist/bench/serve.js): served throughput and latency of `sppo serve`
// with 1, 8, 16, 32 concurrent clients, against in-process `generate` on the same prompts in batches of
// the same size. The model is the bench's ~10.5M-parameter Llama (random weights, with the demo's
// character tokenizer written beside it); every request is one prompt of 32 token ids, 64 new tokens
// (ignore_eos), temperature 1; max(16, 4 x clients) requests per run, in rounds that alternate the two sides. The server is a real `sppo serve` process on 127.0.0.1, the clients plain
// fetch loops in this process (each sends its next request when the last one is answered).
//   node dist/bench/serve.js [--clients 1,8,16,32] [--new-tokens 64] [--rounds 3] [--device cpu] [--gather-ms MS]
import { startServers, type RunningServers } from '../src/generate/server_process.js';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultDevice, getNumThreads, randint, tidy } from '../src/torch/index.js';
import { loadModel } from '../src/models/index.js';
import { generate } from '../src/generate/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { writeTokenizerFolder } from '../src/demo/tokenizer.js';
import { writeBenchModel } from './models.js';
import { median, arg, numArg } from './stats.js';

export interface ServeBenchOptions {
  clients?: number[];
  prompts?: number;
  promptLen?: number;
  newTokens?: number;
  device?: string;
  /** Rounds per client count, alternating in-process and served (default 3; medians reported). */
  rounds?: number;
  /** The server's --gather-ms (default: its default). */
  gatherMs?: number;
}

interface Row {
  clients: number;
  servedTps: number;
  inProcessTps: number;
  p50: number;
  p99: number;
  inProcessBatchSecs: number;
  /** Fraction of the served run's wall time the engine spent in steps. */
  busy: number;
  /** Decode steps and prefills of the served runs (medians), against in-process: tokens / c and requests / c. */
  steps: number;
  admissions: number;
  servedRuns: number[];
  inProcessRuns: number[];
}

const bin = fileURLToPath(new URL('../../bin/sppo.js', import.meta.url));

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** One `sppo serve` process on the bench model (src/generate/server_process.ts starts it and waits for it). */
function startServer(dir: string, device: string, gatherMs?: number): Promise<RunningServers> {
  const gather = gatherMs === undefined ? '' : ` --gather-ms ${gatherMs}`;
  return startServers(`exec ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} serve {checkpoint} --port {port} --served-model-name bench --device ${device} --max-batch 64 --max-queue 1024${gather}`, dir, { startTimeoutS: 120 });
}

async function complete(url: string, prompt: number[], newTokens: number): Promise<number> {
  const res = await fetchOnce(`${url}/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'bench', prompt, max_tokens: newTokens, temperature: 1, ignore_eos: true }),
  });
  const body = (await res.json()) as { usage?: { completion_tokens: number }; error?: { message: string } };
  if (res.status !== 200 || !body.usage) throw new Error(`bench: HTTP ${res.status}: ${body.error?.message}`);
  return body.usage.completion_tokens;
}

// The in-process runs block this process's event loop for seconds, so that fetch's idle keep-alive
// connections can outlive the server's keep-alive timeout: a request that finds its connection closed is
// sent again once, on a new one.
async function fetchOnce(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch {
    return await fetch(url, init);
  }
}

/** The engine's counters from /metrics: busy seconds, decode steps, prefills. */
async function counters(url: string): Promise<{ busy: number; steps: number; admissions: number }> {
  const text = await (await fetchOnce(url.replace(/\/v1$/, '/metrics'))).text();
  const get = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { busy: get('sppo_engine_busy_seconds_total'), steps: get('sppo_decode_steps_total'), admissions: get('sppo_admissions_total') };
}

/** C clients, each taking the next prompt when its last request is answered; all prompts once. */
async function served(url: string, prompts: number[][], clients: number, newTokens: number): Promise<{ tps: number; latencies: number[]; busy: number; steps: number; admissions: number }> {
  const c0 = await counters(url);
  let next = 0;
  let tokens = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < prompts.length) {
      const i = next++;
      const s = performance.now();
      const got = await complete(url, prompts[i]!, newTokens);
      tokens += got;
      latencies.push((performance.now() - s) / 1000);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  if (tokens !== prompts.length * newTokens) throw new Error(`bench: ${tokens} tokens, expected ${prompts.length * newTokens}`);
  const c1 = await counters(url);
  return { tps: tokens / secs, latencies, busy: (c1.busy - c0.busy) / secs, steps: c1.steps - c0.steps, admissions: c1.admissions - c0.admissions };
}

export async function run(o: ServeBenchOptions = {}): Promise<Row[]> {
  const clientCounts = o.clients ?? [1, 8, 16, 32];
  const nPrompts = Math.max(o.prompts ?? 0, 16, 4 * Math.max(...(o.clients ?? [32])));
  const promptLen = o.promptLen ?? 32;
  const newTokens = o.newTokens ?? 64;
  const device = o.device ?? defaultDevice();
  const rounds = o.rounds ?? 3;
  const dir = writeBenchModel();
  writeTokenizerFolder(dir, { eos_token_id: 2 });
  const rows: Row[] = [];
  try {
    const model = loadModel(dir, { device });
    const tokenizer = Tokenizer.fromFolder(dir);
    const prompts = tidy(() => randint(3, model.config.vocabSize, [nPrompts, promptLen]).toArray() as number[][]);
    const server = await startServer(dir, device, o.gatherMs);
    const url = server.urls[0]!;
    try {
      // Warm-up of both sides.
      generate(model, prompts.slice(0, 8), { maxNewTokens: 8, eosTokenIds: [], tokenizer });
      await served(url, prompts.slice(0, 8), 8, 8);
      for (const c of clientCounts) {
        // max(16, 4c) prompts per run, so that every client count runs several waves of requests.
        const ps = prompts.slice(0, Math.max(16, 4 * c));
        const tokens = ps.length * newTokens;
        const inProc: number[] = [];
        const servedTps: number[] = [];
        const latencies: number[] = [];
        const busy: number[] = [];
        const steps: number[] = [];
        const admissions: number[] = [];
        const batchSecs: number[] = [];
        // Rounds alternate the two sides, so that a slow spell of this (shared) machine falls on both.
        for (let round = 0; round < rounds; round++) {
          // In-process: the same prompts in batches of c, as `sppo generate --batch-size c` runs them.
          const t0 = performance.now();
          for (let s = 0; s < ps.length; s += c) {
            const b0 = performance.now();
            const gens = generate(model, ps.slice(s, s + c), { temperature: 1, maxNewTokens: newTokens, eosTokenIds: [], seed: s, tokenizer });
            if (gens.some((g) => g.tokens.length !== newTokens)) throw new Error('bench: a sequence stopped early');
            batchSecs.push((performance.now() - b0) / 1000);
          }
          inProc.push(tokens / ((performance.now() - t0) / 1000));
          const sv = await served(url, ps, c, newTokens);
          servedTps.push(sv.tps);
          latencies.push(...sv.latencies);
          busy.push(sv.busy);
          steps.push(sv.steps);
          admissions.push(sv.admissions);
        }
        const r: Row = {
          clients: c, servedTps: median(servedTps), inProcessTps: median(inProc), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99),
          inProcessBatchSecs: median(batchSecs), busy: median(busy), steps: median(steps), admissions: median(admissions), servedRuns: servedTps, inProcessRuns: inProc,
        };
        rows.push(r);
        console.log(`serve: ${String(c).padStart(2)} clients, ${ps.length} requests: served ${r.servedTps.toFixed(0)} tok/s (${servedTps.map((x) => x.toFixed(0)).join(', ')}), in-process ${r.inProcessTps.toFixed(0)} tok/s (${inProc.map((x) => x.toFixed(0)).join(', ')}): ${(r.servedTps / r.inProcessTps).toFixed(2)}x; latency p50 ${r.p50.toFixed(2)} s, p99 ${r.p99.toFixed(2)} s (in-process batch ${r.inProcessBatchSecs.toFixed(2)} s); engine busy ${(100 * r.busy).toFixed(0)}%, ${r.steps} steps and ${r.admissions} prefills (in-process ${Math.ceil(ps.length / c) * newTokens} and ${Math.ceil(ps.length / c)})`);
      }
    } finally {
      await server.stop();
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nserve: ~10.5M-parameter Llama, ${device}, ${getNumThreads()} threads a process; max(16, 4 x clients) requests of ${promptLen} prompt tokens and ${newTokens} new tokens; medians of ${rounds} rounds`);
  console.log('| clients | served tok/s | in-process generate tok/s | served / in-process | latency p50 | latency p99 |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.clients} | ${r.servedTps.toFixed(0)} | ${r.inProcessTps.toFixed(0)} | ${(r.servedTps / r.inProcessTps).toFixed(2)}x | ${r.p50.toFixed(2)} s | ${r.p99.toFixed(2)} s |`);
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await run({ clients: arg('--clients')?.split(',').map(Number), prompts: numArg('--prompts'), newTokens: numArg('--new-tokens'), device: arg('--device'), rounds: numArg('--rounds'), gatherMs: numArg('--gather-ms') });
}
