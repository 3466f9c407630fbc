// Gradient checkpointing of the layers (ForwardInput.tape / LogprobOptions.tape): the same gradients as
// a plain backward, for every fixture architecture, with left padding.
import { test } from 'node:test';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { assertClose, flat } from './helpers/torch.js';
import { fixtureCases } from './helpers/fixtures.js';
import { BWD32 } from './helpers/tolerances.js';

for (const { name, dir, skip } of fixtureCases(['config.json', 'model.safetensors'])) {
  test(`checkpointed layers give the gradients of a plain backward: ${name}`, { skip }, () => {
    const model = loadModel(dir, { dtype: 'float32', device: 'cpu', attention: 'eager' });
    model.requiresGrad_(true);
    const ids = torch.tensor([[0n, 0n, 5n, 9n, 11n, 40n], [7n, 8n, 9n, 10n, 12n, 13n]]);
    const mask = torch.tensor([[0n, 0n, 1n, 1n, 1n, 1n], [1n, 1n, 1n, 1n, 1n, 1n]]);
    const grads = (tape: torch.CheckpointTape | null): number[][] =>
      torch.tidy(() => {
        for (const p of model.parameters()) p.zeroGrad();
        const lp = model.tokenLogprobs({ inputIds: ids, attentionMask: mask }, tape ? { tape } : {});
        const loss = lp.sum();
        if (tape) tape.backward(loss);
        else loss.backward();
        return model.parameters().map((p) => (p.grad ? flat(p.grad) : []));
      });
    const plain = grads(null);
    const tape = new torch.CheckpointTape();
    const ckpt = grads(tape);
    tape.dispose();
    // Recomputed layers: the same float32 reductions again; BWD32 (helpers/tolerances.ts) of each tensor's
    // largest |gradient| bounds any difference in reduction order.
    plain.forEach((g, i) => assertClose(ckpt[i], g, BWD32 * Math.max(...g.map(Math.abs), 1e-30), 0, `${name} parameter ${i}`));
    model.dispose();
  });
}
