// The sppo native addon: a thin Node-API layer over libtorch (see tensor.cc, optim.cc, profiler.cc, distributed.cc and cuda_graph.cc).
#include "common.h"

#include <torch/cuda.h>

// The CUDA caching allocator's statistics need the CUDA runtime's headers, which a libtorch does not always
// come with (setup.mjs adds them to the include path where it finds them); without them the stats are null.
#if defined(SPPO_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && \
    __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define SPPO_CUDA_MEMORY_STATS 1
#endif

namespace sppo {

// {allocated, peakAllocated, reserved, peakReserved} in bytes for a CUDA device (torch.cuda.memory_stats'
// "allocated_bytes.all.*" / "reserved_bytes.all.*"), or null without CUDA or without the allocator's headers.
static Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef SPPO_CUDA_MEMORY_STATS
  if (torch::cuda::is_available()) {
    int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    return guard(env, "cuda.memoryStats", [&] {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
      Napi::Object o = Napi::Object::New(env);
      // Index 0 of each stat array is the aggregate over the small and large pools (StatType::AGGREGATE).
      o.Set("allocated", Napi::Number::New(env, (double)stats.allocated_bytes[0].current));
      o.Set("peakAllocated", Napi::Number::New(env, (double)stats.allocated_bytes[0].peak));
      o.Set("reserved", Napi::Number::New(env, (double)stats.reserved_bytes[0].current));
      o.Set("peakReserved", Napi::Number::New(env, (double)stats.reserved_bytes[0].peak));
      return o;
    });
  }
#endif
  return env.Null();
}

static Napi::Value cuda_reset_peak_memory(const Napi::CallbackInfo& info) {
#ifdef SPPO_CUDA_MEMORY_STATS
  if (torch::cuda::is_available()) {
    int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    guard(info.Env(), "cuda.resetPeakMemory", [&] {
      c10::cuda::CUDACachingAllocator::resetPeakStats(device);
      return 0;
    });
  }
#endif
  return info.Env().Undefined();
}

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
  init_cuda_graph(env, exports);
  init_threads(env, exports);
  exports.Set("cudaSynchronize", Napi::Function::New(env, cuda_synchronize, "cudaSynchronize"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, cuda_memory_stats, "cudaMemoryStats"));
  exports.Set("cudaResetPeakMemory", Napi::Function::New(env, cuda_reset_peak_memory, "cudaResetPeakMemory"));
#ifdef SPPO_CUDA
  constexpr bool cuda = true;
#else
  constexpr bool cuda = false;
#endif
#ifdef SPPO_CUDA_MEMORY_STATS
  constexpr bool memory_stats = true;
#else
  constexpr bool memory_stats = false;
#endif
  exports.Set("builtWithCuda", Napi::Boolean::New(env, cuda));
  set_feature(env, exports, "cuda", cuda);
  set_feature(env, exports, "cudaMemoryStats", memory_stats);
  return exports;
}

}  // namespace sppo

static Napi::Object InitSppo(Napi::Env env, Napi::Object exports) { return sppo::init(env, exports); }
NODE_API_MODULE(sppo, InitSppo)
