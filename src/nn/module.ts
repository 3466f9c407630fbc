// Module: the base of every layer and model. Parameters and submodules are registered under the names
// Hugging Face uses (`model.layers.0.self_attn.q_proj.weight`), so a checkpoint's tensors map onto a
// module tree one to one. Parameters are declared with their shape and stay empty until loaded (or
// initialised), so that a 7B model is never allocated twice.
import { defaultDevice, full, Generator as TorchGenerator, isFloating, keep, noGrad, randn, tidy, type DType, type Tensor, type WeightFolder } from '../torch/index.js';

export interface LoadOptions {
  dtype?: DType;
  device?: string;
  /** Checkpoint tensors the model does not use that are not an error (default: none). */
  ignore?: (name: string) => boolean;
  /** The checkpoint's name of a parameter (default: the same; a multimodal folder's language model has a prefix). */
  rename?: (name: string) => string;
}

export class WeightError extends Error {
  override name = 'WeightError';
}

interface ParamSlot {
  field: string;
  shape: number[];
}

export abstract class Module {
  training = false;
  readonly #params = new Map<string, ParamSlot>();
  readonly #children = new Map<string, Module>();

  /**
   * Declares a parameter: `this.weight = this.param('weight', [out, in])`. It holds no tensor until the
   * module is loaded or initialised (the placeholder must not be used before).
   */
  protected param(name: string, shape: number[], field = name): Tensor {
    this.#params.set(name, { field, shape });
    return undefined as unknown as Tensor;
  }

  /** Registers a submodule under a name: `this.mlp = this.module('mlp', new Mlp(...))`. */
  protected module<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  /** Registers a list of submodules named 0, 1, ... under `name` (`layers.0`, `layers.1`, ...). */
  protected moduleList<M extends Module>(name: string, ms: M[]): M[] {
    const list = new ModuleList(ms);
    this.#children.set(name, list);
    return ms;
  }

  #get(slot: ParamSlot): Tensor | undefined {
    return (this as unknown as Record<string, Tensor | undefined>)[slot.field];
  }
  #set(slot: ParamSlot, t: Tensor): void {
    (this as unknown as Record<string, Tensor>)[slot.field] = t;
  }

  /** Declared parameters with their HF names and shapes (loaded or not). */
  *declared(prefix = ''): Generator<[string, number[]]> {
    for (const [name, slot] of this.#params) yield [prefix + name, slot.shape];
    for (const [name, child] of this.#children) yield* child.declared(`${prefix}${name}.`);
  }

  /** This module and every submodule with their dotted names (this one as ''), depth first, as torch's named_modules(). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *#slots(prefix = ''): Generator<[string, Module, ParamSlot]> {
    for (const [name, slot] of this.#params) yield [prefix + name, this, slot];
    for (const [name, child] of this.#children) yield* child.#slots(`${prefix}${name}.`);
  }

  /** Parameters with their HF names, in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, m, slot] of this.#slots(prefix)) {
      const t = m.#get(slot);
      if (!t) throw new WeightError(`parameter '${name}' is not loaded`);
      out.push([name, t]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The total number of parameter elements. */
  numParameters(): number {
    let n = 0;
    for (const [, shape] of this.declared()) n += shape.reduce((a, b) => a * b, 1);
    return n;
  }

  #replace(m: Module, slot: ParamSlot, t: Tensor): void {
    const old = m.#get(slot);
    m.#set(slot, keep(t));
    if (old && old !== t) old.dispose();
  }

  /**
   * Loads every declared parameter from a checkpoint folder (cast to `dtype`, moved to `device`). Errors
   * name the tensor: missing from the checkpoint, or of another shape (both shapes given); checkpoint
   * tensors that no parameter takes are an error too, unless `ignore` accepts them.
   */
  loadWeights(folder: WeightFolder, opts: LoadOptions = {}): void {
    const wanted = new Set<string>();
    const key = opts.rename ?? ((n: string) => n);
    for (const [param, , slot] of this.#slots()) {
      const name = key(param);
      wanted.add(name);
      const e = folder.entry(name);
      if (!e) throw new WeightError(`${folder.dir}: the checkpoint has no tensor '${name}' (expected shape [${slot.shape.join(', ')}])`);
      if (e.shape.length !== slot.shape.length || e.shape.some((s, i) => s !== slot.shape[i])) {
        throw new WeightError(`${folder.dir}: tensor '${name}' has shape [${e.shape.join(', ')}], the model expects [${slot.shape.join(', ')}]`);
      }
    }
    const extra = folder.names.filter((n) => !wanted.has(n) && !(opts.ignore?.(n) ?? false));
    if (extra.length) throw new WeightError(`${folder.dir}: the checkpoint has tensors the model does not use: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` (and ${extra.length - 5} more)` : ''}`);
    for (const [param, m, slot] of this.#slots()) {
      const name = key(param);
      const e = folder.entry(name)!;
      const dtype = opts.dtype && isFloating(e.dtype) ? opts.dtype : undefined;
      this.#replace(m, slot, folder.load(name, { dtype, device: opts.device }));
    }
  }

  /** Sets parameters from named tensors (taken over by the module; shapes checked). */
  setParameters(tensors: Map<string, Tensor>): void {
    for (const [name, m, slot] of this.#slots()) {
      const t = tensors.get(name);
      if (!t) continue;
      if (t.shape.length !== slot.shape.length || t.shape.some((s, i) => s !== slot.shape[i])) {
        throw new WeightError(`tensor '${name}' has shape [${t.shape.join(', ')}], the model expects [${slot.shape.join(', ')}]`);
      }
      this.#replace(m, slot, t);
    }
  }

  /**
   * Random initialisation as transformers' `_init_weights`: normal(0, std) for matrices and embeddings,
   * ones for norm weights (zeros where `zeroInit(name)` says so: Gemma's 1 + w norms), zeros for biases.
   */
  initWeights(opts: { std?: number; seed?: number; dtype?: DType; device?: string; zeroInit?: (name: string) => boolean } = {}): void {
    const std = opts.std ?? 0.02;
    const dtype = opts.dtype ?? 'float32';
    const gen = new TorchGenerator(opts.seed ?? 0, 'cpu');
    const device = opts.device ?? defaultDevice();
    noGrad(() => {
      for (const [name, m, slot] of this.#slots()) {
        const t = tidy(() => {
          const isNorm = slot.shape.length === 1 && !name.endsWith('.bias') && /norm|ln_/i.test(name);
          if (slot.shape.length === 1) {
            const fill = isNorm && !(opts.zeroInit?.(name) ?? false) ? 1 : 0;
            return full(slot.shape, fill, { dtype, device });
          }
          return randn(slot.shape, { dtype: 'float32', generator: gen, device: 'cpu' }).mul(std).to(dtype).to(device);
        });
        this.#replace(m, slot, t);
      }
    });
  }

  /** Casts (floating parameters only) or moves every parameter. */
  to(target: { dtype?: DType; device?: string }): this {
    noGrad(() => {
      for (const [, m, slot] of this.#slots()) {
        const t = m.#get(slot);
        if (!t) continue;
        let n = t;
        if (target.dtype && isFloating(t.dtype) && t.dtype !== target.dtype) n = n.to(target.dtype);
        if (target.device && n.device !== target.device) {
          const moved = n.to(target.device);
          if (n !== t) n.dispose();
          n = moved;
        }
        if (n !== t) this.#replace(m, slot, n);
      }
    });
    return this;
  }

  /** Turns gradient recording on or off for every parameter. */
  requiresGrad_(on = true): this {
    for (const t of this.parameters()) t.requiresGrad_(on);
    return this;
  }

  train(on = true): this {
    this.training = on;
    for (const c of this.#children.values()) c.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const [, m, slot] of this.#slots()) {
      const t = m.#get(slot);
      if (t) t.dispose();
      (m as unknown as Record<string, unknown>)[slot.field] = undefined;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

class ModuleList<M extends Module> extends Module {
  constructor(ms: M[]) {
    super();
    ms.forEach((m, i) => this.module(String(i), m));
  }
}

