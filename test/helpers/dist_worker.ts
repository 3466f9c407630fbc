// One rank of the distributed tests (test/distributed.test.ts), started as a child process with the
// torchrun variables set. argv[2] names the scenario; the rank prints one JSON line of results on stdout.
//   collectives: allreduce (sum, avg), broadcast, allgather, barrier, bucketed gradient allreduce
//   hang:        rank 0 runs collectives in a loop and reports its error (a peer is killed meanwhile)
//   nccl:        (a GPU machine) NCCL: the collectives on cuda tensors and one DDP training step (argv[3]: a model folder)
import * as torch from '../../src/torch/index.js';
import { train } from '../../src/sppo/trainer.js';

const scenario = process.argv[2];
const timeoutMs = Number(process.env.SPPO_TEST_DIST_TIMEOUT_MS ?? 20000);

async function collectives(pg: torch.ProcessGroup): Promise<Record<string, unknown>> {
  const r = pg.rank;
  const w = pg.worldSize;
  const out: Record<string, unknown> = { rank: r, worldSize: w, backend: pg.backend };
  // Values that depend on the rank, exact in float32 and float64.
  const a = torch.tensor(Float32Array.from([r + 1, 10 * (r + 1), -r]));
  await pg.allreduce(a, 'sum');
  out.sum = Array.from(a.toTypedArray() as Float32Array);
  const b = torch.tensor(Float64Array.from([r + 1, 2 * r]));
  await pg.allreduce(b, 'avg');
  out.avg = Array.from(b.toTypedArray() as Float64Array);
  const c = torch.tensor(Float32Array.from([r + 1, -(r + 1)]));
  await pg.allreduce(c, 'max');
  out.max = Array.from(c.toTypedArray() as Float32Array);
  const d = torch.tensor(Int32Array.from(r === 1 ? [7, 8, 9] : [0, 0, 0]));
  await pg.broadcast(d, 1);
  out.broadcast = Array.from(d.toTypedArray() as Int32Array);
  const e = torch.tensor(Float32Array.from([r, r * r + 0.5]));
  const gathered = await pg.allgather(e);
  out.allgather = gathered.map((t) => Array.from(t.toTypedArray() as Float32Array));
  for (const t of gathered) t.dispose();
  const t0 = Date.now();
  // Rank 1 arrives 300 ms late: rank 0's barrier cannot resolve before.
  if (r === 1) await new Promise((res) => setTimeout(res, 300));
  await pg.barrier();
  out.barrierWaitMs = Date.now() - t0;
  // Gradients: rank r's grads are (r + 1) * [1..n]; three parameters over two buckets of 16 bytes; p2 has none.
  const p0 = torch.zeros([2, 2]).requiresGrad_(true);
  const p1 = torch.zeros([3]).requiresGrad_(true);
  const p2 = torch.zeros([2]).requiresGrad_(true);
  const loss = p0.mul(torch.tensor(Float32Array.from([1, 2, 3, 4]), { shape: [2, 2] })).sum().add(p1.mul(torch.tensor(Float32Array.from([5, 6, 7]))).sum()).mul(r + 1);
  loss.backward();
  await pg.allreduceGradients([p0, p1, p2], { bucketBytes: 16 });
  out.grads = [p0, p1, p2].map((p) => Array.from(p.grad!.toTypedArray() as Float32Array));
  // The same during the backward pass: two micro-batches, the second armed; three buckets (q2 alone, q1, q0).
  const q0 = torch.zeros([2, 2]).requiresGrad_(true);
  const q1 = torch.zeros([3]).requiresGrad_(true);
  const q2 = torch.zeros([2]).requiresGrad_(true);
  const sync = pg.gradientSync([q0, q1, q2], { bucketBytes: 16 });
  const microBatch = (): void => {
    const l = q0.mul(torch.tensor(Float32Array.from([1, 2, 3, 4]), { shape: [2, 2] })).sum()
      .add(q1.mul(torch.tensor(Float32Array.from([5, 6, 7]))).sum())
      .add(q2.mul(torch.tensor(Float32Array.from([8, 9]))).sum()).mul(r + 1);
    l.backward();
  };
  microBatch();
  sync.arm();
  microBatch();
  out.startedInBackward = await sync.finish();
  out.syncGrads = [q0, q1, q2].map((p) => Array.from(p.grad!.toTypedArray() as Float32Array));
  // A step in which this rank has no backward pass (rank 1): its zeros are summed with rank 0's gradients.
  for (const q of [q0, q1, q2]) q.grad!.zero_();
  if (r === 0) {
    sync.arm();
    microBatch();
  }
  await sync.finish();
  out.syncGradsOneRank = [q0, q1, q2].map((p) => Array.from(p.grad!.toTypedArray() as Float32Array));
  sync.dispose();
  // Event loop: a timer fires while a collective waits for a late rank.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  if (r === 0) await pg.barrier();
  else {
    await new Promise((res) => setTimeout(res, 300));
    await pg.barrier();
  }
  clearInterval(timer);
  out.ticksDuringBarrier = ticks;
  await pg.barrier();
  pg.destroy();
  return out;
}

async function nccl(pg: torch.ProcessGroup, modelDir: string): Promise<Record<string, unknown>> {
  const device = `cuda:${pg.localRank}`;
  const r = pg.rank;
  const out: Record<string, unknown> = { rank: r, worldSize: pg.worldSize, backend: pg.backend };
  const a = torch.tensor(Float32Array.from([r + 1, 10 * (r + 1)]), { device });
  await pg.allreduce(a, 'sum');
  out.sum = Array.from(a.cpu().toTypedArray() as Float32Array);
  const b = torch.tensor(Float32Array.from([2 * (r + 1)]), { device });
  await pg.allreduce(b, 'avg');
  out.avg = Array.from(b.cpu().toTypedArray() as Float32Array);
  const g = await pg.allgather(torch.tensor(Float32Array.from([r]), { device }));
  out.allgather = g.map((t) => (t.cpu().toTypedArray() as Float32Array)[0]);
  await pg.barrier();
  // One DDP step of the trainer on the fixture (2 pairs per rank).
  const ex = Array.from({ length: 2 * pg.worldSize }, (_, i) => ({
    promptIds: [5, 6, 7 + i], chosenIds: [8, 9, 10], rejectedIds: [11, 12], chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8,
  }));
  const res = await train({
    policy: modelDir, examples: ex, loss: 'sppo', beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2, gradAccum: pg.worldSize,
    optimizer: 'rmsprop', warmupRatio: 0, schedule: 'constant', maxLength: 32, maxPromptLength: 16, maxGradNorm: 1,
    dtype: 'float32', device, seed: 0, processGroup: pg,
  });
  out.steps = res.metrics.length;
  out.loss = res.metrics[0]!.loss;
  res.model.dispose();
  await pg.barrier();
  pg.destroy();
  return out;
}

async function main(): Promise<void> {
  if (scenario === 'nccl') {
    const pg = await torch.initProcessGroup({ backend: 'nccl', timeoutMs });
    console.log(JSON.stringify(await nccl(pg, process.argv[3]!)));
    return;
  }
  const pg = await torch.initProcessGroup({ backend: 'gloo', timeoutMs });
  if (scenario === 'collectives') {
    console.log(JSON.stringify(await collectives(pg)));
  } else if (scenario === 'hang') {
    // Both ranks are ready; rank 1 then waits to be killed, rank 0 keeps reducing.
    await pg.barrier();
    console.log(JSON.stringify({ ready: pg.rank }));
    if (pg.rank === 1) {
      setInterval(() => {}, 1000);
      return;
    }
    const t = torch.ones([1024]);
    const t0 = Date.now();
    try {
      for (;;) {
        await pg.allreduce(t, 'sum');
        await new Promise((res) => setTimeout(res, 5));
      }
    } catch (e) {
      console.log(JSON.stringify({ error: (e as Error).message, afterMs: Date.now() - t0 }));
      process.exit(3);
    }
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(2);
});
