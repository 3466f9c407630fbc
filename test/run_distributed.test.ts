// `sppo run CONFIG --nproc 2` on the llama fixture (two Gloo ranks on 127.0.0.1, one intra-op thread each) against
// `--nproc 1` (one process, the machine's thread count): the sharded generation, judging and evaluation responses
// are the same lines, tokens and texts (each chunk's seed depends on the chunk only) with the log-probs equal to
// float32 rounding (other thread counts sum in other orders: test/helpers/artifacts.ts), the preferences and pairs
// the same; the data-parallel training ends with weights within RMSprop's bound of one process's, and the same
// checkpoint is evaluated the same. A rank SIGKILLed mid-generation stops the command with an error naming it, and the same
// command then resumes the run (here with --zero1). Ranks started as srun starts them (Slurm's variables) run the
// same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { EPS32 } from './helpers/tolerances.js';
import { freePort } from '../src/util/ports.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';
import { readFloat32Weights } from './helpers/torch.js';
import { assertSameJsonlUpToLogprobs } from './helpers/artifacts.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const model = join(fixtureRoot, 'llama');
const skip = !existsSync(join(model, 'model.safetensors')) ? `no llama fixture at ${model}` : !torch.distributedAvailable().backends.includes('gloo') ? torch.distributedAvailable().reason : false;

const JUDGE = `export const name = 'likes-token';
export const positionBiased = true;
const count = (s, t) => s.split(t).length - 1;
export default function ({ a, b }) {
  return 1 / (1 + Math.exp(-(count(a, 'an') - count(b, 'an')) - 0.1 * (a.length - b.length) / 16));
}
`;
const LR = 0.001;

function config(runDir: string): string {
  return [
    `model: ${JSON.stringify(model)}`,
    'prompts: prompts.jsonl',
    `runDir: ${runDir}`,
    'judge: { kind: module, path: judge.mjs }',
    'iterations: 1',
    'seed: 3',
    'device: cpu',
    'promptsPerIteration: 8',
    'judgeChunk: 2',
    'generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 2 }',
    `training: { loss: sppo, beta: 0.1, lr: ${LR}, optimizer: rmsprop, epochs: 2, batchSize: 2, gradAccum: 2, maxLength: 64, maxPromptLength: 48, warmupRatio: 0 }`,
    'eval: { count: 6, batchSize: 2, temperature: 0 }',
  ].join('\n') + '\n';
}

function runCli(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cli, 'run', ...args], { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr, ms: Date.now() - t0 };
}

const text = (p: string): string => readFileSync(p, 'utf8');

test('sppo run --nproc 2 vs --nproc 1: same generations, preferences, pairs (log-probs within rounding) and evaluation of a checkpoint; weights within tolerance; a killed rank is named and the rerun resumes; srun-style ranks', { skip, timeout: 600_000 }, async () => {
  const dir = tempDir('sppo-run-dist');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `Prompt ${i}: tell me about ${['tea', 'maps', 'wind', 'glass'][i % 4]}` })).join('\n') + '\n');
    writeFileSync(join(dir, 'one.yaml'), config('run-one'));
    writeFileSync(join(dir, 'two.yaml'), config('run-two'));

    const one = runCli(dir, ['one.yaml']);
    assert.equal(one.status, 0, one.stderr);

    // Rank 1 kills itself after its first generation chunk (chunk 1 of 4: the hook's step 2); the launcher names it and stops rank 0.
    const killed = runCli(dir, ['two.yaml', '--nproc', '2', '--timeout', '60'], { SPPO_TEST_KILL_AT: '1:generate:2', SPPO_TEST_KILL_RANK: '1' });
    assert.equal(killed.status, 1, killed.stderr);
    assert.match(killed.stderr, /rank 1 \(pid \d+\) was killed by SIGKILL; stopping the other ranks/);
    assert.ok(killed.ms < 60_000 + 30_000, `the launcher took ${killed.ms} ms`);
    const two = join(dir, 'run-two');
    assert.ok(!existsSync(join(two, 'iter-1/generations.jsonl')));
    assert.ok(existsSync(join(two, 'iter-1/partial/generate/00001.jsonl')), 'rank 1 saved its chunk before dying');

    // Resumed with the optimizer state sharded (ZeRO-1: the same weights as without, test/ddp.test.ts).
    const resumed = runCli(dir, ['two.yaml', '--nproc', '2', '--timeout', '60', '--zero1']);
    assert.equal(resumed.status, 0, resumed.stderr);
    console.log(`[run --nproc] 1 process ${(one.ms / 1000).toFixed(1)} s; 2 ranks resumed ${(resumed.ms / 1000).toFixed(1)} s`);

    const a = join(dir, 'run-one');
    // Sharded by chunk with per-chunk seeds, then gathered by rank 0: one process's lines, tokens, texts, preferences
    // and pairs; the log-probs within rounding (the ranks run one thread each, the single process two here).
    assert.equal(text(join(two, 'splits.json')), text(join(a, 'splits.json')), 'splits.json differs between --nproc 2 and --nproc 1');
    let lpWorst = 0;
    for (const f of ['iter-0/eval-responses.jsonl', 'iter-1/generations.jsonl', 'iter-1/preferences.jsonl', 'iter-1/pairs.jsonl']) {
      lpWorst = Math.max(lpWorst, assertSameJsonlUpToLogprobs(join(two, f), join(a, f), `${f} (--nproc 2 vs --nproc 1)`));
    }
    console.log(`[run --nproc] same lines, tokens, preferences and pairs; largest log-prob difference ${lpWorst.toExponential(2)} of its bound`);
    for (const f of ['iter-1/partial', 'run.lock']) assert.ok(!existsSync(join(two, f)), `${f} left behind`);

    // Training: the same global batch. RMSprop moves an entry by at most lr / sqrt(1 - alpha) per step whatever the
    // gradient, so S steps of two runs differ by at most 2 S lr / 0.1 (plus rounding); test/ddp.test.ts bounds
    // the gradients and the first step far more tightly.
    const steps = text(join(a, 'iter-1/train-metrics.jsonl')).trim().split('\n').length;
    assert.equal(text(join(two, 'iter-1/train-metrics.jsonl')).trim().split('\n').length, steps);
    const bound = 2 * steps * LR / Math.sqrt(1 - 0.99) + 4 * EPS32;
    const w1 = readFloat32Weights(join(a, 'iter-1/checkpoint/model.safetensors'));
    const w2 = readFloat32Weights(join(two, 'iter-1/checkpoint/model.safetensors'));
    assert.deepEqual([...w2.keys()].sort(), [...w1.keys()].sort());
    let worst = 0;
    for (const [n, v] of w1) {
      const u = w2.get(n)!;
      for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - u[i]!));
    }
    console.log(`[run --nproc] ${steps} steps: largest weight difference 2 ranks vs 1: ${worst.toExponential(2)} (bound ${bound.toExponential(2)})`);
    assert.ok(worst <= bound, `largest weight difference ${worst} > ${bound}`);

    // Evaluation of pi_1 sharded over the ranks, judged by rank 0. The two runs' pi_1 differ within the bound above
    // (RMSprop's first step is lr * g / |g| / 0.1 for any g != 0, so rounding-level gradients move by 10 lr), and
    // greedy tokens can follow such differences. What the loop guarantees is that the same checkpoint is evaluated
    // the same with any number of ranks: the 2-rank run's evaluation is redone on the 1-process checkpoint (the
    // resumption reruns only the evaluation stage) and must give the same tokens, log-probs within rounding, and
    // the same eval.json.
    for (const f of ['iter-1/eval.json', 'iter-1/eval-responses.jsonl']) rmSync(join(two, f));
    rmSync(join(two, 'iter-1/checkpoint'), { recursive: true });
    cpSync(join(a, 'iter-1/checkpoint'), join(two, 'iter-1/checkpoint'), { recursive: true });
    const reeval = runCli(dir, ['two.yaml', '--nproc', '2', '--timeout', '60']);
    assert.equal(reeval.status, 0, reeval.stderr);
    const evalWorst = assertSameJsonlUpToLogprobs(join(two, 'iter-1/eval-responses.jsonl'), join(a, 'iter-1/eval-responses.jsonl'), 'pi_1 evaluation responses (--nproc 2 vs --nproc 1, same checkpoint)');
    console.log(`[run --nproc] evaluation of the same pi_1: same tokens; largest log-prob difference ${evalWorst.toExponential(2)} of its bound`);
    const e1 = JSON.parse(text(join(a, 'iter-1/eval.json'))) as Record<string, unknown>;
    const e2 = JSON.parse(text(join(two, 'iter-1/eval.json'))) as Record<string, unknown>;
    assert.deepEqual(e2, e1);

    // The same command as srun starts it (one task per rank: SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and the
    // MASTER_ADDR / MASTER_PORT a batch script exports), without --nproc: the ranks find each other from those.
    writeFileSync(join(dir, 'srun.yaml'), config('run-srun'));
    const port = await freePort();
    const srun = await Promise.all([0, 1].map((rank) => new Promise<{ code: number | null; out: string; err: string }>((res) => {
      const p = spawn(process.execPath, [cli, 'run', 'srun.yaml'], {
        cwd: dir,
        env: { ...process.env, SLURM_PROCID: String(rank), SLURM_NTASKS: '2', SLURM_LOCALID: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '', err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('close', (code) => res({ code, out, err }));
    })));
    srun.forEach((r, rank) => assert.equal(r.code, 0, `srun-style rank ${rank}: ${r.err}`));
    // Rank 0 prints the run's summary, rank 1 nothing.
    assert.ok(srun[0]!.out.includes('"finalModel"') && srun[1]!.out.trim() === '', srun.map((r) => r.out).join('\n---\n'));
    const c = join(dir, 'run-srun');
    for (const f of ['iter-0/eval-responses.jsonl', 'iter-1/generations.jsonl', 'iter-1/preferences.jsonl', 'iter-1/pairs.jsonl']) assertSameJsonlUpToLogprobs(join(c, f), join(a, f), `${f} (srun-style ranks)`);
    // Its pi_1 differs from one process's within the bound above (so its evaluation is checked as complete, not equal).
    const es = JSON.parse(text(join(c, 'iter-1/eval.json'))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(es).sort(), Object.keys(e1).sort());
    assert.equal(es.n, e1.n);
  } finally {
    removeDir(dir);
  }
});

test('sppo run --nproc under a launcher that set WORLD_SIZE is a usage error', () => {
  const r = spawnSync(process.execPath, [cli, 'run', 'x.yaml', '--nproc', '2'], { encoding: 'utf8', env: { ...process.env, WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' } });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--nproc 2, but WORLD_SIZE=2 is already set by a launcher/);
});
