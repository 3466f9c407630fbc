// One rank of the data-parallel trainer test (test/ddp.test.ts): trains with the options of the JSON file
// argv[2] (TrainOptions without the callbacks), over a Gloo group when the launcher's variables are set.
// Rank 0 (or the single process) writes each step's summed gradients to <out>/grads-<step>.safetensors,
// the metrics to <out>/result.json; the checkpoint goes to options.checkpointDir.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { train, type TrainOptions } from '../../src/sppo/trainer.js';

async function main(): Promise<void> {
  const { out, ...opts } = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as TrainOptions & { out: string };
  const pg = torch.distEnv() ? await torch.initProcessGroup({ backend: 'gloo', timeoutMs: 60_000 }) : undefined;
  const rank = pg?.rank ?? 0;
  let step = 0;
  const r = await train({
    ...opts,
    processGroup: pg,
    onGradients: (named) => {
      step++;
      if (rank !== 0) return;
      const grads = new Map(named.map(([n, p]) => [n, p.grad!] as [string, torch.Tensor]));
      torch.saveSafetensors(join(out, `grads-${step}.safetensors`), grads);
    },
  });
  if (rank === 0) writeFileSync(join(out, 'result.json'), JSON.stringify({ metrics: r.metrics, evalLoss: r.evalLoss, evalLossBefore: r.evalLossBefore }));
  r.model.dispose();
  if (pg) {
    await pg.barrier();
    pg.destroy();
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(2);
});
