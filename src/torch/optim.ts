// Optimizers: libtorch's torch::optim AdamW, RMSprop and SGD, with parameter groups. Their state
// (moments, step counts) can be read out as tensors and saved with safetensors, and loaded back.
import { native, type Handle, type OptimGroupSpec } from './native.js';
import type { GroupOptions } from './optim_options.js';
import { Tensor, handles } from './tensor.js';
import { loadSafetensors, saveSafetensors } from './safetensors.js';

export type { GroupOptions };
export interface ParamGroup extends GroupOptions {
  params: Tensor[];
}
export type OptimizerKind = 'adamw' | 'rmsprop' | 'sgd';

/** Defaults as PyTorch's (torch.optim.AdamW: lr 1e-3, weight decay 1e-2; RMSprop: lr 1e-2, alpha 0.99; SGD: lr 1e-2). */
export class Optimizer implements Disposable {
  readonly kind: OptimizerKind;
  readonly groups: ParamGroup[];
  readonly #h: Handle;

  constructor(kind: OptimizerKind, params: Tensor[] | ParamGroup[], defaults: GroupOptions = {}) {
    this.kind = kind;
    const groups: ParamGroup[] = params.length && !(params[0] instanceof Tensor) ? (params as ParamGroup[]) : [{ params: params as Tensor[] }];
    this.groups = groups.map((g) => ({ ...defaults, ...g }));
    const specs: OptimGroupSpec[] = this.groups.map((g) => ({ ...g, params: handles(g.params) }));
    this.#h = native.optimNew(kind, specs);
  }

  /** One update from the parameters' current gradients. */
  step(): void {
    native.optimStep(this.#h);
  }
  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    native.optimZeroGrad(this.#h);
  }
  getLr(group = 0): number {
    return native.optimGetLr(this.#h, group);
  }
  setLr(lr: number, group?: number): void {
    if (group !== undefined) native.optimSetLr(this.#h, group, lr);
    else for (let i = 0; i < this.groups.length; i++) native.optimSetLr(this.#h, i, lr);
  }
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** The state as named tensors (`<param index>.<name>`) and the step counts. The caller disposes the tensors. */
  stateDict(): { tensors: Map<string, Tensor>; steps: (number | null)[] } {
    const st = native.optimGetState(this.#h);
    const tensors = new Map<string, Tensor>();
    const steps = st.map((s, i) => {
      if (!s) return null;
      for (const [name, h] of Object.entries(s.tensors)) tensors.set(`${i}.${name}`, new Tensor(h));
      return s.step;
    });
    return { tensors, steps };
  }

  loadStateDict(sd: { tensors: Map<string, Tensor>; steps: (number | null)[] }): void {
    const n = this.params.length;
    if (sd.steps.length !== n) throw new Error(`optimizer state is for ${sd.steps.length} parameters, this optimizer has ${n}`);
    const list = sd.steps.map((step, i) => {
      if (step === null) return null;
      const tensors: Record<string, Handle> = {};
      for (const [k, t] of sd.tensors) {
        const dot = k.indexOf('.');
        if (Number(k.slice(0, dot)) === i) tensors[k.slice(dot + 1)] = t.h;
      }
      return { step, tensors };
    });
    native.optimSetState(this.#h, list);
  }

  /** Saves the state to `path` (safetensors, with the step counts and kind in its metadata). */
  save(path: string): void {
    const sd = this.stateDict();
    try {
      saveSafetensors(path, sd.tensors, { kind: this.kind, steps: JSON.stringify(sd.steps) });
    } finally {
      for (const t of sd.tensors.values()) t.dispose();
    }
  }

  load(path: string): void {
    const { tensors, metadata } = loadSafetensors(path);
    try {
      if (metadata.kind !== this.kind) throw new Error(`${path}: optimizer state of '${metadata.kind}', this optimizer is '${this.kind}'`);
      let steps: (number | null)[];
      try {
        steps = JSON.parse(metadata.steps ?? '');
      } catch {
        throw new Error(`${path}: no valid 'steps' in the metadata; not an sppo optimizer state`);
      }
      this.loadStateDict({ tensors, steps });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** Frees the native optimizer and its state (moments, step counts) now; the parameters belong to their model.
   * Any later call but dispose() throws. `using opt = AdamW(...)` disposes at the end of the block. */
  dispose(): void {
    native.optimFree(this.#h);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Native optimizers alive (not yet disposed or collected), for leak checks. */
export function liveOptimizers(): number {
  return native.liveOptimizers();
}

export const AdamW = (params: Tensor[] | ParamGroup[], opts: GroupOptions = {}): Optimizer => new Optimizer('adamw', params, opts);
export const RMSprop = (params: Tensor[] | ParamGroup[], opts: GroupOptions = {}): Optimizer => new Optimizer('rmsprop', params, opts);
export const SGD = (params: Tensor[] | ParamGroup[], opts: GroupOptions = {}): Optimizer => new Optimizer('sgd', params, opts);

/** Scales all gradients so that their joint norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  return native.clipGradNorm(handles(params), maxNorm, normType);
}

