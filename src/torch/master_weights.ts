// Mixed-precision master weights as an optimizer wrapper (DeepSpeed's bf16 optimizer, torch AMP's master
// params): the optimizer steps float32 copies of the bfloat16 / float16 parameters (its state float32 too),
// and the half-precision parameters are their rounding after each step. Float32 parameters are stepped as
// they are. Disabled (or with no half-precision parameter), it is the optimizer on the parameters themselves.
import { noGrad } from './autograd.js';
import type { Optimizer } from './optim.js';
import { keep, tidy } from './scope.js';
import type { Tensor } from './tensor.js';

const isHalf = (p: Tensor): boolean => p.dtype === 'bfloat16' || p.dtype === 'float16';

export class MasterWeights implements Disposable {
  /** The optimizer over the masters (or the parameters): give it to the LR scheduler. */
  readonly optimizer: Optimizer;
  readonly #params: Tensor[];
  /** The float32 copy of each half-precision parameter, the parameter itself otherwise; undefined when off. */
  readonly #masters: Tensor[] | undefined;

  /** `makeOptimizer` builds the inner optimizer over the tensors it is given. */
  constructor(params: Tensor[], makeOptimizer: (params: Tensor[]) => Optimizer, enabled = true) {
    this.#params = params;
    this.#masters = enabled && params.some(isHalf) ? params.map((p) => (isHalf(p) ? keep(p.detach().float()) : p)) : undefined;
    try {
      this.optimizer = makeOptimizer(this.#masters ?? params);
    } catch (e) {
      this.#freeMasters();
      throw e;
    }
  }

  /** The parameters' (clipped) gradients to the masters, the step there, the parameters rounded from them. */
  step(): void {
    const masters = this.#masters;
    const params = this.#params;
    if (masters) tidy(() => masters.forEach((m, i) => { if (m !== params[i]) { const grad = params[i]!.grad; m.grad = grad ? grad.float() : null; } }));
    this.optimizer.step();
    if (masters) noGrad(() => masters.forEach((m, i) => { if (m !== params[i]) params[i]!.copy_(m); }));
  }

  /** Drops the gradients of the optimizer's tensors and of the parameters. */
  zeroGrad(): void {
    this.optimizer.zeroGrad();
    if (this.#masters) for (const p of this.#params) p.zeroGrad();
  }

  #freeMasters(): void {
    this.#masters?.forEach((m, i) => m !== this.#params[i] && m.dispose());
  }

  /** Frees the optimizer's state and the masters. */
  [Symbol.dispose](): void {
    this.optimizer[Symbol.dispose]();
    this.#freeMasters();
  }
}
