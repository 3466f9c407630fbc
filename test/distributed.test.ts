// c10d through src/torch/distributed.ts with real processes: two ranks (node child processes, Gloo over
// 127.0.0.1, rank 0 serving the TCPStore) check allreduce (sum, avg, max), broadcast, allgather, barrier and
// the bucketed gradient allreduce against values computed here; a collective waiting for a late rank does not
// block the event loop; a rank killed with SIGKILL makes the other stop, within the timeout, with an error
// naming its rank, the collective and the dead rank. And the environment a launcher sets is parsed and checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { cuda, distEnv, distributedAvailable } from '../src/torch/index.js';
import { hfTiny } from './helpers/fixtures.js';
import { freePort } from '../src/util/ports.js';
import { cudaSkipReason } from './helpers/cuda.js';

const worker = fileURLToPath(new URL('./helpers/dist_worker.js', import.meta.url));
const avail = distributedAvailable();
const skip = avail.backends.includes('gloo') ? false : `no c10d gloo in this build: ${avail.reason}`;

interface Rank {
  lines: unknown[];
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  done: Promise<void>;
  kill(sig: NodeJS.Signals): void;
  onLine(f: (line: Record<string, unknown>) => void): void;
}

function startRank(scenario: string, rank: number, world: number, port: number, timeoutMs: number, extra: string[] = []): Rank {
  const child = spawn(process.execPath, [worker, scenario, ...extra], {
    env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), SPPO_TEST_DIST_TIMEOUT_MS: String(timeoutMs), OMP_NUM_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r: Rank = {
    lines: [], stderr: '', code: null, signal: null,
    done: new Promise((res) => child.on('close', (code, signal) => { r.code = code; r.signal = signal; res(); })),
    kill: (sig) => child.kill(sig),
    onLine: (f) => listeners.push(f),
  };
  const listeners: ((l: Record<string, unknown>) => void)[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const obj = JSON.parse(line) as Record<string, unknown>;
      r.lines.push(obj);
      for (const f of listeners) f(obj);
    }
  });
  child.stderr.on('data', (d: Buffer) => (r.stderr += d.toString()));
  return r;
}

test('two ranks on Gloo: allreduce, broadcast, allgather, barrier and bucketed gradients', { skip, timeout: 120_000 }, async () => {
  const port = await freePort();
  const ranks = [0, 1].map((r) => startRank('collectives', r, 2, port, 30_000));
  await Promise.all(ranks.map((r) => r.done));
  for (const [i, r] of ranks.entries()) assert.equal(r.code, 0, `rank ${i} exited ${r.code ?? r.signal}: ${r.stderr}`);
  const out = ranks.map((r) => r.lines[0] as Record<string, unknown>);
  for (let r = 0; r < 2; r++) {
    const o = out[r]!;
    assert.equal(o.rank, r);
    assert.equal(o.worldSize, 2);
    assert.equal(o.backend, 'gloo');
    // Rank r contributed [r+1, 10(r+1), -r]; small integers are exact in float32.
    assert.deepEqual(o.sum, [1 + 2, 10 + 20, 0 - 1]);
    assert.deepEqual(o.avg, [(1 + 2) / 2, (0 + 2) / 2]);
    assert.deepEqual(o.max, [2, -1]);
    assert.deepEqual(o.broadcast, [7, 8, 9]);
    assert.deepEqual(o.allgather, [[0, 0.5], [1, 1.5]]);
    // Rank r's gradients were (r+1) * coefficients: summed, 3 * coefficients; p2 had none: zeros.
    assert.deepEqual(o.grads, [[3, 6, 9, 12], [15, 18, 21], [0, 0]]);
    // During the backward pass: two micro-batches of (r+1) * coefficients each, summed over the ranks: 2 * 3 = 6 times.
    assert.deepEqual(o.syncGrads, [[6, 12, 18, 24], [30, 36, 42], [48, 54]]);
    // All three buckets were started by the backward pass's hooks, none left for finish().
    assert.equal(o.startedInBackward, 3);
    // Rank 1 without a backward pass that step: the sums are rank 0's gradients alone.
    assert.deepEqual(o.syncGradsOneRank, [[1, 2, 3, 4], [5, 6, 7], [8, 9]]);
  }
  // Rank 1 reached the first barrier 300 ms late; rank 0 waited for it.
  assert.ok((out[0]!.barrierWaitMs as number) >= 250, `rank 0 left the barrier after ${out[0]!.barrierWaitMs} ms`);
  // Timers (10 ms) kept firing on rank 0 while its barrier waited ~300 ms for rank 1.
  assert.ok((out[0]!.ticksDuringBarrier as number) >= 5, `only ${out[0]!.ticksDuringBarrier} timer ticks during the barrier`);
});

test('a rank killed with SIGKILL: the other stops with an error naming the collective and the dead rank, within the timeout', { skip, timeout: 120_000 }, async () => {
  const port = await freePort();
  const timeoutMs = 10_000;
  const ranks = [0, 1].map((r) => startRank('hang', r, 2, port, timeoutMs));
  let ready = 0;
  const bothReady = new Promise<void>((res) => ranks.forEach((r) => r.onLine((l) => { if ('ready' in l && ++ready === 2) res(); })));
  await bothReady;
  await new Promise((res) => setTimeout(res, 200));
  const killedAt = Date.now();
  ranks[1]!.kill('SIGKILL');
  await ranks[0]!.done;
  const elapsed = Date.now() - killedAt;
  await ranks[1]!.done;
  assert.equal(ranks[1]!.signal, 'SIGKILL');
  assert.equal(ranks[0]!.code, 3, `rank 0 exited ${ranks[0]!.code ?? ranks[0]!.signal}: ${ranks[0]!.stderr}`);
  const err = (ranks[0]!.lines.find((l) => typeof l === 'object' && l !== null && 'error' in l) as { error: string }).error;
  assert.match(err, /allreduce\(sum\)/);
  assert.match(err, /on rank 0 of 2/);
  assert.match(err, /rank 1 \(pid \d+\) is no longer running/);
  // Within the timeout (plus the second wait_for allows on top of it, and process start-up slack).
  assert.ok(elapsed < timeoutMs + 5000, `rank 0 stopped ${elapsed} ms after the kill (timeout ${timeoutMs} ms)`);
});

test('distEnv reads torchrun\'s and Slurm\'s variables and names what is missing', () => {
  assert.equal(distEnv({}), undefined);
  assert.deepEqual(distEnv({ RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29500' }),
    { rank: 1, worldSize: 4, localRank: 1, masterAddr: 'node0', masterPort: 29500 });
  assert.deepEqual(distEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', MASTER_ADDR: 'n1', MASTER_PORT: '1234' }),
    { rank: 5, worldSize: 8, localRank: 1, masterAddr: 'n1', masterPort: 1234 });
  assert.throws(() => distEnv({ WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' }), /RANK is not/);
  assert.throws(() => distEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' }), /RANK=2 is not below WORLD_SIZE=2/);
  assert.throws(() => distEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1' }), /MASTER_ADDR is not set/);
  assert.throws(() => distEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'a' }), /MASTER_PORT is not set/);
  assert.throws(() => distEnv({ WORLD_SIZE: 'two' }), /WORLD_SIZE="two": expected an integer/);
});

// Only where the addon has NCCL and a GPU is visible (scripts/gpu-check.sh runs it there): world size 1, or
// one rank per GPU. Untested on this project's CPU machines.
const ncclSkip = cudaSkipReason() || (!avail.backends.includes('nccl') ? 'no c10d nccl in this CUDA build (nccl.h was not found when it was built)' : false);

test('NCCL: collectives on cuda tensors and one DDP training step, one rank per GPU', { skip: ncclSkip, timeout: 300_000 }, async () => {
  const world = Math.min(2, cuda.deviceCount());
  const port = await freePort();
  const ranks = Array.from({ length: world }, (_, r) => startRank('nccl', r, world, port, 120_000, [join(hfTiny, 'llama')]));
  await Promise.all(ranks.map((r) => r.done));
  for (const [i, r] of ranks.entries()) assert.equal(r.code, 0, `rank ${i} exited ${r.code ?? r.signal}: ${r.stderr}`);
  for (const [rank, r] of ranks.entries()) {
    const o = r.lines[0] as Record<string, unknown>;
    assert.equal(o.backend, 'nccl');
    const n = world;
    assert.deepEqual(o.sum, [n * (n + 1) / 2, 10 * n * (n + 1) / 2]);
    assert.deepEqual(o.avg, [(n + 1)]);
    assert.deepEqual(o.allgather, Array.from({ length: n }, (_, i) => i));
    assert.equal(o.steps, 1, `rank ${rank}`);
    assert.ok(Number.isFinite(o.loss as number));
  }
});

test('a rank whose rank 0 never comes: the start fails after the timeout, naming the rank and the store', { skip, timeout: 60_000 }, async () => {
  const port = await freePort();
  const t0 = Date.now();
  const r = startRank('collectives', 1, 2, port, 2000);
  await r.done;
  const ms = Date.now() - t0;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`could not reach the TCPStore \\(rank 1 of 2, store 127\\.0\\.0\\.1:${port}\\)`));
  assert.match(r.stderr, /could not reach the TCPStore \(.*\) within the 2 s timeout: /);
  // The 2 s timeout (libtorch's connect loop stops when its next retry would pass it) plus the process's start,
  // far from the 30 minutes of the default.
  assert.ok(ms < 20_000, `failed after ${ms} ms`);
});
