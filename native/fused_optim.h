// The elementwise kernels of the fused CPU optimizer steps (fused_optim.cc), called by optim.cc on one
// contiguous chunk of a parameter, its gradient and its state at a time.
#pragma once

#include <cstdint>

namespace sppo {

template <typename T>
struct AdamWScalars {
  T decay, b1, omb1, b2, omb2, sbc2, eps, nstep;  // 1 - lr wd, b1, 1 - b1, b2, 1 - b2, sqrt(bias corr. 2), eps, -lr / bias corr. 1
};
template <typename T>
struct RMSpropScalars {
  T wd, alpha, oma, eps, nlr;  // wd, alpha, 1 - alpha, eps, -lr
};

void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars<float>& c);
void adamw_kernel(double* p, const double* g, double* m, double* v, int64_t n, const AdamWScalars<double>& c);
void rmsprop_kernel(float* p, const float* g, float* s, int64_t n, const RMSpropScalars<float>& c);
void rmsprop_kernel(double* p, const double* g, double* s, int64_t n, const RMSpropScalars<double>& c);

}  // namespace sppo
