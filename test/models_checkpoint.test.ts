// Gradient checkpointing of the layers (ForwardInput.tape / LogprobOptions.tape): the same gradients as
// a plain backward, for every fixture architecture, with left padding.
import { test } from 'node:test';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { assertClose, flat } from './helpers/torch.js';
import { fixtureCases } from './helpers/fixtures.js';

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
    plain.forEach((g, i) => assertClose(ckpt[i], g, 1e-6, 1e-4, `${name} parameter ${i}`));
    model.dispose();
  });
}
