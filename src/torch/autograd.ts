// Autograd beyond Tensor.backward(): grad-mode scopes, backward over several outputs, and gradient
// checkpointing (activations of a function recomputed in the backward pass instead of kept).
import { native } from './native.js';
import { handles, Tensor } from './tensor.js';
import { tidy } from './scope.js';

/** Runs fn with gradient recording off (as torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn with gradient recording on, also inside noGrad. */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/** Backward from several outputs at once, each with its gradient (null: ones for a scalar). */
export function backward(outputs: Tensor[], grads?: (Tensor | null)[], opts: { retainGraph?: boolean } = {}): void {
  native.backward(handles(outputs), grads ? grads.map((g) => (g ? g.h : null)) : null, opts.retainGraph ?? false, false);
}

interface Segment {
  fn: (...xs: Tensor[]) => Tensor;
  inputs: Tensor[];
  /** What fn saw: the input itself when it is a leaf, else a detached alias. */
  args: Tensor[];
  output: Tensor;
}

/**
 * Gradient checkpointing. Functions run through `checkpoint` keep no activations: their output is
 * computed without a graph, and `backward` recomputes each one (last first) with a graph, pushes the
 * output's gradient through it, and on into whatever produced its inputs. Use it for a stack of
 * transformer layers: memory grows with the number of layers, not with their activations.
 *
 *   const tape = new CheckpointTape();
 *   let h = embed(ids);
 *   for (const layer of layers) h = tape.checkpoint((x) => layer.forward(x), h);
 *   const loss = lossOf(h);
 *   tape.backward(loss);       // gradients in every parameter, as loss.backward() would give
 *   tape.dispose();
 *
 * fn must be deterministic (no dropout) and take and return tensors. Parameters it uses are leaves
 * and receive their gradients directly.
 */
export class CheckpointTape implements Disposable {
  #segments: Segment[] = [];

  checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
    const args = inputs.map((x) => (x.isLeaf ? x : x.detach().requiresGrad_(x.requiresGrad)));
    const output = noGrad(() => fn(...args));
    output.requiresGrad_(true);
    this.#segments.push({ fn, inputs, args, output });
    return output;
  }

  backward(loss: Tensor, grad?: Tensor): void {
    loss.backward(grad, { retainGraph: this.#segments.length > 0 });
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const s = this.#segments[i]!;
      tidy(() => {
        const g = s.output.grad;
        if (!g) return;
        const y = enableGrad(() => s.fn(...s.args));
        y.backward(g);
        // Inputs that came from a graph (not leaves): continue the backward pass into it.
        const outs: Tensor[] = [];
        const grads: Tensor[] = [];
        s.inputs.forEach((x, j) => {
          const a = s.args[j]!;
          if (a === x) return;
          const ga = a.grad;
          if (ga) {
            outs.push(x);
            grads.push(ga);
          }
          a.zeroGrad();
        });
        if (outs.length) native.backward(handles(outs), handles(grads), i > 0, false);
      });
    }
  }

  dispose(): void {
    for (const s of this.#segments) {
      s.output.dispose();
      s.args.forEach((a, j) => a !== s.inputs[j] && a.dispose());
    }
    this.#segments = [];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
