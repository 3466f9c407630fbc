// Shared pieces of the sppo native addon: how tensors, generators and optimizers travel to
// JavaScript, and how every libtorch exception becomes a JavaScript Error.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <atomic>
#include <sstream>
#include <string>

namespace sppo {

extern std::atomic<int64_t> live_tensors;

// A tensor handed to JavaScript is a number naming a slot of the addon's tensor table (tensor.cc).
Napi::Value wrap(Napi::Env env, at::Tensor t);
at::Tensor& unwrap(const Napi::Value& v, const char* what);
bool is_tensor(const Napi::Value& v);

std::string describe(const at::Tensor& t);  // "float32[2,3]" or "float32[2,3]@cuda:0"
const char* dtype_name(at::ScalarType s);

// Runs body; converts c10::Error and std::exception into a JavaScript Error named after `op`.
template <typename F>
auto guard(Napi::Env env, const std::string& op, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, op + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, op + ": " + e.what());
  }
}

// exports.buildFeatures[name] = on: which compile-time paths this build has (each source file sets the ones its
// own preprocessor checks decide), so a check can assert that a CUDA build compiled every CUDA-only path.
inline void set_feature(Napi::Env env, Napi::Object exports, const char* name, bool on) {
  if (!exports.Has("buildFeatures")) exports.Set("buildFeatures", Napi::Object::New(env));
  exports.Get("buildFeatures").As<Napi::Object>().Set(name, Napi::Boolean::New(env, on));
}

void init_tensor(Napi::Env env, Napi::Object exports);
void init_optim(Napi::Env env, Napi::Object exports);
void init_profiler(Napi::Env env, Napi::Object exports);
void init_cuda_graph(Napi::Env env, Napi::Object exports);  // cuda_graph.cc
void init_threads(Napi::Env env, Napi::Object exports);     // threads.cc

}  // namespace sppo
