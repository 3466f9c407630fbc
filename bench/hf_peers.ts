// sppo beside what a user would pick instead, at a real model's shape, on the CPU (`npm run bench -- hf`, and in
// plain `npm run bench` where the wheelhouse is present):
//   generation:    sppo's generate (src/generate) vs transformers' model.generate (sampling, temperature 0.7,
//                  top-p 0.9, every sequence to full length), batch 8, 64-token prompts, 32 new tokens;
//   training step: sppo's trainer (src/sppo/trainer.ts: DPO and SPPO-hard losses, AdamW) vs TRL's DPOTrainer
//                  (loss_type 'sigmoid' / 'sppo_hard', adamw_torch), 2 pairs a step of a 38-token prompt and two
//                  32-token responses (70 tokens a sequence), the reference log-probs precomputed on both sides
//                  (not timed), no gradient checkpointing on either side (--checkpointing: on both), float32.
// Two shapes: the bench's small Llama (bench/models.ts) and a Qwen2.5-0.5B-shaped model (494M parameters), random
// weights written once by sppo as an HF folder that both sides load. Every measurement runs in its own process (so
// each side's peak RSS is its own: process.resourceUsage().maxRSS, getrusage's ru_maxrss), with the same thread
// count on both sides, in rounds alternating sppo and the peer (a slow spell of the machine falls on both); a
// figure is the median (min-max) of the timed calls or steps after warm-up. sppo runs with each libtorch build
// present: Debian's (build/native) and PyTorch 2.13's (the addon `node scripts/pytorch.mjs test` builds).
// The peers (bench/peer_hf.py) run in .venv/hf-peers: torch 2.13.0+cpu, transformers 5.17.0, TRL 1.13.0 from the
// wheelhouse (scripts/venv.mjs); where it cannot be made, the part prints one line and is skipped.
//   node dist/bench/hf_peers.js [--shape small|qwen0.5b|qwen3-moe|both] [--threads 1,2] [--builds debian,pytorch]
//     [--rounds 2] [--repeats 2] [--warmup 1] [--losses dpo,sppo_hard] [--parts generate,train] [--checkpointing]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getNumThreads, libtorchVersion, physicalCores, setNumThreads } from '../src/torch/index.js';
import { createModel, loadModel, parseConfig, saveModel } from '../src/models/index.js';
import { generate } from '../src/generate/index.js';
import { benchLlamaConfig } from './models.js';
import { arg, numArg, stats, type Stats } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const VENV = 'hf-peers';
const PACKAGES = ['torch==2.13.0+cpu', 'transformers==5.17.0', 'trl==1.13.0', 'accelerate', 'datasets'];

/** Qwen2.5-0.5B's config.json (random weights here): 494M parameters, tied embeddings, biases on q/k/v. */
export function qwen05bConfig(): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
    num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000,
    max_position_embeddings: 32768, hidden_act: 'silu', tie_word_embeddings: true, use_sliding_window: false,
    sliding_window: 32768, max_window_layers: 24, attention_dropout: 0, bos_token_id: 151643, eos_token_id: 151643, torch_dtype: 'float32',
  };
}

/**
 * A Qwen3-MoE of Qwen3-30B-A3B's proportions, scaled down to run on the CPU (random weights here): 8 layers of width
 * 512, 32 experts of 256 with 4 per token (Qwen3-30B-A3B: 48 layers of 2048, 128 experts of 768, 8 per token), the
 * top weights renormalised; 137M parameters, 45M of them active per token.
 */
export function qwen3MoeConfig(): Record<string, unknown> {
  return {
    architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', vocab_size: 32000, hidden_size: 512, intermediate_size: 1536,
    moe_intermediate_size: 256, num_experts: 32, num_experts_per_tok: 4, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [],
    num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 64, rms_norm_eps: 1e-6, rope_theta: 1000000,
    max_position_embeddings: 4096, hidden_act: 'silu', tie_word_embeddings: false, use_sliding_window: false, output_router_logits: false,
    router_aux_loss_coef: 0.001, attention_dropout: 0, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  };
}

export const SHAPES: Record<string, { title: string; config: () => Record<string, unknown> }> = {
  small: { title: 'the bench\'s small Llama', config: benchLlamaConfig },
  'qwen0.5b': { title: 'Qwen2.5-0.5B shape', config: qwen05bConfig },
  'qwen3-moe': { title: 'Qwen3-MoE (Qwen3-30B-A3B\'s proportions, scaled down)', config: qwen3MoeConfig },
};

// The ids both sides use: pad 0, EOS 2 (the responses' last id), the rest drawn from [3, vocab).
const PAD_ID = 0;
const EOS_ID = 2;
const GEN = { batch: 8, promptLen: 64, newTokens: 32, temperature: 0.7, topP: 0.9 };
const TRAIN = { pairs: 2, promptLen: 38, responseLen: 32, lr: 5e-7 };
const BETA: Record<string, number> = { dpo: 0.1, sppo_hard: 1e-3, sppo: 1e-3 };
/** TRL's loss_type for each of sppo's losses (TRL has no soft-probability SPPO: its sppo_hard is the nearest). */
const TRL_LOSS: Record<string, string> = { dpo: 'sigmoid', sppo_hard: 'sppo_hard', sppo: 'sppo_hard' };

/** A deterministic generator of token ids (xorshift), the same on every run. */
function idStream(seed: number, vocab: number): (n: number) => number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return (n) => Array.from({ length: n }, () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return 3 + (s % (vocab - 3));
  });
}

interface Task {
  task: 'generate' | 'train';
  dir: string;
  data: string;
  threads: number;
  warmup: number;
  repeats: number;
  loss?: string;
  checkpointing?: boolean;
}

interface SideResult {
  seconds: number[];
  maxrss_kb: number;
  threads: number;
  torch?: string;
  libtorch?: string;
  transformers?: string;
  trl?: string;
}

// ------------------------------------------------------------------ the sppo side, in its own process (--child)

async function child(t: Task): Promise<void> {
  setNumThreads(t.threads);
  const data = JSON.parse(readFileSync(t.data, 'utf8')) as { prompts: number[][]; pairs: { promptIds: number[]; chosenIds: number[]; rejectedIds: number[] }[] };
  const seconds: number[] = [];
  if (t.task === 'generate') {
    const model = loadModel(t.dir, { dtype: 'float32', device: 'cpu' });
    for (let r = 0; r < t.warmup + t.repeats; r++) {
      const t0 = performance.now();
      const gens = generate(model, data.prompts, { temperature: GEN.temperature, topP: GEN.topP, maxNewTokens: GEN.newTokens, eosTokenIds: [], seed: r });
      const s = (performance.now() - t0) / 1000;
      if (gens.some((g) => g.tokens.length !== GEN.newTokens)) throw new Error('hf_peers: a sequence stopped early');
      if (r >= t.warmup) seconds.push(s);
    }
    model.dispose();
  } else {
    const { train, pairLogprobs } = await import('../src/sppo/trainer.js');
    const model = loadModel(t.dir, { dtype: 'float32', device: 'cpu' });
    // The reference log-probs, precomputed by the policy before training (as TRL's precompute_ref_log_probs): not timed.
    const ref = pairLogprobs(model, data.pairs, TRAIN.pairs);
    const examples = data.pairs.map((p, i) => ({
      ...p, chosenRefLogprob: ref[i]![0], rejectedRefLogprob: ref[i]![1], chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8,
    }));
    const len = TRAIN.promptLen + TRAIN.responseLen;
    let t0 = performance.now();
    let step = 0;
    await train({
      policy: model, examples, loss: t.loss as 'dpo', beta: BETA[t.loss!]!, lr: TRAIN.lr, epochs: 1, batchSize: TRAIN.pairs, gradAccum: 1,
      optimizer: 'adamw', weightDecay: 0, warmupRatio: 0, schedule: 'linear', maxLength: len, maxPromptLength: TRAIN.promptLen,
      maxGradNorm: 1, dtype: 'float32', device: 'cpu', seed: 0, gradientCheckpointing: t.checkpointing ?? false,
      onStep: () => {
        const now = performance.now();
        if (step++ >= t.warmup) seconds.push((now - t0) / 1000);
        t0 = now;
      },
    });
    model.dispose();
    if (step !== t.warmup + t.repeats) throw new Error(`hf_peers: ${step} steps, expected ${t.warmup + t.repeats}`);
  }
  const r: SideResult = { seconds, maxrss_kb: process.resourceUsage().maxRSS, threads: getNumThreads(), libtorch: libtorchVersion() };
  console.log(JSON.stringify(r));
}

// ------------------------------------------------------------------ the coordinator

interface Build {
  name: string;
  env: Record<string, string>;
}

/** The libtorch builds sppo can run with here: Debian's (the default addon), PyTorch 2.13's when its addon is built. */
function builds(want: string[]): { found: Build[]; notes: string[] } {
  const found: Build[] = [];
  const notes: string[] = [];
  // The system's libtorch (Debian's libtorch-dev here) whatever this process was started with.
  if (want.includes('debian')) found.push({ name: 'debian', env: { LIBTORCH_USE_PYTORCH: '', LIBTORCH: '', SPPO_NATIVE: '' } });
  if (want.includes('pytorch')) {
    const rule = createRequire(import.meta.url)(join(root, 'native', 'addon_path.cjs')) as { addonPath(root: string, env: Record<string, string>): { file: string } };
    // scripts/pytorch.mjs's venv (its addon) first, then this part's own venv (same torch), or $SPPO_BENCH_PYTORCH_PYTHON.
    const pythons = [process.env.SPPO_BENCH_PYTORCH_PYTHON, join(root, '.venv', 'torch-2.13-cpu', 'bin', 'python3'), join(root, '.venv', VENV, 'bin', 'python3')].filter((p): p is string => !!p);
    const py = pythons.find((p) => existsSync(p) && existsSync(rule.addonPath(root, { LIBTORCH_USE_PYTORCH: '1', PYTHON: p }).file));
    if (py) found.push({ name: 'pytorch', env: { LIBTORCH_USE_PYTORCH: '1', PYTHON: py, LIBTORCH: '', SPPO_NATIVE: '' } });
    else notes.push("(no PyTorch 2.13 libtorch column: its addon is not built; 'node scripts/pytorch.mjs test' builds it)");
  }
  return { found, notes };
}

function runSide(cmd: string, args: string[], env: Record<string, string>, threads: number): SideResult {
  const all: Record<string, string | undefined> = { ...process.env, ...env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  for (const k of Object.keys(all)) if (all[k] === '') delete all[k];
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, env: all });
  const last = r.stdout?.trim().split('\n').pop() ?? '';
  if (r.status === 0) {
    try {
      return JSON.parse(last) as SideResult;
    } catch {
      /* below */
    }
  }
  const why = (r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-3).join(' | ') || `exit ${r.status}`;
  throw new Error(`hf_peers: ${cmd} ${args[0]} failed: ${why}`);
}

interface Cell {
  sppo: number[];
  peer: number[];
  sppoRss: number;
  peerRss: number;
}

const fmt = (s: Stats, d: number): string => `${s.median.toFixed(d)} (${s.min.toFixed(d)}-${s.max.toFixed(d)})`;
const gb = (kb: number): string => `${(kb / 1048576).toFixed(2)} GB`;

function tableRow(name: string, threads: number, build: string, c: Cell, unitTokens: number | null): string {
  const a = stats(c.sppo);
  const b = stats(c.peer);
  const d = a.median < 10 ? 3 : 2;
  const ratio = a.median / b.median;
  const tok = unitTokens ? `  ${(unitTokens / a.median).toFixed(1).padStart(8)} / ${(unitTokens / b.median).toFixed(1).padEnd(8)}` : `  ${'-'.padStart(8)}   ${''.padEnd(8)}`;
  return `${name.padEnd(38)} ${String(threads).padStart(3)}  ${build.padEnd(14)} ${fmt(a, d).padStart(24)} ${fmt(b, d).padStart(24)}${tok} ${`${ratio.toFixed(3)}x`.padStart(7)} ${ratio <= 1 ? 'ok  ' : 'MISS'}  ${gb(c.sppoRss).padStart(8)} ${gb(c.peerRss).padStart(8)}`;
}

function tableHeader(): string {
  return `${'measure (seconds)'.padEnd(38)} ${'thr'.padStart(3)}  ${'libtorch'.padEnd(14)} ${'sppo: median (min-max)'.padStart(24)} ${'peer: median (min-max)'.padStart(24)}  ${'tok/s sppo / peer'.padEnd(19)} ${'sppo/peer'.padStart(7)} goal  ${'sppo RSS'.padStart(8)} ${'peer RSS'.padStart(8)}`;
}

export interface HfPeersOptions {
  shapes?: string[];
  threads?: number[];
  builds?: string[];
  rounds?: number;
  repeats?: number;
  warmup?: number;
  losses?: string[];
  parts?: string[];
  checkpointing?: boolean;
}

/** The python of .venv/hf-peers (made once from the wheelhouse), or null after one line saying why not. */
async function peerPython(): Promise<string | null> {
  if (process.env.SPPO_BENCH_HF_PYTHON) return process.env.SPPO_BENCH_HF_PYTHON;
  const venv = (await import(pathToFileURL(join(root, 'scripts', 'venv.mjs')).href)) as {
    pythonVenv(name: string, installs: string[][], o: { log: (m: string) => void; fail: (why: string) => void }): string | undefined;
  };
  let why = '';
  const py = venv.pythonVenv(VENV, [PACKAGES], { log: (m) => console.log(`hf peers: ${m}`), fail: (w) => (why = w) });
  if (!py) {
    console.log(`hf peers: skipped: ${why} (this part needs python3 with venv, and pip able to install ${PACKAGES.join(', ')})`);
    return null;
  }
  return py;
}

/** Prints one table per shape (called by bench/bench.ts: `npm run bench`, or `npm run bench -- hf`). */
export async function run(opts: HfPeersOptions = {}): Promise<void> {
  const python = await peerPython();
  if (!python) return;
  const cores = physicalCores();
  const shapes = opts.shapes ?? ['small', 'qwen0.5b'];
  const threadList = [...new Set(opts.threads ?? [1, cores])];
  const { found, notes } = builds(opts.builds ?? ['debian', 'pytorch']);
  const rounds = opts.rounds ?? 2;
  const repeats = opts.repeats ?? 2;
  const warmup = Math.max(1, opts.warmup ?? 1);
  const losses = opts.losses ?? ['dpo', 'sppo_hard'];
  const parts = opts.parts ?? ['generate', 'train'];
  for (const n of threadList) if (!Number.isInteger(n) || n < 1) throw new Error(`hf_peers: --threads: positive integers, e.g. 1,2 (got ${opts.threads?.join(',')})`);
  for (const b of opts.builds ?? []) if (b !== 'debian' && b !== 'pytorch') throw new Error(`hf_peers: --builds ${b}: debian or pytorch`);
  for (const l of losses) if (!TRL_LOSS[l]) throw new Error(`hf_peers: --losses ${l}: one of ${Object.keys(TRL_LOSS).join(', ')}`);
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const script = fileURLToPath(import.meta.url);
  const peerScript = join(root, 'bench', 'peer_hf.py');
  console.log(`hf peers: CPU ${cpu} (${cores} physical cores, ${cpus().length} logical); threads ${threadList.join(', ')}; sppo libtorch builds: ${found.map((b) => b.name).join(', ')}`);
  for (const n of notes) console.log(n);
  for (const shape of shapes) {
    const spec = SHAPES[shape];
    if (!spec) throw new Error(`hf_peers: unknown --shape ${shape} (${Object.keys(SHAPES).join(', ')} or both)`);
    const dir = mkdtempSync(join(tmpdir(), `sppo-bench-hf-${shape}-`));
    try {
      // The weights (random, seed 0), written by sppo as an HF folder both sides load; the token ids both sides use.
      const cfg = parseConfig(spec.config());
      const model = createModel(cfg);
      model.initWeights({ std: 0.02, seed: 0 });
      const nParams = model.parameters().reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
      saveModel(model, join(dir, 'model'));
      model.dispose();
      const ids = idStream(1, cfg.vocabSize);
      const data = {
        prompts: Array.from({ length: GEN.batch }, () => ids(GEN.promptLen)),
        pairs: Array.from({ length: (warmup + repeats) * TRAIN.pairs }, () => ({
          promptIds: ids(TRAIN.promptLen), chosenIds: [...ids(TRAIN.responseLen - 1), EOS_ID], rejectedIds: [...ids(TRAIN.responseLen - 1), EOS_ID],
        })),
      };
      writeFileSync(join(dir, 'data.json'), JSON.stringify(data));
      const base = { dir: join(dir, 'model'), data: join(dir, 'data.json'), warmup, repeats };
      const measures: { name: string; task: Task; tokens: number | null; peerExtra: Record<string, unknown> }[] = [];
      if (parts.includes('generate')) {
        measures.push({
          name: `generate b${GEN.batch} ${GEN.promptLen}+${GEN.newTokens}`, tokens: GEN.batch * GEN.newTokens,
          task: { task: 'generate', ...base, threads: 0 },
          peerExtra: { new_tokens: GEN.newTokens, temperature: GEN.temperature, top_p: GEN.topP, pad_id: PAD_ID },
        });
      }
      if (parts.includes('train')) {
        for (const loss of losses) {
          measures.push({
            name: `train step ${loss} (TRL ${TRL_LOSS[loss]})`, tokens: null,
            task: { task: 'train', ...base, threads: 0, loss, checkpointing: opts.checkpointing ?? false },
            peerExtra: { loss: TRL_LOSS[loss], beta: BETA[loss], lr: TRAIN.lr, batch: TRAIN.pairs, vocab_size: cfg.vocabSize, pad_id: PAD_ID, eos_id: EOS_ID, checkpointing: opts.checkpointing ?? false },
          });
        }
      }
      const lines: string[] = [];
      const versions = new Map<string, string>();
      for (const m of measures) {
        for (const threads of threadList) {
          // One peer column per row, measured once a round beside every build's sppo (the peer does not depend on it).
          const cells = found.map((): Cell => ({ sppo: [], peer: [], sppoRss: 0, peerRss: 0 }));
          const libtorch = found.map(() => '');
          const task = { ...m.task, threads };
          for (let r = 0; r < rounds; r++) {
            found.forEach((b, i) => {
              const s = runSide(process.execPath, [script, '--child', JSON.stringify(task)], b.env, threads);
              cells[i]!.sppo.push(...s.seconds);
              libtorch[i] = s.libtorch ?? '';
              cells[i]!.sppoRss = Math.max(cells[i]!.sppoRss, s.maxrss_kb);
              if (s.threads !== threads) throw new Error(`hf_peers: sppo ran with ${s.threads} threads, not ${threads}`);
              if (b.name === 'pytorch' && !s.libtorch?.startsWith('2.13')) throw new Error(`hf_peers: the PyTorch build loaded libtorch ${s.libtorch}`);
            });
            const p = runSide(python, [peerScript, JSON.stringify({ ...task, ...m.peerExtra })], {}, threads);
            if (p.threads !== threads) throw new Error(`hf_peers: the peer ran with ${p.threads} threads, not ${threads}`);
            for (const c of cells) {
              c.peer.push(...p.seconds);
              c.peerRss = Math.max(c.peerRss, p.maxrss_kb);
            }
            versions.set('PyTorch', p.torch!).set('transformers', p.transformers!);
            if (p.trl) versions.set('TRL', p.trl);
          }
          found.forEach((b, i) => {
            const line = tableRow(m.name, threads, `${b.name} ${libtorch[i]}`, cells[i]!, m.tokens);
            lines.push(line);
            console.error(`  ${line}`);
          });
        }
      }
      console.log(`\nhf peers: ${spec.title} (${(nParams / 1e6).toFixed(1)}M parameters, random weights), float32, CPU ${cpu}; peers: ${[...versions].map(([k, v]) => `${k} ${v}`).join(', ')}`);
      console.log(tableHeader());
      for (const l of lines) console.log(l);
      console.log(`(generate: batch ${GEN.batch}, ${GEN.promptLen}-token prompts, ${GEN.newTokens} new tokens, temperature ${GEN.temperature}, top-p ${GEN.topP}, every sequence to full length; ` +
        `train step: ${TRAIN.pairs} pairs of ${TRAIN.promptLen}+${TRAIN.responseLen} tokens, AdamW lr ${TRAIN.lr}, grad clip 1, reference log-probs precomputed, gradient checkpointing ${opts.checkpointing ? 'on' : 'off'} on both sides; ` +
        `${rounds} rounds alternating sppo (each build) and the peer (the same peer figures in each build's row), each ${warmup} warm-up + ${repeats} timed per side, each side in its own process; peak RSS: the largest of a side's processes; sppo/peer: ratio of median times, goal <= 1)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const list = (s: string | undefined): string[] | undefined => s?.split(',').map((x) => x.trim()).filter(Boolean);

/** The part's options from this process's command line (also `npm run bench -- hf --shape small ...`). */
export function optionsFromArgs(): HfPeersOptions {
  const shape = arg('--shape');
  return {
    shapes: shape === 'both' ? ['small', 'qwen0.5b'] : list(shape),
    threads: list(arg('--threads'))?.map(Number),
    builds: list(arg('--builds')),
    rounds: numArg('--rounds'), repeats: numArg('--repeats'), warmup: numArg('--warmup'),
    losses: list(arg('--losses')), parts: list(arg('--parts')),
    checkpointing: process.argv.includes('--checkpointing'),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const childTask = arg('--child');
  if (childTask) await child(JSON.parse(childTask) as Task);
  else await run(optionsFromArgs());
}
