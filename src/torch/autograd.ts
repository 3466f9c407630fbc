// Autograd beyond Tensor.backward(): grad-mode scopes, backward over several outputs, and gradient
// checkpointing (activations of a function recomputed in the backward pass instead of kept).
import { native } from './native.js';
import { callT, handles, Tensor } from './tensor.js';
import { keep, tidy } from './scope.js';

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
  fn: (...xs: Tensor[]) => Tensor[];
  /** The inputs: leaves as given; tensors from a graph as the tape's own alias of them (same graph). */
  inputs: Tensor[];
  /** What fn saw: the input itself when it is a leaf, else a detached alias. */
  args: Tensor[];
  /** fn's outputs (checkpoint: one; checkpointMany: several, e.g. a layer's output and its router logits). */
  outputs: Tensor[];
  /** What the tape made and frees at dispose(). */
  owned: Tensor[];
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
 * The tape owns what it needs until dispose() (its own references: the caller may dispose or scope its
 * tensors as usual), including tensors fn reads from outside that are not parameters (masks, tables):
 * pass them to hold(). fn must be deterministic (no dropout). Parameters it uses are leaves and receive
 * their gradients directly; other inputs are held by the tape until dispose().
 */
export class CheckpointTape implements Disposable {
  #segments: Segment[] = [];
  #held: Tensor[] = [];

  /** A reference of the tape's own to t, alive until dispose() (null stays null). */
  hold<T extends Tensor | null>(t: T): T {
    if (t === null) return t;
    const ref = keep(callT('alias', t.h));
    this.#held.push(ref);
    return ref as T;
  }

  checkpoint(fn: (...xs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
    return this.checkpointMany((...xs) => [fn(...xs)], ...inputs)[0]!;
  }

  /**
   * checkpoint for a function of several outputs: each is computed without a graph, and in backward the gradients
   * that reached any of them go through the recomputation together (a layer's output, and its router logits that an
   * auxiliary loss reads).
   */
  checkpointMany(fn: (...xs: Tensor[]) => Tensor[], ...inputs: Tensor[]): Tensor[] {
    const owned: Tensor[] = [];
    const mine = (t: Tensor): Tensor => {
      owned.push(keep(t));
      return t;
    };
    // Parameters (leaves that take gradients) are used as they are; any other input is held by an alias of
    // the tape's own, since the caller may free it before backward (e.g. the embeddings of a frozen model
    // under LoRA, a leaf without gradients).
    const own = inputs.map((x) => (x.isLeaf && x.requiresGrad ? x : mine(callT('alias', x.h))));
    const args = own.map((x, i) => (x === inputs[i] ? x : mine(x.detach().requiresGrad_(x.requiresGrad))));
    const outputs = noGrad(() => fn(...args)).map((o) => mine(o).requiresGrad_(true));
    this.#segments.push({ fn, inputs: own, args, outputs, owned });
    return outputs;
  }

  backward(loss: Tensor, grad?: Tensor): void {
    loss.backward(grad, { retainGraph: this.#segments.length > 0 });
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const s = this.#segments[i]!;
      tidy(() => {
        const gs = s.outputs.map((o) => o.grad);
        if (gs.every((g) => !g)) return;
        const ys = enableGrad(() => s.fn(...s.args));
        const reached = ys.map((y, j) => [y, gs[j]] as const).filter((yg): yg is readonly [Tensor, Tensor] => yg[1] !== null);
        native.backward(handles(reached.map(([y]) => y)), handles(reached.map(([, g]) => g)), false, false);
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
    for (const s of this.#segments) for (const t of s.owned) t.dispose();
    for (const t of this.#held) t.dispose();
    this.#segments = [];
    this.#held = [];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
