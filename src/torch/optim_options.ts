// An optimizer's options for a parameter group: the optimizers' API (optim.ts re-exports it) and what the addon
// takes with each group (native.ts OptimGroupSpec), in a file of its own so that neither imports the other.
export interface GroupOptions {
  lr?: number;
  weightDecay?: number;
  /** AdamW */
  betas?: [number, number];
  eps?: number;
  amsgrad?: boolean;
  /** RMSprop: smoothing constant of the squared-gradient average */
  alpha?: number;
  centered?: boolean;
  /** RMSprop and SGD */
  momentum?: number;
  /** SGD */
  dampening?: number;
  nesterov?: boolean;
}
