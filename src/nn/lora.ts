// LoRA (Hu et al. 2021) as PEFT's `lora.Linear` computes it: a frozen linear layer W plus a low-rank update,
//
//   y = x W^T + b + scaling * B(A(dropout(x)))      A: [r, in] (kaiming-uniform, a = sqrt 5), B: [out, r] (zeros)
//   scaling = alpha / r,  or alpha / sqrt(r) with rsLoRA
//
// on the layers whose dotted module name matches the target modules (PEFT's rule: a list matches a name equal to
// an entry or ending in "." + entry; a single string is a regular expression matching the whole name; "all-linear"
// is every linear layer but the output head). GPT-2's Conv1D layers store W as [in, out] (PEFT's fan_in_fan_out):
// A and B keep the shapes above, and the merged delta is transposed to the weight's layout.
//
// The adapters are not parameters of the model (its namedParameters(), checkpoints and loadWeights are those of
// the base model): a `Lora` holds them, hooked into the layers (Linear.adapter / Conv1D.adapter). Only A and B
// take gradients, so an optimizer over lora.parameters() holds state of the adapters' size.
//
// Dropout draws its mask from a generator seeded per (pass, layer), so that gradient checkpointing, which runs a
// layer's forward again in the backward pass, sees the same mask; call nextPass() before each forward pass.
import { Generator, keep, linear, noGrad, rand, tidy, zeros, type DType, type Tensor } from '../torch/index.js';
import { mixSeed } from '../util/rng.js';
import { Conv1D, Linear, type LayerAdapter } from './layers.js';
import type { Module } from './module.js';

export interface LoraOptions {
  /** Rank (PEFT's `r`). */
  r: number;
  /** PEFT's `lora_alpha`. */
  alpha: number;
  /** Dropout on the input of A (PEFT's `lora_dropout`; default 0). */
  dropout?: number;
  /** Module names (suffix match), a regular expression (full match), or 'all-linear'. */
  targetModules: string[] | string;
  /** scaling = alpha / sqrt(r) instead of alpha / r (PEFT's `use_rslora`). */
  rslora?: boolean;
  /** Seed of A's initialisation and of the dropout masks (default 0). */
  seed?: number;
  /** dtype of A and B (default float32, whatever the base model's; the forward casts them to the input's). */
  dtype?: DType;
}

export class LoraError extends Error {
  override name = 'LoraError';
}

/** PEFT's `target_modules` shorthand for every linear layer but the output layer. */
export const ALL_LINEAR = 'all-linear';

export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** The layers LoRA adapts. */
export type LoraTarget = Linear | Conv1D;

const isTarget = (m: Module): m is LoraTarget => m instanceof Linear || m instanceof Conv1D;

/** Whether a dotted module name is one of the target modules (PEFT's check_target_module_exists). */
export function matchesTarget(name: string, targets: string[] | string): boolean {
  if (typeof targets === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new LoraError(`target modules '${targets}' is not a valid regular expression: ${(e as Error).message}`);
    }
    return re.test(name);
  }
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

function checkOptions(o: LoraOptions): void {
  if (!Number.isInteger(o.r) || o.r < 1) throw new LoraError(`lora: r must be an integer >= 1, got ${o.r}`);
  if (!(Number.isFinite(o.alpha) && o.alpha > 0)) throw new LoraError(`lora: alpha must be a number > 0, got ${o.alpha}`);
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new LoraError(`lora: dropout must be in [0, 1), got ${p}`);
  if (Array.isArray(o.targetModules) ? o.targetModules.length === 0 : !o.targetModules) throw new LoraError('lora: no target modules');
}

/**
 * The layers that target modules select, with their dotted names (PEFT's rules; see matchesTarget). Needs no
 * weights (a model of declared shapes will do). Errors when none matches, or a matching module is not a linear layer.
 */
export function loraTargets(model: Module, t: string[] | string): [string, LoraTarget][] {
  const all = [...model.namedModules()];
  const found: [string, LoraTarget][] = [];
  if (t === ALL_LINEAR) {
    // PEFT leaves out the output embedding layer (lm_head).
    const head = all.find(([n]) => n === 'lm_head')?.[1];
    for (const [name, m] of all) if (isTarget(m) && m !== head) found.push([name, m]);
  } else {
    for (const [name, m] of all) {
      if (!name || !matchesTarget(name, t)) continue;
      if (!isTarget(m)) throw new LoraError(`lora: target module '${name}' is a ${m.constructor.name}; LoRA adapts linear layers (Linear, GPT-2's Conv1D) only`);
      found.push([name, m]);
    }
  }
  if (!found.length) {
    const names = [...new Set(all.filter(([n, m]) => n && isTarget(m)).map(([n]) => n.split('.').at(-1)!))];
    throw new LoraError(`lora: target modules ${JSON.stringify(t)} match no layer of the model (its linear layers are named: ${names.join(', ')})`);
  }
  return found;
}

/** One adapted layer: A [r, in] and B [out, r]. */
export class LoraLayer implements LayerAdapter {
  A: Tensor;
  B: Tensor;
  /** Whether scaling * B A is in the base weight (the adapter then adds nothing in forward). */
  merged = false;
  constructor(readonly name: string, readonly layer: LoraTarget, readonly index: number, readonly owner: Lora, A: Tensor, B: Tensor) {
    this.A = A;
    this.B = B;
  }

  /** True for GPT-2's Conv1D, whose weight is [in, out] (PEFT's fan_in_fan_out). */
  get fanInFanOut(): boolean {
    return this.layer instanceof Conv1D;
  }

  addTo(x: Tensor, y: Tensor): Tensor {
    if (this.merged || !this.owner.enabled) return y;
    return tidy(() => {
      const a = this.A.dtype === x.dtype ? this.A : this.A.to(x.dtype);
      const b = this.B.dtype === x.dtype ? this.B : this.B.to(x.dtype);
      const h = this.layer.training && this.owner.dropout > 0 ? this.owner.drop(x, this.index) : x;
      return y.add(linear(linear(h, a), b).mul(this.owner.scaling));
    });
  }

  /** scaling * B A in float32, in the layout of the layer's weight ([out, in], or [in, out] for Conv1D). */
  delta(): Tensor {
    return noGrad(() => tidy(() => {
      const d = this.B.float().matmul(this.A.float()).mul(this.owner.scaling);
      return this.fanInFanOut ? d.transpose(0, 1).contiguous() : d;
    }));
  }

  /** W += scaling * B A (computed in float32, rounded once to W's dtype). */
  merge(): void {
    if (this.merged) return;
    this.#shift(1);
    this.merged = true;
  }

  /** W -= scaling * B A (exact only up to W's rounding when W is not float32). */
  unmerge(): void {
    if (!this.merged) return;
    this.#shift(-1);
    this.merged = false;
  }

  #shift(sign: 1 | -1): void {
    noGrad(() => tidy(() => {
      const w = this.layer.weight;
      const d = this.delta();
      const next = w.float().add(d, sign).to(w.dtype);
      w.copy_(next);
    }));
  }
}

/**
 * The LoRA adapters of a model. `Lora.attach(model, opts)` adds fresh ones (B = 0: the model's output is
 * unchanged); `lora.parameters()` are what an optimizer trains; `lora.disabled(fn)` runs fn on the base model;
 * `lora.mergeAndDetach()` writes them into the base weights and removes them.
 */
export class Lora implements Disposable {
  readonly layers: LoraLayer[] = [];
  readonly r: number;
  readonly alpha: number;
  readonly dropout: number;
  readonly rslora: boolean;
  readonly targetModules: string[] | string;
  readonly scaling: number;
  readonly seed: number;
  /** Adapters on (true) or bypassed (false). */
  enabled = true;
  #pass = 0;
  #gens = new Map<string, Generator>();
  #disposed = false;

  private constructor(opts: LoraOptions) {
    this.r = opts.r;
    this.alpha = opts.alpha;
    this.dropout = opts.dropout ?? 0;
    this.rslora = opts.rslora ?? false;
    this.targetModules = opts.targetModules;
    this.scaling = loraScaling(opts.r, opts.alpha, this.rslora);
    this.seed = opts.seed ?? 0;
  }

  /**
   * Adds adapters to every target layer of a model: A uniform in +-1/sqrt(in) (torch's kaiming_uniform_ with
   * a = sqrt 5, as PEFT), B zeros. Errors when no layer matches, when a matching module is not a linear layer,
   * or when a layer already has an adapter.
   */
  static attach(model: Module, opts: LoraOptions): Lora {
    checkOptions(opts);
    const lora = new Lora(opts);
    const found = loraTargets(model, lora.targetModules);
    const gen = new Generator(lora.seed, 'cpu');
    const dtype = opts.dtype ?? 'float32';
    try {
      noGrad(() => {
        found.forEach(([name, layer], i) => {
          const device = layer.weight.device;
          const bound = 1 / Math.sqrt(layer.inFeatures);
          const A = keep(tidy(() => rand([lora.r, layer.inFeatures], { generator: gen, device: 'cpu' }).mul(2 * bound).sub(bound).to(dtype).to(device)));
          const B = keep(zeros([layer.outFeatures, lora.r], { dtype, device }));
          lora.#add(name, layer, i, A, B);
        });
      });
    } catch (e) {
      lora.dispose();
      throw e;
    }
    return lora;
  }

  /**
   * Adds adapters with given weights: `tensors` maps each adapted layer's dotted name to its A [r, in] and
   * B [out, r] (taken over). The layers are exactly the named ones; shapes are checked.
   */
  static fromWeights(model: Module, opts: LoraOptions, tensors: Map<string, { A: Tensor; B: Tensor }>, where = 'adapter'): Lora {
    checkOptions(opts);
    const lora = new Lora(opts);
    const byName = new Map([...model.namedModules()]);
    try {
      let i = 0;
      for (const [name, { A, B }] of tensors) {
        const m = byName.get(name);
        if (!m) throw new LoraError(`${where}: the model has no module '${name}'`);
        if (!isTarget(m)) throw new LoraError(`${where}: '${name}' is a ${m.constructor.name}; LoRA adapts linear layers (Linear, GPT-2's Conv1D) only`);
        if (A.shape.length !== 2 || A.shape[0] !== lora.r || A.shape[1] !== m.inFeatures) {
          throw new LoraError(`${where}: '${name}.lora_A.weight' has shape [${A.shape.join(', ')}], expected [${lora.r}, ${m.inFeatures}] (r, in_features)`);
        }
        if (B.shape.length !== 2 || B.shape[0] !== m.outFeatures || B.shape[1] !== lora.r) {
          throw new LoraError(`${where}: '${name}.lora_B.weight' has shape [${B.shape.join(', ')}], expected [${m.outFeatures}, ${lora.r}] (out_features, r)`);
        }
        const device = m.weight.device;
        const dtype = opts.dtype ?? A.dtype;
        const place = (t: Tensor): Tensor => {
          if (t.dtype === dtype && t.device === device) return keep(t);
          const moved = keep(noGrad(() => t.to(dtype).to(device)));
          t.dispose();
          return moved;
        };
        lora.#add(name, m, i++, place(A), place(B));
      }
      if (!lora.layers.length) throw new LoraError(`${where}: no adapter weights`);
    } catch (e) {
      lora.dispose();
      for (const { A, B } of tensors.values()) {
        if (!A.isDisposed) A.dispose();
        if (!B.isDisposed) B.dispose();
      }
      throw e;
    }
    return lora;
  }

  #add(name: string, layer: LoraTarget, index: number, A: Tensor, B: Tensor): void {
    if (layer.adapter) throw new LoraError(`lora: '${name}' already has an adapter`);
    A.requiresGrad_(true);
    B.requiresGrad_(true);
    const l = new LoraLayer(name, layer, index, this, A, B);
    layer.adapter = l;
    this.layers.push(l);
  }

  /** A and B of every adapted layer (what the optimizer trains). */
  parameters(): Tensor[] {
    return this.layers.flatMap((l) => [l.A, l.B]);
  }

  /** `<layer>.lora_A.weight` / `<layer>.lora_B.weight` with the layers' dotted names (PEFT's keys less `base_model.model.`). */
  namedParameters(): [string, Tensor][] {
    return this.layers.flatMap((l) => [[`${l.name}.lora_A.weight`, l.A], [`${l.name}.lora_B.weight`, l.B]] as [string, Tensor][]);
  }

  numParameters(): number {
    return this.layers.reduce((n, l) => n + l.A.numel + l.B.numel, 0);
  }

  /** Runs fn on the base model (adapters bypassed), e.g. the reference policy's log-probs. */
  disabled<T>(fn: () => T): T {
    const was = this.enabled;
    this.enabled = false;
    try {
      return fn();
    } finally {
      this.enabled = was;
    }
  }

  /** Starts a new forward pass: the dropout masks of the next pass are drawn afresh (and redrawn alike by a checkpointed recomputation). */
  nextPass(): void {
    this.#pass++;
  }

  /** Inverted dropout of x with the mask of (this pass, layer index). */
  drop(x: Tensor, index: number): Tensor {
    let gen = this.#gens.get(x.device);
    if (!gen) this.#gens.set(x.device, (gen = new Generator(0, x.device)));
    gen.manualSeed(mixSeed(this.seed, 0x10ea, this.#pass, index));
    return tidy(() => {
      const keepMask = rand(x.shape, { generator: gen, device: x.device, dtype: 'float32' }).ge(this.dropout);
      return x.mul(keepMask.to(x.dtype)).div(1 - this.dropout);
    });
  }

  merge(): void {
    for (const l of this.layers) l.merge();
  }
  unmerge(): void {
    for (const l of this.layers) l.unmerge();
  }

  /**
   * The base weight of parameter `name` (`<layer>.weight`) with its layer's adapter merged, as a new tensor
   * (the model is unchanged), or undefined for parameters of layers without an adapter (or merged already).
   */
  mergedWeight(name: string, t: Tensor): Tensor | undefined {
    if (!name.endsWith('.weight')) return undefined;
    const l = this.#byName().get(name.slice(0, -'.weight'.length));
    if (!l || l.merged || l.layer.weight !== t) return undefined;
    return noGrad(() => tidy(() => t.float().add(l.delta()).to(t.dtype)));
  }

  #index: Map<string, LoraLayer> | undefined;
  #byName(): Map<string, LoraLayer> {
    if (!this.#index || this.#index.size !== this.layers.length) this.#index = new Map(this.layers.map((l) => [l.name, l]));
    return this.#index;
  }

  /** Writes the adapters into the base weights and removes them from the model (the model is then plain). */
  mergeAndDetach(): void {
    this.merge();
    this.dispose();
  }

  /** Removes the adapters from the model (unmerged ones are dropped, merged ones stay in the weights) and frees A and B. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const l of this.layers) {
      if (l.layer.adapter === l) l.layer.adapter = null;
      l.A.dispose();
      l.B.dispose();
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
