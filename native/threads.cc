// CPU threads: ATen's intra-op pool and, where libtorch's BLAS is OpenBLAS, OpenBLAS's own.
// PyTorch's wheels have one threading layer for matrix products (MKL, or an OpenMP OpenBLAS, on ATen's OpenMP
// pool). Debian's libtorch calls whatever libblas.so.3 the system gives it: an OpenBLAS built with OpenMP shares
// ATen's pool (and runs single-threaded inside ATen's parallel regions), one built with pthreads keeps a pool of its
// own beside it, whose threads and OpenMP's wait for each other's cores (docs/threads.md). So setting the thread
// count sets OpenBLAS's too, unless OPENBLAS_NUM_THREADS is set: the same count for the OpenMP build (which
// otherwise never rises again once it has been 1), and 1 for the pthreads build (one layer: ATen's).
// OpenBLAS is found at run time (dlsym), so the same code serves libtorches without it (MKL, Accelerate).
#include "common.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstdlib>
#include <string>

namespace sppo {

namespace {

struct OpenBlas {
  int (*get_parallel)() = nullptr;  // 0 sequential, 1 pthreads, 2 OpenMP
  void (*set_num_threads)(int) = nullptr;
  int (*get_num_threads)() = nullptr;
  char* (*get_config)() = nullptr;
  OpenBlas() {
    get_parallel = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
    set_num_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    get_num_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    get_config = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  }
  bool found() const { return get_parallel && set_num_threads && get_num_threads; }
};

const OpenBlas& openblas() {
  static OpenBlas o;
  return o;
}

const char* threading_name(int p) { return p == 2 ? "openmp" : p == 1 ? "pthreads" : "sequential"; }

}  // namespace

static Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) {
    Napi::RangeError::New(info.Env(), "setNumThreads: expected a positive number of threads, got " + std::to_string(n)).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  at::set_num_threads(n);
  // OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS) set by the user is theirs: OpenBLAS read it at start and keeps it.
  const auto& o = openblas();
  if (o.found() && !std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("GOTO_NUM_THREADS")) {
    int p = o.get_parallel();
    if (p == 2) o.set_num_threads(n);
    else if (p == 1) o.set_num_threads(1);
  }
  return info.Env().Undefined();
}

static Napi::Value get_num_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

// { library: 'openblas', threading: 'openmp' | 'pthreads' | 'sequential', threads, config } or { library: 'other' }.
static Napi::Value blas_info(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto out = Napi::Object::New(env);
  const auto& o = openblas();
  if (!o.found()) {
    out.Set("library", "other");
    return out;
  }
  out.Set("library", "openblas");
  out.Set("threading", threading_name(o.get_parallel()));
  out.Set("threads", o.get_num_threads());
  if (o.get_config) out.Set("config", std::string(o.get_config()));
  Dl_info where;
  if (dladdr(reinterpret_cast<void*>(o.get_parallel), &where) && where.dli_fname) out.Set("path", std::string(where.dli_fname));
  return out;
}

void init_threads(Napi::Env env, Napi::Object e) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) { e.Set(name, Napi::Function::New(env, f, name)); };
  fn("setNumThreads", set_num_threads);
  fn("getNumThreads", get_num_threads);
  fn("blasInfo", blas_info);
}

}  // namespace sppo
