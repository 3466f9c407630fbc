// CUDA graphs (at::cuda::CUDAGraph) for JavaScript: capture what a JS callback queues on the GPU, then
// replay it with one launch. Compiled only where the addon is built against a CUDA libtorch (SPPO_CUDA)
// with the CUDA runtime's headers;
// elsewhere cudaGraphSupport() says why there are none and the other functions are absent.
//
// Capture follows torch.cuda.graph (torch/cuda/graphs.py): the device is synchronised, the callback runs
// `warmup` times on a side stream (lazy initialisations such as cuBLAS workspaces happen outside the
// capture), the sampling generators are registered with the graph (PyTorch 2.4-2.13:
// CUDAGraph::register_generator_state; 2.14 registers them itself on first use), so each replay draws
// fresh numbers from the generator's current seed and offset and advances it, as eager calls would; then
// capture_begin / the callback / capture_end on that side stream (capture refuses the default stream).
// Replay runs on the current stream.
// libtorch 1.13 has no register_generator_state: only the device's default generator is graph-safe
// there, so a capture with generators is refused.
#include "common.h"

// The CUDA runtime's headers are needed too (setup.mjs adds them where it finds them), as for addon.cc's
// memory statistics; without them the addon has no CUDA graphs and says so.
#if defined(SPPO_CUDA) && __has_include(<ATen/cuda/CUDAGraph.h>) && __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && \
    __has_include(<cuda_runtime_api.h>)
#define SPPO_CUDA_GRAPHS 1
#endif

#ifdef SPPO_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <memory>
#include <vector>

// Generators other than the default one: registered explicitly before capture from PyTorch 2.4 on
// (CUDAGraph::register_generator_state(const at::Generator&)); from 2.14 that overload is gone and a graph
// registers a generator's state itself on its first use during capture.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SPPO_GRAPH_GENERATORS 1
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 14
#define SPPO_GRAPH_REGISTER_GENERATORS 1
#endif
#endif
#endif

namespace sppo {

#ifdef SPPO_CUDA_GRAPHS
namespace {

struct GraphBox {
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  c10::DeviceIndex device = 0;
  bool captured = false;
};

GraphBox* box_of(const Napi::Value& v) {
  auto* b = v.As<Napi::External<GraphBox>>().Data();
  if (!b->graph) throw std::runtime_error("the CUDA graph was disposed");
  return b;
}

Napi::Value graph_new(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  return guard(env, "CudaGraph", [&] {
    TORCH_CHECK(torch::cuda::is_available(), "no CUDA device is visible");
    TORCH_CHECK(device >= 0 && device < (int)torch::cuda::device_count(), "no CUDA device ", device);
    auto* b = new GraphBox();
    b->device = (c10::DeviceIndex)device;
    {
      c10::cuda::CUDAGuard dg(b->device);
      b->graph = std::make_unique<at::cuda::CUDAGraph>();
    }
    return Napi::External<GraphBox>::New(env, b, [](Napi::Env, GraphBox* p) { delete p; });
  });
}

// cudaGraphCapture(graph, fn, generators, warmup)
Napi::Value graph_capture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Function fn = info[1].As<Napi::Function>();
  std::vector<at::Generator> gens;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto arr = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) gens.push_back(*arr.Get(i).As<Napi::External<at::Generator>>().Data());
  }
  int warmup = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 1;
  GraphBox* b = guard(env, "CudaGraph.capture", [&] { return box_of(info[0]); });
  if (b->captured) throw Napi::Error::New(env, "CudaGraph.capture: already captured (reset() first)");
  guard(env, "CudaGraph.capture", [&] {
    for (auto& g : gens) TORCH_CHECK(g.device().is_cuda() && g.device().index() == b->device, "a generator of ", g.device(), " cannot drive a graph on cuda:", (int)b->device);
#ifndef SPPO_GRAPH_GENERATORS
    TORCH_CHECK(gens.empty(), "libtorch ", TORCH_VERSION, " cannot register a sampling Generator with a CUDA graph (CUDAGraph::register_generator_state came in PyTorch 2.4); "
                "capture without one (greedy) or decode without graphs");
#endif
    return 0;
  });
  c10::cuda::CUDAGuard dg(b->device);
  at::cuda::CUDAStream side = at::cuda::getStreamFromPool(false, b->device);
  guard(env, "CudaGraph.capture", [&] {
    torch::cuda::synchronize(b->device);
    return 0;
  });
  {
    c10::cuda::CUDAStreamGuard sg(side);
    for (int i = 0; i < warmup; i++) fn.Call(env.Global(), {});  // a JS exception propagates as Napi::Error
    guard(env, "CudaGraph.capture", [&] {
      side.synchronize();
#ifdef SPPO_GRAPH_REGISTER_GENERATORS
      for (auto& g : gens) b->graph->register_generator_state(g);
#endif
      b->graph->capture_begin();
      return 0;
    });
    try {
      fn.Call(env.Global(), {});
    } catch (...) {
      // End the capture so that the stream is usable again, and drop what was recorded.
      try {
        b->graph->capture_end();
      } catch (...) {
      }
      try {
        b->graph->reset();
      } catch (...) {
      }
      b->graph = std::make_unique<at::cuda::CUDAGraph>();
      throw;
    }
    guard(env, "CudaGraph.capture", [&] {
      b->graph->capture_end();
      return 0;
    });
  }
  guard(env, "CudaGraph.capture", [&] {
    torch::cuda::synchronize(b->device);
    return 0;
  });
  b->captured = true;
  return env.Undefined();
}

Napi::Value graph_replay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  guard(env, "CudaGraph.replay", [&] {
    GraphBox* b = box_of(info[0]);
    TORCH_CHECK(b->captured, "nothing captured");
    c10::cuda::CUDAGuard dg(b->device);
    b->graph->replay();
    return 0;
  });
  return env.Undefined();
}

// Frees what was captured (the graph and its private memory pool); dispose=true also frees the graph object.
Napi::Value graph_reset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool dispose = info.Length() > 1 && info[1].ToBoolean();
  guard(env, "CudaGraph.reset", [&] {
    auto* b = info[0].As<Napi::External<GraphBox>>().Data();
    if (!b->graph) return 0;
    c10::cuda::CUDAGuard dg(b->device);
    torch::cuda::synchronize(b->device);
    b->graph->reset();
    b->captured = false;
    if (dispose) b->graph.reset();
    else b->graph = std::make_unique<at::cuda::CUDAGraph>();
    return 0;
  });
  return env.Undefined();
}

}  // namespace
#endif

// null where CUDA graphs can be used, else why not.
static Napi::Value graph_support(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(SPPO_CUDA_GRAPHS)
  if (!torch::cuda::is_available()) return Napi::String::New(env, "no CUDA device is visible");
  return env.Null();
#elif defined(SPPO_CUDA)
  return Napi::String::New(env, "the addon was built without the CUDA runtime's headers (cuda_runtime_api.h; set CUDA_HOME)");
#else
  return Napi::String::New(env, "the addon was built against a libtorch without CUDA");
#endif
}

// Whether a capture may register sampling generators (PyTorch >= 2.4).
static Napi::Value graph_generators(const Napi::CallbackInfo& info) {
#ifdef SPPO_GRAPH_GENERATORS
  return Napi::Boolean::New(info.Env(), true);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

void init_cuda_graph(Napi::Env env, Napi::Object e) {
#ifdef SPPO_CUDA_GRAPHS
  set_feature(env, e, "cudaGraphs", true);
#else
  set_feature(env, e, "cudaGraphs", false);
#endif
  e.Set("cudaGraphSupport", Napi::Function::New(env, graph_support, "cudaGraphSupport"));
  e.Set("cudaGraphGenerators", Napi::Function::New(env, graph_generators, "cudaGraphGenerators"));
#ifdef SPPO_CUDA_GRAPHS
  e.Set("cudaGraphNew", Napi::Function::New(env, graph_new, "cudaGraphNew"));
  e.Set("cudaGraphCapture", Napi::Function::New(env, graph_capture, "cudaGraphCapture"));
  e.Set("cudaGraphReplay", Napi::Function::New(env, graph_replay, "cudaGraphReplay"));
  e.Set("cudaGraphReset", Napi::Function::New(env, graph_reset, "cudaGraphReset"));
#endif
}

}  // namespace sppo
