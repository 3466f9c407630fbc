// Data parallel for JavaScript on libtorch's c10d (the engine under PyTorch's DDP): a TCPStore (rank 0
// serves it at MASTER_ADDR:MASTER_PORT) and a process group, Gloo on CPUs, NCCL on CUDA, with allreduce,
// broadcast, allgather, barrier and DDP's bucketed gradient allreduce (after the backward pass, or started from
// hooks on the gradient accumulators during it: GradSync), each with a timeout.
//
// Compiled in only where the headers are there: Gloo needs gloo's headers (Debian: libgloo-dev; setup.mjs
// passes -DSPPO_GLOO=1 when it finds them), NCCL a CUDA libtorch with nccl.h (-DSPPO_CUDA). Without
// them distAvailable() says why and every other call throws that reason.
//
// Nothing here blocks Node's event loop for long: the collectives are enqueued on the process group's
// own threads from the JavaScript thread (tensors are read from the slot table there), and the waiting
// (and the flattening / copying back of gradient buckets) runs on libuv's thread pool; each call returns
// a Promise. The tensors of a collective in flight must not be used by JavaScript until it settles.
#include "common.h"

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <fstream>
#include <signal.h>
#include <unistd.h>

#if defined(SPPO_GLOO) && __has_include(<gloo/context.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define USE_C10D_GLOO 1
#define SPPO_HAS_GLOO 1
#endif
#if defined(SPPO_CUDA) && __has_include(<nccl.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#define USE_C10D_NCCL 1
#define SPPO_HAS_NCCL 1
#endif

#if defined(SPPO_HAS_GLOO) || defined(SPPO_HAS_NCCL)
#define SPPO_HAS_C10D 1
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef SPPO_HAS_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SPPO_HAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef SPPO_HAS_C10D
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <mutex>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <type_traits>
#endif

namespace sppo {

// Why gloo is missing from a build without it (the one place this message is written).
[[maybe_unused]] static const char* const kNoGloo =
    "sppo was compiled without gloo's headers (Debian/Ubuntu: apt-get install libgloo-dev, then run `node scripts/setup.mjs` again)";

// Why c10d is missing from this build (empty when a backend is compiled in).
static std::string unavailable_reason() {
#ifdef SPPO_HAS_C10D
  return "";
#else
  return std::string("c10d is not available in this libtorch build: ") + kNoGloo;
#endif
}

// A Promise whose work runs on libuv's thread pool; `done` (on the JavaScript thread) makes its value.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  void Execute() override {
    try {
      work_();
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    auto env = Env();
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  Napi::Promise start() {
    auto p = deferred_.Promise();
    Queue();
    return p;
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

#ifdef SPPO_HAS_C10D

// libtorch 1.13's Gloo and NCCL groups are c10d::ProcessGroups; from 2.0 they are c10d::Backends (a
// ProcessGroup dispatches to them). Both have the same collectives: the group is held as whichever base it has.
#ifdef SPPO_HAS_GLOO
using PgImpl = c10d::ProcessGroupGloo;
#else
using PgImpl = c10d::ProcessGroupNCCL;
#endif
using PgBase = std::conditional_t<std::is_base_of_v<c10d::ProcessGroup, PgImpl>, c10d::ProcessGroup, c10d::Backend>;

struct Group {
  std::string backend;
  int rank = 0, world = 1;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PgBase> pg;
  // Every rank's host name and process id, exchanged at start: after a failure, the ranks of this
  // host whose process is gone are named.
  std::vector<std::string> hosts;
  std::vector<int64_t> pids;
  uint64_t calls = 0;
  bool broken = false;
  std::string broken_by;
};

static std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

static bool process_gone(int64_t pid) {
  if (pid <= 0) return false;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return true;
  // A killed child not yet reaped by its parent is a zombie.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && (line[close + 2] == 'Z' || line[close + 2] == 'X');
}

static std::string lost_ranks(const Group& g) {
  auto me = host_name();
  std::string out;
  // A killed peer's sockets close while it is still exiting: give it up to 2 s to be gone.
  for (int tries = 0; tries < 40 && out.empty(); tries++) {
    if (tries) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int r = 0; r < (int)g.pids.size(); r++) {
      if (r == g.rank || g.hosts[r] != me || !process_gone(g.pids[r])) continue;
      out += (out.empty() ? "" : ", ") + std::string("rank ") + std::to_string(r) + " (pid " + std::to_string(g.pids[r]) + ")";
    }
  }
  return out.empty() ? "" : "; " + out + (out.find(',') == std::string::npos ? " is" : " are") + " no longer running";
}

// The error of a failed collective: which rank saw it, which call, why, and which peers died.
static std::string failure(Group& g, const std::string& op, uint64_t call, const std::string& what) {
  g.broken = true;
  auto msg = "c10d " + g.backend + ": " + op + " (call " + std::to_string(call) + ") failed on rank " + std::to_string(g.rank) + " of " +
             std::to_string(g.world) + ": " + what + lost_ranks(g);
  if (g.broken_by.empty()) g.broken_by = msg;
  return msg;
}

static Group& group_of(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "expected a process group");
  auto* g = v.As<Napi::External<Group>>().Data();
  if (!g->pg) throw Napi::Error::New(v.Env(), "the process group was destroyed");
  if (g->broken) throw Napi::Error::New(v.Env(), "the process group is unusable after an earlier failure: " + g->broken_by);
  return *g;
}

static std::chrono::milliseconds ms_of(const Napi::Value& v, std::chrono::milliseconds dflt) {
  return v.IsNumber() ? std::chrono::milliseconds((int64_t)v.As<Napi::Number>().DoubleValue()) : dflt;
}

// Waits for `work` at most `timeout` (plus a second, so that the backend's own timeout reports first).
static void wait_for(Group& g, const c10::intrusive_ptr<c10d::Work>& work, const std::string& op, uint64_t call, std::chrono::milliseconds timeout) {
  try {
    work->wait(timeout + std::chrono::milliseconds(1000));
  } catch (const c10::Error& e) {
    throw std::runtime_error(failure(g, op, call, e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw std::runtime_error(failure(g, op, call, e.what()));
  }
}

// distInit({backend, rank, worldSize, masterAddr, masterPort, timeoutMs}) -> Promise<group>; timeoutMs is required
// (its default, 30 minutes as torch's, is DEFAULT_TIMEOUT_MS of src/torch/distributed.ts).
static Napi::Value dist_init(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = info[0].As<Napi::Object>();
  auto g = std::make_shared<Group>();
  g->backend = o.Get("backend").As<Napi::String>();
  g->rank = o.Get("rank").As<Napi::Number>().Int32Value();
  g->world = o.Get("worldSize").As<Napi::Number>().Int32Value();
  std::string addr = o.Get("masterAddr").As<Napi::String>();
  int port = o.Get("masterPort").As<Napi::Number>().Int32Value();
  if (!o.Get("timeoutMs").IsNumber()) throw Napi::TypeError::New(env, "distInit: timeoutMs must be a number");
  g->timeout = ms_of(o.Get("timeoutMs"), {});
  std::string ifname = o.Get("ifname").IsString() ? o.Get("ifname").As<Napi::String>().Utf8Value() : "";
#ifndef SPPO_HAS_GLOO
  if (g->backend == "gloo") throw Napi::Error::New(env, std::string("c10d gloo is not available in this libtorch build: ") + kNoGloo);
#endif
#ifndef SPPO_HAS_NCCL
  if (g->backend == "nccl") throw Napi::Error::New(env, "c10d nccl is not available in this build: it needs a CUDA libtorch with NCCL and nccl.h (sppo was built " +
                                                        std::string(
#ifdef SPPO_CUDA
                                                            "with CUDA but without nccl.h"
#else
                                                            "without CUDA"
#endif
                                                            ) + ")");
#endif
  if (g->backend != "gloo" && g->backend != "nccl") throw Napi::Error::New(env, "unknown c10d backend '" + g->backend + "' (gloo, nccl)");
  auto job = new Job(
      env,
      [g, addr, port, ifname] {
        auto where = " (rank " + std::to_string(g->rank) + " of " + std::to_string(g->world) + ", store " + addr + ":" + std::to_string(port) + ")";
        // The timeout in our words (libtorch's own message says it otherwise in each version: "2s", "2000ms").
        auto ms = g->timeout.count();
        auto within = std::string(" within the ") + (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms") + " timeout: ";
        try {
          c10d::TCPStoreOptions so;
          so.port = (uint16_t)port;
          so.isServer = g->rank == 0;
          so.numWorkers = (size_t)g->world;
          so.waitWorkers = true;
          so.timeout = g->timeout;
          auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, so);
          g->store = c10::make_intrusive<c10d::PrefixStore>("sppo/" + g->backend, tcp);
        } catch (const c10::Error& e) {
          throw std::runtime_error(std::string("c10d init: could not reach the TCPStore") + where + within + e.what_without_backtrace());
        } catch (const std::exception& e) {
          throw std::runtime_error(std::string("c10d init: could not reach the TCPStore") + where + within + e.what());
        }
        try {
          auto me = host_name() + "\n" + std::to_string((int64_t)getpid());
          g->store->set("peer/" + std::to_string(g->rank), std::vector<uint8_t>(me.begin(), me.end()));
          for (int r = 0; r < g->world; r++) {
            auto v = g->store->get("peer/" + std::to_string(r));
            std::string s(v.begin(), v.end());
            auto nl = s.find('\n');
            g->hosts.push_back(s.substr(0, nl));
            g->pids.push_back(std::stoll(s.substr(nl + 1)));
          }
#ifdef SPPO_HAS_GLOO
          if (g->backend == "gloo") {
            auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
            const bool loopback = addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
            if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            else if (loopback) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr == "localhost" ? "127.0.0.1" : addr));
            else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, g->rank, g->world, opts);
          }
#endif
#ifdef SPPO_HAS_NCCL
          if (g->backend == "nccl") {
            auto opts = c10d::ProcessGroupNCCL::Options::create();
            opts->timeout = g->timeout;
            g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, g->rank, g->world, opts);
          }
#endif
        } catch (const c10::Error& e) {
          throw std::runtime_error("c10d init of " + g->backend + where + " failed: " + e.what_without_backtrace());
        } catch (const std::runtime_error&) {
          throw;
        } catch (const std::exception& e) {
          throw std::runtime_error("c10d init of " + g->backend + where + " failed: " + e.what());
        }
      },
      [g](Napi::Env env) -> Napi::Value {
        // The group is never freed by the garbage collector (a process has one, for its whole life, and
        // tearing down a group whose peer died can block); distDestroy frees it.
        auto* raw = new Group(*g);
        return Napi::External<Group>::New(env, raw);
      });
  return job->start();
}

static std::vector<at::Tensor> tensors_of(const Napi::Value& v, const char* what) {
  std::vector<at::Tensor> out;
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) out.push_back(unwrap(a.Get(i), what));
  } else {
    out.push_back(unwrap(v, what));
  }
  return out;
}

// A collective from the JavaScript thread: `launch` enqueues it (on the process group's threads),
// the wait and `after` run on the thread pool, `done` makes the Promise's value.
static Napi::Value collective(const Napi::CallbackInfo& info, const std::string& op, std::chrono::milliseconds timeout,
                              std::function<c10::intrusive_ptr<c10d::Work>(Group&)> launch, std::function<void()> after = nullptr,
                              std::function<Napi::Value(Napi::Env)> done = nullptr) {
  auto env = info.Env();
  auto& g = group_of(info[0]);
  const uint64_t call = ++g.calls;
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = launch(g);
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, failure(g, op, call, e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, failure(g, op, call, e.what()));
  }
  Group* gp = &g;
  auto job = new Job(
      env,
      [gp, work, op, call, timeout, after] {
        wait_for(*gp, work, op, call, timeout);
        if (after) after();
      },
      std::move(done));
  return job->start();
}

static c10d::ReduceOp reduce_op(const std::string& name, Napi::Env env) {
  if (name == "sum" || name == "avg") return c10d::ReduceOp::SUM;  // avg: a sum divided by the world size (Gloo has no AVG)
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw Napi::Error::New(env, "allreduce: unknown reduction '" + name + "' (sum, avg, max, min)");
}

// distAllreduce(group, tensor | tensor[], op, timeoutMs) -> Promise<void>, in place
static Napi::Value dist_allreduce(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto ts = tensors_of(info[1], "allreduce");
  std::string name = info[2].As<Napi::String>();
  auto rop = reduce_op(name, env);
  auto& g = group_of(info[0]);
  auto timeout = ms_of(info[3], g.timeout);
  const int world = g.world;
  std::function<void()> after;
  if (name == "avg") after = [ts, world] {
      at::NoGradGuard ng;
      for (auto t : ts) t.div_(world);
    };
  return collective(info, "allreduce(" + name + ")", timeout, [ts, rop, timeout](Group& g) mutable {
    c10d::AllreduceOptions o;
    o.reduceOp = rop;
    o.timeout = timeout;
    return g.pg->allreduce(ts, o);
  }, after);
}

// distBroadcast(group, tensor, root, timeoutMs) -> Promise<void>, in place
static Napi::Value dist_broadcast(const Napi::CallbackInfo& info) {
  auto ts = tensors_of(info[1], "broadcast");
  int root = info[2].As<Napi::Number>().Int32Value();
  auto& g = group_of(info[0]);
  if (root < 0 || root >= g.world) throw Napi::RangeError::New(info.Env(), "broadcast: root " + std::to_string(root) + " is not a rank of a world of " + std::to_string(g.world));
  auto timeout = ms_of(info[3], g.timeout);
  return collective(info, "broadcast(from rank " + std::to_string(root) + ")", timeout, [ts, root, timeout](Group& g) mutable {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = timeout;
    return g.pg->broadcast(ts, o);
  });
}

// distAllgather(group, tensor, timeoutMs) -> Promise<tensor[]> (one per rank, rank order)
static Napi::Value dist_allgather(const Napi::CallbackInfo& info) {
  auto in = unwrap(info[1], "allgather");
  auto& g = group_of(info[0]);
  auto timeout = ms_of(info[2], g.timeout);
  auto outs = std::make_shared<std::vector<std::vector<at::Tensor>>>(1);
  for (int r = 0; r < g.world; r++) (*outs)[0].push_back(at::empty_like(in, at::MemoryFormat::Contiguous));
  return collective(
      info, "allgather", timeout,
      [in, outs, timeout](Group& g) {
        std::vector<at::Tensor> ins{in.contiguous()};
        c10d::AllgatherOptions o;
        o.timeout = timeout;
        return g.pg->allgather(*outs, ins, o);
      },
      nullptr,
      [outs](Napi::Env env) -> Napi::Value {
        auto arr = Napi::Array::New(env, (*outs)[0].size());
        for (uint32_t i = 0; i < (*outs)[0].size(); i++) arr.Set(i, wrap(env, (*outs)[0][i]));
        return arr;
      });
}

// distBarrier(group, timeoutMs) -> Promise<void>
static Napi::Value dist_barrier(const Napi::CallbackInfo& info) {
  auto& g = group_of(info[0]);
  auto timeout = ms_of(info[1], g.timeout);
  return collective(info, "barrier", timeout, [timeout](Group& g) {
    c10d::BarrierOptions o;
    o.timeout = timeout;
    return g.pg->barrier(o);
  });
}

// ---------------------------------------------------------------- DDP's reducer
// The one gradient reducer, after the backward pass (distAllreduceGrads) and during it (GradSync): the
// parameters' gradients in reverse parameter order (the order the backward pass finishes them, as torch DDP),
// packed into flat buckets of at most bucketBytes of one dtype and device, each bucket summed across the ranks
// by its own allreduce (all in flight together, on the group's threads), then copied back. A parameter without
// a gradient counts as zeros and has one afterwards on every rank, so that all ranks step the same parameters.
// Sums, not means: the trainer scales each rank's loss by 1 / (global batch).
struct Reducer {
  Group* g = nullptr;
  std::vector<at::Tensor> params;
  std::vector<std::vector<size_t>> buckets;  // parameter indices, last parameter first
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::chrono::milliseconds timeout{0};
  uint64_t call = 0;
  std::string error;  // the round's first failure to start a bucket

  Reducer(Group& group, std::vector<at::Tensor> ps, double bucket_bytes, std::chrono::milliseconds t)
      : g(&group), params(std::move(ps)), timeout(t) {
    double size = 0;
    for (size_t k = params.size(); k-- > 0;) {
      const auto& p = params[k];
      double bytes = (double)p.numel() * p.element_size();
      bool fresh = buckets.empty() || size + bytes > bucket_bytes;
      if (!fresh) {
        const auto& head = params[buckets.back().front()];
        fresh = head.scalar_type() != p.scalar_type() || head.device() != p.device();
      }
      if (fresh) {
        buckets.emplace_back();
        size = 0;
      }
      buckets.back().push_back(k);
      size += bytes;
    }
    flats.resize(buckets.size());
    works.resize(buckets.size());
  }
  // A new round: the next call number of the group, no bucket started.
  void begin() {
    call = ++g->calls;
    error.clear();
    for (auto& w : works) w.reset();
  }
  // Packs bucket b and starts its allreduce; false (the group broken, `error` set) when that fails.
  bool start(size_t b) {
    try {
      at::NoGradGuard ng;
      std::vector<at::Tensor> parts;
      for (auto k : buckets[b]) {
        auto& p = params[k];
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p, at::MemoryFormat::Contiguous);
        parts.push_back(p.grad().reshape({-1}));
      }
      flats[b] = at::cat(parts);
      std::vector<at::Tensor> one{flats[b]};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = timeout;
      works[b] = g->pg->allreduce(one, o);
      return true;
    } catch (const c10::Error& e) {
      failed(b, e.what_without_backtrace());
    } catch (const std::exception& e) {
      failed(b, e.what());
    }
    return false;
  }
  // Waits for every bucket, copies the sums back into the gradients and frees the flat buckets (on the thread pool).
  void finish() {
    at::NoGradGuard ng;
    for (size_t b = 0; b < buckets.size(); b++) {
      wait_for(*g, works[b], "gradient allreduce, bucket " + std::to_string(b + 1) + " of " + std::to_string(buckets.size()), call, timeout);
      int64_t off = 0;
      for (auto k : buckets[b]) {
        auto gr = params[k].grad();
        gr.copy_(flats[b].narrow(0, off, gr.numel()).view(gr.sizes()));
        off += gr.numel();
      }
      works[b].reset();
      flats[b] = at::Tensor();
    }
  }

 private:
  void failed(size_t b, const std::string& what) {
    if (error.empty()) error = failure(*g, "gradient allreduce, bucket " + std::to_string(b + 1), call, what);
    works[b].reset();
  }
};

// distAllreduceGrads(group, params[], bucketBytes, timeoutMs) -> Promise<void>
// DDP's gradient exchange after the backward pass: the reducer's buckets all started, waited for, copied back.
static Napi::Value dist_allreduce_grads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto params = tensors_of(info[1], "allreduceGradients");
  double bucket_bytes = info[2].As<Napi::Number>().DoubleValue();
  auto& g = group_of(info[0]);
  auto r = std::make_shared<Reducer>(g, std::move(params), bucket_bytes, ms_of(info[3], g.timeout));
  r->begin();
  auto job = new Job(
      env,
      [r] {
        for (size_t b = 0; b < r->buckets.size(); b++)
          if (!r->start(b)) throw std::runtime_error(r->error);
        r->finish();
      },
      nullptr);
  return job->start();
}

// ---------------------------------------------------------------- gradients exchanged during the backward pass
// As torch DDP's Reducer: a post-hook on each parameter's gradient accumulator marks the parameter ready when the
// backward pass has accumulated its gradient; when every parameter of a bucket is ready, the bucket is packed and
// its allreduce starts, while the backward pass goes on with earlier layers. Buckets start in index order on
// every rank (bucket b only after buckets < b), so the ranks' collectives match whatever order the hooks fire in.
// The hooks act only when armed (the step's last micro-batch; the others accumulate locally, as DDP's no_sync);
// finish() starts the buckets not started yet (a parameter without a gradient counts as zeros), waits for all
// and copies the sums back.
struct GradSync {
  Reducer r;
  std::vector<size_t> bucket_of;
  std::vector<size_t> pending;
  std::vector<bool> ready;
  // The gradient accumulators that hold our hooks: std::shared_ptr<Node> up to PyTorch 2.12, c10::intrusive_ptr from
  // 2.13 on (whatever grad_accumulator returns).
  using NodePtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));
  std::vector<std::pair<NodePtr, uintptr_t>> hooks;
  size_t next = 0;
  size_t by_hooks = 0;  // buckets started from the backward pass's hooks this round
  bool armed = false;
  std::mutex mu;

  GradSync(Group& g, std::vector<at::Tensor> params, double bucket_bytes, std::chrono::milliseconds timeout)
      : r(g, std::move(params), bucket_bytes, timeout), bucket_of(r.params.size()), pending(r.buckets.size()), ready(r.params.size()) {
    for (size_t b = 0; b < r.buckets.size(); b++)
      for (auto k : r.buckets[b]) bucket_of[k] = b;
  }
  // Starts every bucket from `next` on whose parameters are all ready (all of them when `all`).
  void launch_ready(bool all) {
    while (next < r.buckets.size() && (all || pending[next] == 0)) r.start(next++);
  }
  void mark_ready(size_t k) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || ready[k]) return;
    ready[k] = true;
    pending[bucket_of[k]]--;
    size_t before = next;
    launch_ready(false);
    by_hooks += next - before;
  }
  // A new round (mu held).
  void begin_round() {
    armed = true;
    next = 0;
    by_hooks = 0;
    r.begin();
  }
  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    begin_round();
    std::fill(ready.begin(), ready.end(), false);
    for (size_t b = 0; b < r.buckets.size(); b++) pending[b] = r.buckets[b].size();
  }
  void unhook() {
    for (auto& [node, key] : hooks) node->del_post_hook(key);
    hooks.clear();
  }
};

struct ReadyHook : torch::autograd::FunctionPostHook {
  std::weak_ptr<GradSync> s;
  size_t k;
  ReadyHook(std::weak_ptr<GradSync> s, size_t k) : s(std::move(s)), k(k) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) override {
    if (auto p = s.lock()) p->mark_ready(k);
    return outputs;
  }
};

using GradSyncBox = std::shared_ptr<GradSync>;

// distGradSyncNew(group, params[], bucketBytes, timeoutMs) -> handle
static Napi::Value dist_gradsync_new(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto params = tensors_of(info[1], "gradientSync");
  double bucket_bytes = info[2].As<Napi::Number>().DoubleValue();
  auto& g = group_of(info[0]);
  auto s = std::make_shared<GradSync>(g, params, bucket_bytes, ms_of(info[3], g.timeout));
  guard(env, "gradientSync", [&] {
    for (size_t k = 0; k < params.size(); k++) {
      if (!params[k].requires_grad()) throw std::invalid_argument("parameter " + std::to_string(k) + " does not require a gradient");
      auto acc = torch::autograd::impl::grad_accumulator(params[k]);
      if (!acc) throw std::invalid_argument("parameter " + std::to_string(k) + " is not a leaf tensor");
      auto key = acc->add_post_hook(std::make_unique<ReadyHook>(s, k));
      s->hooks.emplace_back(acc, key);
    }
    return 0;
  });
  return Napi::External<GradSyncBox>::New(env, new GradSyncBox(s), [](Napi::Env, GradSyncBox* b) {
    (*b)->unhook();
    delete b;
  });
}

static GradSync& gradsync_of(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "expected a gradient sync");
  auto& box = *v.As<Napi::External<GradSyncBox>>().Data();
  if (box->hooks.empty() && !box->r.params.empty()) throw Napi::Error::New(v.Env(), "the gradient sync was disposed");
  if (box->r.g->broken) throw Napi::Error::New(v.Env(), "the process group is unusable after an earlier failure: " + box->r.g->broken_by);
  return *box;
}

// distGradSyncArm(sync): the next backward pass starts the buckets' allreduces as their gradients are ready.
static Napi::Value dist_gradsync_arm(const Napi::CallbackInfo& info) {
  gradsync_of(info[0]).arm();
  return info.Env().Undefined();
}

// distGradSyncFinish(sync) -> Promise<number>: starts the buckets not started yet, waits, copies the sums back;
// resolves with the number of buckets that the backward pass started.
static Napi::Value dist_gradsync_finish(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto box = *info[0].As<Napi::External<GradSyncBox>>().Data();
  auto& s = gradsync_of(info[0]);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    // Not armed (no backward pass this step on this rank): a fresh round, every bucket started here.
    if (!s.armed) s.begin_round();
    s.launch_ready(true);
    s.armed = false;
  }
  if (!s.r.error.empty()) throw Napi::Error::New(env, s.r.error);
  auto job = new Job(
      env,
      [box] { box->r.finish(); },
      [box](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, (double)box->by_hooks); });
  return job->start();
}

// distGradSyncFree(sync): removes the hooks.
static Napi::Value dist_gradsync_free(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "expected a gradient sync");
  (*info[0].As<Napi::External<GradSyncBox>>().Data())->unhook();
  return info.Env().Undefined();
}

// distDestroy(group): frees the process group (after the other ranks are done with it).
static Napi::Value dist_destroy(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "expected a process group");
  auto* g = info[0].As<Napi::External<Group>>().Data();
  if (g->pg && !g->broken) {
    g->pg.reset();
    g->store.reset();
  }
  // A broken group is left alone: its threads may be stuck on a dead peer until the process exits.
  return info.Env().Undefined();
}
#endif  // SPPO_HAS_C10D

static Napi::Value dist_available(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  auto backends = Napi::Array::New(env);
  uint32_t n = 0;
#ifdef SPPO_HAS_GLOO
  backends.Set(n++, "gloo");
#endif
#ifdef SPPO_HAS_NCCL
  backends.Set(n++, "nccl");
#endif
  o.Set("backends", backends);
  o.Set("reason", unavailable_reason());
  return o;
}

void init_distributed(Napi::Env env, Napi::Object exports) {
#ifdef SPPO_HAS_GLOO
  set_feature(env, exports, "gloo", true);
#else
  set_feature(env, exports, "gloo", false);
#endif
#ifdef SPPO_HAS_NCCL
  set_feature(env, exports, "nccl", true);
#else
  set_feature(env, exports, "nccl", false);
#endif
  exports.Set("distAvailable", Napi::Function::New(env, dist_available, "distAvailable"));
#ifdef SPPO_HAS_C10D
  exports.Set("distInit", Napi::Function::New(env, dist_init, "distInit"));
  exports.Set("distAllreduce", Napi::Function::New(env, dist_allreduce, "distAllreduce"));
  exports.Set("distBroadcast", Napi::Function::New(env, dist_broadcast, "distBroadcast"));
  exports.Set("distAllgather", Napi::Function::New(env, dist_allgather, "distAllgather"));
  exports.Set("distBarrier", Napi::Function::New(env, dist_barrier, "distBarrier"));
  exports.Set("distAllreduceGrads", Napi::Function::New(env, dist_allreduce_grads, "distAllreduceGrads"));
  exports.Set("distDestroy", Napi::Function::New(env, dist_destroy, "distDestroy"));
  exports.Set("distGradSyncNew", Napi::Function::New(env, dist_gradsync_new, "distGradSyncNew"));
  exports.Set("distGradSyncArm", Napi::Function::New(env, dist_gradsync_arm, "distGradSyncArm"));
  exports.Set("distGradSyncFinish", Napi::Function::New(env, dist_gradsync_finish, "distGradSyncFinish"));
  exports.Set("distGradSyncFree", Napi::Function::New(env, dist_gradsync_free, "distGradSyncFree"));
#endif
}

}  // namespace sppo
