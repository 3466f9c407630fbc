// libtorch's operator profiler: profilerStart() records every ATen operator called from then on (on
// every thread, with its wall time); profilerStop() ends the recording and returns it as a Chrome
// trace (JSON text in a Buffer). src/torch/profiler.ts turns the trace into a table of self times.
#include "common.h"

#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define SPPO_HAVE_PROFILER 1
#endif

#include <memory>
#include <sstream>

namespace sppo {

#ifdef SPPO_HAVE_PROFILER
static std::unique_ptr<std::ostringstream> trace;
static std::unique_ptr<torch::autograd::profiler::RecordProfile> recording;
#endif

static Napi::Value profiler_start(const Napi::CallbackInfo& info) {
#ifdef SPPO_HAVE_PROFILER
  if (recording) throw Napi::Error::New(info.Env(), "profiler: already recording");
  guard(info.Env(), "profiler.start", [&] {
    trace = std::make_unique<std::ostringstream>();
    recording = std::make_unique<torch::autograd::profiler::RecordProfile>(*trace);
    return 0;
  });
  return info.Env().Undefined();
#else
  throw Napi::Error::New(info.Env(), "profiler: this libtorch has no legacy profiler (torch/csrc/autograd/profiler_legacy.h)");
#endif
}

static Napi::Value profiler_stop(const Napi::CallbackInfo& info) {
#ifdef SPPO_HAVE_PROFILER
  if (!recording) throw Napi::Error::New(info.Env(), "profiler: not recording");
  return guard(info.Env(), "profiler.stop", [&] {
    recording.reset();  // writes the trace
    // A Buffer, not a string: a long recording outgrows V8's largest string.
    const std::string text = trace->str();
    trace.reset();
    return Napi::Buffer<char>::Copy(info.Env(), text.data(), text.size());
  });
#else
  throw Napi::Error::New(info.Env(), "profiler: not available");
#endif
}

void init_profiler(Napi::Env env, Napi::Object e) {
  e.Set("profilerStart", Napi::Function::New(env, profiler_start, "profilerStart"));
  e.Set("profilerStop", Napi::Function::New(env, profiler_stop, "profilerStop"));
}

}  // namespace sppo
