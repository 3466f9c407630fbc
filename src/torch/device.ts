// The default device of new tensors (as torch.set_default_device): 'cpu' unless set, or unless the
// environment variable SPPO_DEVICE names another ('cuda', 'cuda:1'), which lets the same program and
// test suite run on a GPU.
let current = process.env.SPPO_DEVICE || 'cpu';

export function defaultDevice(): string {
  return current;
}

export function setDefaultDevice(device: string): void {
  current = device;
}
