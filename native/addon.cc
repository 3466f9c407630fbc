// The sppo native addon: a thin Node-API layer over libtorch (see tensor.cc, optim.cc, profiler.cc and distributed.cc).
#include "common.h"

#include <torch/cuda.h>

namespace sppo {

void init_distributed(Napi::Env env, Napi::Object exports);  // distributed.cc

static Napi::Value cuda_synchronize(const Napi::CallbackInfo& info) {
  if (torch::cuda::is_available()) {
    guard(info.Env(), "cuda.synchronize", [&] {
      torch::cuda::synchronize();
      return 0;
    });
  }
  return info.Env().Undefined();
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  init_tensor(env, exports);
  init_optim(env, exports);
  init_profiler(env, exports);
  init_distributed(env, exports);
  exports.Set("cudaSynchronize", Napi::Function::New(env, cuda_synchronize, "cudaSynchronize"));
  exports.Set("builtWithCuda", Napi::Boolean::New(env,
#ifdef SPPO_CUDA
                                                   true
#else
                                                   false
#endif
                                                   ));
  return exports;
}

}  // namespace sppo

static Napi::Object InitSppo(Napi::Env env, Napi::Object exports) { return sppo::init(env, exports); }
NODE_API_MODULE(sppo, InitSppo)
