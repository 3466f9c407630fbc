// Tolerances of the floating-point tests, derived from the unit roundoff of the dtype and the size of the
// computation (reduction length, depth), not from what one CPU's kernels happened to give. Set
// SPPO_PRINT_ERRORS=1 to print each measured error beside its limit (e.g. under ATEN_CPU_CAPABILITY=default
// / avx2 / avx512, to see how near the edge a limit is).

/** float64 unit roundoff. */
export const EPS64 = 2 ** -53;
/** float32 unit roundoff. */
export const EPS32 = 2 ** -24;
/** bfloat16 unit roundoff (8 significand bits). */
export const EPS_BF16 = 2 ** -8;

/**
 * Summed reduction lengths along one path through a float32 forward pass of the hf-tiny fixtures
 * (hidden d = 64, MLP width <= 176, sequence T <= 20, vocabulary V = 512, L <= 3 layers):
 * (L + 1) * (d + d_ff + d + T) + V = 4 * 324 + 512 = 1808, rounded up to 2048. Two float32 kernels that sum
 * in different orders (ATen's vectorized widths, OpenBLAS blocking, PyTorch's own kernels for the HF
 * fixtures) differ by at most ~K * EPS32 * sum|terms| in each sum, and the normalizations keep each stage's
 * sum|terms| within a small factor of the largest output of that stage, so the relative error of an output
 * (against the largest |output|) is <= K * EPS32.
 */
export const FIXTURE_K = 2048;
/** Forward pass of a fixture in float32, relative to the largest |output|: 2048 * 2^-24 = 1.2e-4. */
export const FWD32 = FIXTURE_K * EPS32;
/**
 * Gradients: the backward pass runs the same reductions again in reverse (2K) plus the sums over the
 * batch's token positions (<= 128 more per weight): 4 * FWD32 = 4.9e-4, normwise (relative L2 or against
 * the tensor's largest |gradient|).
 */
export const BWD32 = 4 * FWD32;

/** Prints a measured error beside its limit when SPPO_PRINT_ERRORS is set. */
export function reportError(what: string, err: number, limit: number): void {
  if (process.env.SPPO_PRINT_ERRORS) console.log(`[error] ${what}: ${err.toExponential(3)} (limit ${limit.toExponential(3)}, ${(err / limit * 100).toFixed(1)}%)`);
}

/**
 * Absolute error of one float32 log-prob of a fixture model: a logit minus a logsumexp, each within
 * FWD32 * max|logit|, and the fixtures' largest |logit| is below 16 (about 6-10 measured): 2 * FWD32 * 16 = 3.9e-3.
 * A wrong token, a shifted position or a missing mask changes a log-prob by O(1) and still fails.
 */
export const LOGPROB32 = 2 * FWD32 * 16;

/**
 * One bfloat16 log-prob of a fixture model against another computation of it with the same weights whose reductions
 * run in another order (a KV cache, a static cache's capacity, another kernel): the activations are rounded at the
 * same ~10 (L + 1) = 30 points, and where the order differs a rounding (relative u = 2^-8) may differ, unbiased, so in
 * quadrature sqrt(30) * u of the logit scale (< 16): 0.34. A wrong position is off by nats.
 */
export const LOGPROB_BF16 = Math.sqrt(30) * EPS_BF16 * 16;

/**
 * float64 closed forms (win rates, games, schedules, optimizer steps on small tensors) are checked to 1e-12:
 * a few dozen operations on values below 100 stay within 50 * 100 * EPS64 = 5.6e-13 of the exact result.
 * Values that are exact in binary (0.5, 0.25, integers) are compared exactly where the code is exact.
 */
export const F64_CLOSED_FORM = 1e-12;
