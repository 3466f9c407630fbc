// sppo-cflags: -O3 -fno-math-errno
// The elementwise loops of the fused CPU optimizer steps (optim.cc): plain C++ that the compiler
// vectorizes, built for AVX-512, AVX2 and the baseline (target_clones picks one when the addon loads),
// at -O3 and without errno from sqrt (the first line above: scripts/setup.mjs adds those flags for this
// file alone). Whether the compiler fuses a multiply-add differs by build, as in ATen's own kernels:
// a unit in the last place.
#include "fused_optim.h"

#include <cmath>

namespace sppo {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPPO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPPO_CLONES
#endif

// AdamW (torch::optim::AdamW, amsgrad off), per element:
//   p = p (1 - lr wd); m = m b1 + (1 - b1) g; v = v b2 + (1 - b2) g g; p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
template <typename T>
static inline void adamw(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n, const AdamWScalars<T>& c) {
  const T decay = c.decay, b1 = c.b1, omb1 = c.omb1, b2 = c.b2, omb2 = c.omb2, sbc2 = c.sbc2, eps = c.eps, nstep = c.nstep;
  for (int64_t i = 0; i < n; i++) {
    const T gi = g[i];
    const T mi = m[i] * b1 + gi * omb1;
    const T vi = v[i] * b2 + omb2 * gi * gi;
    p[i] = p[i] * decay + nstep * mi / (std::sqrt(vi) / sbc2 + eps);
    m[i] = mi;
    v[i] = vi;
  }
}

// RMSprop (torch::optim::RMSprop, not centered, no momentum), per element:
//   g = g + wd p; s = s a + (1 - a) g g; p = p - lr g / (sqrt(s) + eps)
template <typename T>
static inline void rmsprop(T* __restrict p, const T* __restrict g, T* __restrict s, int64_t n, const RMSpropScalars<T>& c) {
  const T wd = c.wd, a = c.alpha, oma = c.oma, eps = c.eps, nlr = c.nlr;
  for (int64_t i = 0; i < n; i++) {
    const T gi = g[i] + wd * p[i];
    const T si = s[i] * a + oma * gi * gi;
    s[i] = si;
    p[i] = p[i] + nlr * gi / (std::sqrt(si) + eps);
  }
}

SPPO_CLONES void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars<float>& c) { adamw(p, g, m, v, n, c); }
SPPO_CLONES void adamw_kernel(double* p, const double* g, double* m, double* v, int64_t n, const AdamWScalars<double>& c) { adamw(p, g, m, v, n, c); }
SPPO_CLONES void rmsprop_kernel(float* p, const float* g, float* s, int64_t n, const RMSpropScalars<float>& c) { rmsprop(p, g, s, n, c); }
SPPO_CLONES void rmsprop_kernel(double* p, const double* g, double* s, int64_t n, const RMSpropScalars<double>& c) { rmsprop(p, g, s, n, c); }

}  // namespace sppo
