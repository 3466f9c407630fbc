// Why a CUDA test does not run here, in one place, so that every skipped CUDA test says the same true thing:
// an addon without CUDA, a CUDA addon without a visible GPU (`npm run check:cuda` on a CPU machine), or a GPU that the
// suite was not asked to use (SPPO_DEVICE=cuda).
import * as torch from '../../src/torch/index.js';

/** false when the CUDA tests run (SPPO_DEVICE=cuda on a visible GPU), else the reason they are skipped. */
export function cudaSkipReason(): string | false {
  const version = torch.libtorchVersion();
  if (!torch.buildFeatures().cuda) return `needs a GPU: this addon is built against a libtorch without CUDA (${version})`;
  if (!torch.cuda.isAvailable()) return `needs a GPU: the addon is built with CUDA (libtorch ${version}) but no CUDA device is visible`;
  if (!torch.defaultDevice().startsWith('cuda')) return 'set SPPO_DEVICE=cuda to run the CUDA tests on this GPU';
  return false;
}
