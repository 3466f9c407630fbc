// Optimizers for JavaScript: torch::optim's AdamW, RMSprop and SGD with parameter groups (AdamW and
// RMSprop fused into one pass per parameter on the CPU, and on CUDA PyTorch 2's fused AdamW kernel or
// multi-tensor foreach ops, below), their per-parameter state read and
// written as tensors (so TypeScript saves it as safetensors), learning rates set per group by the
// schedules in TypeScript, and gradient-norm clipping.
#include "common.h"
#include "fused_optim.h"

#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <torch/nn/utils/clip_grad.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <map>
#include <memory>
#include <tuple>
#include <type_traits>

#ifdef SPPO_CUDA
#include <torch/version.h>
// aten::_fused_adamw_ (the kernel of torch.optim.AdamW(fused=True)) is in PyTorch 2.x's libtorch (CUDA since 2.0;
// taken from 2.1, with its schema as it stays through 2.11: lists, then lr, beta1, beta2, weight_decay, eps,
// amsgrad, maximize, grad_scale, found_inf).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define SPPO_FUSED_ADAMW_CUDA 1
#endif
#endif

namespace sppo {

using torch::optim::Optimizer;

// Native optimizers not yet freed (disposed or collected): liveOptimizers(), for leak checks.
static std::atomic<int64_t> live_optimizers{0};

struct OptimBox {
  std::string kind;
  std::unique_ptr<Optimizer> opt;
  OptimBox(std::string k, std::unique_ptr<Optimizer> o) : kind(std::move(k)), opt(std::move(o)) { live_optimizers++; }
  ~OptimBox() { release(); }
  void release() {
    if (opt) live_optimizers--;
    opt.reset();
  }
};

static double num(const Napi::Object& o, const char* key, double dflt) {
  auto v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}
static bool flag(const Napi::Object& o, const char* key, bool dflt) {
  auto v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
}

static std::unique_ptr<torch::optim::OptimizerOptions> options_for(const std::string& kind, const Napi::Object& g) {
  if (kind == "adamw") {
    auto o = std::make_unique<torch::optim::AdamWOptions>(num(g, "lr", 1e-3));
    double b1 = 0.9, b2 = 0.999;
    if (g.Get("betas").IsArray()) {
      auto b = g.Get("betas").As<Napi::Array>();
      b1 = b.Get(0u).As<Napi::Number>().DoubleValue();
      b2 = b.Get(1u).As<Napi::Number>().DoubleValue();
    }
    o->betas(std::make_tuple(b1, b2)).eps(num(g, "eps", 1e-8)).weight_decay(num(g, "weightDecay", 1e-2)).amsgrad(flag(g, "amsgrad", false));
    return o;
  }
  if (kind == "rmsprop") {
    auto o = std::make_unique<torch::optim::RMSpropOptions>(num(g, "lr", 1e-2));
    o->alpha(num(g, "alpha", 0.99)).eps(num(g, "eps", 1e-8)).weight_decay(num(g, "weightDecay", 0)).momentum(num(g, "momentum", 0)).centered(flag(g, "centered", false));
    return o;
  }
  if (kind == "sgd") {
    auto o = std::make_unique<torch::optim::SGDOptions>(num(g, "lr", 1e-2));
    o->momentum(num(g, "momentum", 0)).dampening(num(g, "dampening", 0)).weight_decay(num(g, "weightDecay", 0)).nesterov(flag(g, "nesterov", false));
    return o;
  }
  throw std::invalid_argument("unknown optimizer '" + kind + "' (adamw, rmsprop, sgd)");
}

// optimNew(kind, groups: [{params: [tensor...], lr, ...}]) -> optimizer handle
static Napi::Value optim_new(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::string kind = info[0].As<Napi::String>();
  auto groups = info[1].As<Napi::Array>();
  return guard(env, "optimizer(" + kind + ")", [&] {
    std::vector<torch::optim::OptimizerParamGroup> pgs;
    for (uint32_t i = 0; i < groups.Length(); i++) {
      auto g = groups.Get(i).As<Napi::Object>();
      std::vector<at::Tensor> params;
      auto ps = g.Get("params").As<Napi::Array>();
      for (uint32_t j = 0; j < ps.Length(); j++) params.push_back(unwrap(ps.Get(j), "optimizer params"));
      pgs.emplace_back(params, options_for(kind, g));
    }
    std::unique_ptr<Optimizer> opt;
    if (kind == "adamw") opt = std::make_unique<torch::optim::AdamW>(pgs, torch::optim::AdamWOptions());
    else if (kind == "rmsprop") opt = std::make_unique<torch::optim::RMSprop>(pgs, torch::optim::RMSpropOptions());
    else opt = std::make_unique<torch::optim::SGD>(pgs, torch::optim::SGDOptions(0.01));
    return Napi::External<OptimBox>::New(env, new OptimBox(kind, std::move(opt)), [](Napi::Env, OptimBox* b) { delete b; });
  });
}

template <typename Map>
static auto key_of(const Map&, const at::Tensor& p) {
  using K = typename Map::key_type;
  if constexpr (std::is_same_v<K, std::string>) {
    // libtorch 1.x keys its state by the TensorImpl address printed as text.
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<K>(p.unsafeGetTensorImpl());
  }
}

// ---------------------------------------------------------------- fused CPU updates
// torch::optim's AdamW and RMSprop update a parameter with a chain of whole-tensor ops (AdamW: nine
// passes over parameter-sized memory, two temporaries). On the CPU the same update is done here in one
// pass per parameter: the same formulas, in the same order, on the same state objects (so state
// save/load, learning rates and the step counts are torch::optim's). Used for CPU float32/float64
// parameters with dense contiguous gradients, AdamW without amsgrad and RMSprop without centering or
// momentum (the trainers' settings); anything else takes torch::optim's own step.

// Chunks of a parameter's elements over libtorch's intra-op threads.
template <typename F>
static void chunked(int64_t n, F&& f) {
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) { f(begin, end - begin); });
}

template <typename T>
static void adamw_update(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, double lr, double wd, double b1, double b2, double eps, int64_t step) {
  const double bc1 = 1 - std::pow(b1, (double)step), bc2 = 1 - std::pow(b2, (double)step);
  T *pp = p.data_ptr<T>(), *mp = m.data_ptr<T>(), *vp = v.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  const AdamWScalars<T> c{T(1 - lr * wd), T(b1), T(1 - b1), T(b2), T(1 - b2), T(std::sqrt(bc2)), T(eps), T(-(lr / bc1))};
  chunked(p.numel(), [&](int64_t i, int64_t n) { adamw_kernel(pp + i, gp + i, mp + i, vp + i, n, c); });
}

template <typename T>
static void rmsprop_update(at::Tensor& p, const at::Tensor& g, at::Tensor& sq, double lr, double wd, double alpha, double eps) {
  T *pp = p.data_ptr<T>(), *sp = sq.data_ptr<T>();
  const T* gp = g.data_ptr<T>();
  const RMSpropScalars<T> c{T(wd), T(alpha), T(1 - alpha), T(eps), T(-lr)};
  chunked(p.numel(), [&](int64_t i, int64_t n) { rmsprop_kernel(pp + i, gp + i, sp + i, n, c); });
}

static bool fusable_tensor(const at::Tensor& p) {
  if (!p.grad().defined()) return true;  // skipped by the step
  const auto& g = p.grad();
  return p.device().is_cpu() && (p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble) && p.is_contiguous() &&
         !g.is_sparse() && g.device().is_cpu() && g.scalar_type() == p.scalar_type() && g.is_contiguous() && g.sizes() == p.sizes();
}

// Whether the fused (CPU) and multi-tensor (CUDA) steps implement the options of every group: AdamW without
// amsgrad, RMSprop without centering or momentum (the trainers' options).
static bool options_supported(const std::string& kind, Optimizer& opt) {
  if (kind != "adamw" && kind != "rmsprop") return false;
  for (auto& group : opt.param_groups()) {
    if (kind == "adamw" && static_cast<torch::optim::AdamWOptions&>(group.options()).amsgrad()) return false;
    if (kind == "rmsprop") {
      auto& o = static_cast<torch::optim::RMSpropOptions&>(group.options());
      if (o.centered() || o.momentum() != 0) return false;
    }
  }
  return true;
}

// Whether the existing state of every parameter with a gradient has the parameter's dtype, device, shape and is
// contiguous: state loaded from a file could be of another dtype or layout, and then torch::optim's step handles it.
static bool state_matches(const std::string& kind, Optimizer& opt) {
  auto& state = opt.state();
  auto same = [](const at::Tensor& s, const at::Tensor& p) { return s.defined() && s.scalar_type() == p.scalar_type() && s.is_contiguous() && s.sizes() == p.sizes() && s.device() == p.device(); };
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      auto it = state.find(key_of(state, p));
      if (it == state.end() || !p.grad().defined()) continue;
      if (kind == "adamw") {
        auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
        if (!same(s.exp_avg(), p) || !same(s.exp_avg_sq(), p)) return false;
      } else if (!same(static_cast<torch::optim::RMSpropParamState&>(*it->second).square_avg(), p)) {
        return false;
      }
    }
  return true;
}

// The state of parameter p (created as torch::optim does, zeros of p's shape, at its first step), its step count
// advanced by one for the update about to be made.
template <typename S, typename Map, typename K>
static S& stepped_state(Map& state, const K& key, const at::Tensor& p) {
  if (state.find(key) == state.end()) {
    auto s = std::make_unique<S>();
    s->step(0);
    if constexpr (std::is_same_v<S, torch::optim::AdamWParamState>)
      s->exp_avg(torch::zeros_like(p, at::MemoryFormat::Contiguous)).exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Contiguous));
    else
      s->square_avg(torch::zeros_like(p, at::MemoryFormat::Contiguous));
    state[key] = std::move(s);
  }
  auto& s = static_cast<S&>(*state[key]);
  s.step(s.step() + 1);
  return s;
}

// One fused step of box `b` when every parameter and option allows it; false (nothing done) otherwise.
static bool fused_step(const std::string& kind, Optimizer& opt) {
  if (!options_supported(kind, opt)) return false;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) if (!fusable_tensor(p)) return false;
  if (!state_matches(kind, opt)) return false;
  auto& state = opt.state();
  at::NoGradGuard ng;
  RECORD_FUNCTION(kind == "adamw" ? "sppo::fused_adamw_step" : "sppo::fused_rmsprop_step", std::vector<c10::IValue>());
  for (auto& group : opt.param_groups()) {
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto key = key_of(state, p);
      const bool dbl = p.scalar_type() == at::kDouble;
      if (kind == "adamw") {
        auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
        auto& s = stepped_state<torch::optim::AdamWParamState>(state, key, p);
        auto m = s.exp_avg(), v = s.exp_avg_sq();
        auto [b1, b2] = o.betas();
        if (dbl) adamw_update<double>(p, p.grad(), m, v, o.lr(), o.weight_decay(), b1, b2, o.eps(), s.step());
        else adamw_update<float>(p, p.grad(), m, v, o.lr(), o.weight_decay(), b1, b2, o.eps(), s.step());
      } else {
        auto& o = static_cast<torch::optim::RMSpropOptions&>(group.options());
        auto& s = stepped_state<torch::optim::RMSpropParamState>(state, key, p);
        auto sq = s.square_avg();
        if (dbl) rmsprop_update<double>(p, p.grad(), sq, o.lr(), o.weight_decay(), o.alpha(), o.eps());
        else rmsprop_update<float>(p, p.grad(), sq, o.lr(), o.weight_decay(), o.alpha(), o.eps());
      }
    }
  }
  return true;
}

#ifdef SPPO_CUDA
// ---------------------------------------------------------------- CUDA: fused / multi-tensor updates
// torch::optim steps each parameter with its own chain of kernels (AdamW: about ten launches a parameter; a
// 135M-parameter Llama has 273 parameters). On CUDA the same update is done with multi-tensor kernels over all
// the parameters of a (device, dtype) group at once: AdamW with PyTorch 2's fused kernel (one launch per chunk of
// tensors, as torch.optim.AdamW(fused=True)), else, and for RMSprop (which PyTorch has no fused kernel for), the
// _foreach_ ops in torch::optim's order of operations (as torch.optim's foreach=True). The state is torch::optim's
// own (exp_avg, exp_avg_sq, square_avg, integer steps), so saving, loading and the CPU paths are unchanged. Taken
// when every parameter with a gradient is a dense CUDA floating tensor with a matching dense gradient and the
// options are the trainers' (AdamW without amsgrad, RMSprop without centering or momentum); otherwise
// torch::optim's step (a non-contiguous parameter or state too).
static bool cuda_tensor_ok(const at::Tensor& p) {
  if (!p.grad().defined()) return true;
  const auto& g = p.grad();
  // Contiguous: the multi-tensor kernels walk each tensor's elements linearly.
  return p.is_cuda() && at::isFloatingType(p.scalar_type()) && p.is_contiguous() && !g.is_sparse() && g.device() == p.device() &&
         g.scalar_type() == p.scalar_type() && g.is_contiguous() && g.sizes() == p.sizes();
}

static bool cuda_step(const std::string& kind, Optimizer& opt) {
  if (!options_supported(kind, opt)) return false;
  bool any = false;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      if (!cuda_tensor_ok(p)) return false;
      any = any || p.grad().defined();
    }
  if (!any || !state_matches(kind, opt)) return false;
  auto& state = opt.state();
  at::NoGradGuard ng;
  RECORD_FUNCTION(kind == "adamw" ? "sppo::cuda_adamw_step" : "sppo::cuda_rmsprop_step", std::vector<c10::IValue>());
  for (auto& group : opt.param_groups()) {
    // Lists per (device, dtype, step): one multi-tensor launch sequence each (usually a single list).
    struct Lists {
      std::vector<at::Tensor> p, g, a, b;
    };
    std::map<std::tuple<int, int, int64_t>, Lists> lists;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto key = key_of(state, p);
      const std::tuple<int, int, int64_t> at_key{(int)p.device().index(), (int)p.scalar_type(), 0};
      if (kind == "adamw") {
        auto& s = stepped_state<torch::optim::AdamWParamState>(state, key, p);
        auto& l = lists[{std::get<0>(at_key), std::get<1>(at_key), (int64_t)s.step()}];
        l.p.push_back(p);
        l.g.push_back(p.grad());
        l.a.push_back(s.exp_avg());
        l.b.push_back(s.exp_avg_sq());
      } else {
        auto& s = stepped_state<torch::optim::RMSpropParamState>(state, key, p);
        auto& l = lists[at_key];
        l.p.push_back(p);
        l.g.push_back(p.grad());
        l.a.push_back(s.square_avg());
      }
    }
    for (auto& [k, l] : lists) {
      if (kind == "adamw") {
        auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
        const double lr = o.lr(), wd = o.weight_decay(), eps = o.eps();
        const double b1 = std::get<0>(o.betas()), b2 = std::get<1>(o.betas());
        const int64_t step = std::get<2>(k);
#ifdef SPPO_FUSED_ADAMW_CUDA
        // The kernel reads each parameter's step count from a float32 device tensor (torch.optim's fused state_steps).
        auto step_t = at::full({}, (double)step, l.p[0].options().dtype(at::kFloat));
        std::vector<at::Tensor> steps(l.p.size(), step_t);
        at::_fused_adamw_(l.p, l.g, l.a, l.b, /*max_exp_avg_sqs=*/std::vector<at::Tensor>{}, steps, lr, b1, b2, wd, eps,
                          /*amsgrad=*/false, /*maximize=*/false);
#else
        const double bc1 = 1 - std::pow(b1, (double)step), bc2 = 1 - std::pow(b2, (double)step);
        at::_foreach_mul_(l.p, 1 - lr * wd);
        at::_foreach_mul_(l.a, b1);
        at::_foreach_add_(l.a, l.g, 1 - b1);
        at::_foreach_mul_(l.b, b2);
        at::_foreach_addcmul_(l.b, l.g, l.g, 1 - b2);
        auto denom = at::_foreach_sqrt(l.b);
        at::_foreach_div_(denom, std::sqrt(bc2));
        at::_foreach_add_(denom, eps);
        at::_foreach_addcdiv_(l.p, l.a, denom, -(lr / bc1));
#endif
      } else {
        auto& o = static_cast<torch::optim::RMSpropOptions&>(group.options());
        const double lr = o.lr(), wd = o.weight_decay(), alpha = o.alpha(), eps = o.eps();
        // torch::optim::RMSprop's order: grad + wd p; square_avg alpha + (1 - alpha) grad^2; p - lr grad / (sqrt(square_avg) + eps).
        std::vector<at::Tensor> g = wd != 0 ? at::_foreach_add(l.g, l.p, wd) : l.g;
        at::_foreach_mul_(l.a, alpha);
        at::_foreach_addcmul_(l.a, g, g, 1 - alpha);
        auto avg = at::_foreach_sqrt(l.a);
        at::_foreach_add_(avg, eps);
        at::_foreach_addcdiv_(l.p, g, avg, -lr);
      }
    }
  }
  return true;
}
#endif

static OptimBox& box_of(const Napi::Value& v) {
  auto& b = *v.As<Napi::External<OptimBox>>().Data();
  if (!b.opt) throw Napi::Error::New(v.Env(), "optimizer(" + b.kind + ") used after dispose()");
  return b;
}

// optimFree(opt): frees the native optimizer and its state (moments, step counts) now, not at garbage
// collection; the External's finalizer later deletes the empty box. Freeing twice is a no-op.
static Napi::Value optim_free(const Napi::CallbackInfo& info) {
  info[0].As<Napi::External<OptimBox>>().Data()->release();
  return info.Env().Undefined();
}

static Napi::Value live_optimizer_count(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)live_optimizers.load());
}

static Napi::Value optim_step(const Napi::CallbackInfo& info) {
  auto& b = box_of(info[0]);
  guard(info.Env(), b.kind + ".step", [&] {
    at::NoGradGuard ng;
#ifdef SPPO_CUDA
    if (!fused_step(b.kind, *b.opt) && !cuda_step(b.kind, *b.opt)) b.opt->step();
#else
    if (!fused_step(b.kind, *b.opt)) b.opt->step();
#endif
    return 0;
  });
  return info.Env().Undefined();
}

// optimZeroGrad(opt): drops every parameter's gradient (set to none, as PyTorch 2 does by default).
static Napi::Value optim_zero_grad(const Napi::CallbackInfo& info) {
  auto& b = box_of(info[0]);
  for (auto& g : b.opt->param_groups())
    for (auto& p : g.params()) p.mutable_grad().reset();
  return info.Env().Undefined();
}

static Napi::Value optim_set_lr(const Napi::CallbackInfo& info) {
  auto& b = box_of(info[0]);
  uint32_t gi = info[1].As<Napi::Number>().Uint32Value();
  double lr = info[2].As<Napi::Number>().DoubleValue();
  auto& groups = b.opt->param_groups();
  if (gi >= groups.size()) throw Napi::RangeError::New(info.Env(), "setLr: no parameter group " + std::to_string(gi));
  groups[gi].options().set_lr(lr);
  return info.Env().Undefined();
}

static Napi::Value optim_get_lr(const Napi::CallbackInfo& info) {
  auto& b = box_of(info[0]);
  uint32_t gi = info[1].As<Napi::Number>().Uint32Value();
  auto& groups = b.opt->param_groups();
  if (gi >= groups.size()) throw Napi::RangeError::New(info.Env(), "getLr: no parameter group " + std::to_string(gi));
  return Napi::Number::New(info.Env(), groups[gi].options().get_lr());
}

// optimGetState(opt) -> [{step, tensors: {name: tensor}} | null] per parameter, in group order.
static Napi::Value optim_get_state(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& b = box_of(info[0]);
  auto& state = b.opt->state();
  auto out = Napi::Array::New(env);
  uint32_t k = 0;
  for (auto& g : b.opt->param_groups()) {
    for (auto& p : g.params()) {
      auto it = state.find(key_of(state, p));
      if (it == state.end()) {
        out.Set(k++, env.Null());
        continue;
      }
      auto o = Napi::Object::New(env);
      auto ts = Napi::Object::New(env);
      auto put = [&](const char* name, const at::Tensor& t) {
        if (t.defined()) ts.Set(name, wrap(env, t.detach().clone()));
      };
      if (b.kind == "adamw") {
        auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
        o.Set("step", Napi::Number::New(env, (double)s.step()));
        put("exp_avg", s.exp_avg());
        put("exp_avg_sq", s.exp_avg_sq());
        put("max_exp_avg_sq", s.max_exp_avg_sq());
      } else if (b.kind == "rmsprop") {
        auto& s = static_cast<torch::optim::RMSpropParamState&>(*it->second);
        o.Set("step", Napi::Number::New(env, (double)s.step()));
        put("square_avg", s.square_avg());
        put("momentum_buffer", s.momentum_buffer());
        put("grad_avg", s.grad_avg());
      } else {
        auto& s = static_cast<torch::optim::SGDParamState&>(*it->second);
        o.Set("step", Napi::Number::New(env, 0));
        put("momentum_buffer", s.momentum_buffer());
      }
      o.Set("tensors", ts);
      out.Set(k++, o);
    }
  }
  return out;
}

// optimSetState(opt, [{step, tensors} | null] per parameter)
static Napi::Value optim_set_state(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& b = box_of(info[0]);
  auto list = info[1].As<Napi::Array>();
  auto& state = b.opt->state();
  uint32_t k = 0;
  guard(env, b.kind + ".loadState", [&] {
    for (auto& g : b.opt->param_groups()) {
      for (auto& p : g.params()) {
        if (k >= list.Length()) throw std::invalid_argument("state has " + std::to_string(list.Length()) + " entries, the optimizer more parameters");
        auto e = list.Get(k++);
        auto key = key_of(state, p);
        if (e.IsNull() || e.IsUndefined()) {
          state.erase(key);
          continue;
        }
        auto o = e.As<Napi::Object>();
        auto ts = o.Get("tensors").As<Napi::Object>();
        auto get = [&](const char* name) -> at::Tensor {
          auto v = ts.Get(name);
          if (v.IsUndefined() || v.IsNull()) return at::Tensor();
          auto t = unwrap(v, name).detach().clone().to(p.device());
          if (t.sizes() != p.sizes()) throw std::invalid_argument(std::string(name) + " has shape " + describe(t) + ", the parameter " + describe(p));
          return t;
        };
        int64_t step = (int64_t)o.Get("step").As<Napi::Number>().DoubleValue();
        if (b.kind == "adamw") {
          auto s = std::make_unique<torch::optim::AdamWParamState>();
          s->step(step).exp_avg(get("exp_avg")).exp_avg_sq(get("exp_avg_sq")).max_exp_avg_sq(get("max_exp_avg_sq"));
          state[key] = std::move(s);
        } else if (b.kind == "rmsprop") {
          auto s = std::make_unique<torch::optim::RMSpropParamState>();
          s->step(step).square_avg(get("square_avg")).momentum_buffer(get("momentum_buffer")).grad_avg(get("grad_avg"));
          state[key] = std::move(s);
        } else {
          auto s = std::make_unique<torch::optim::SGDParamState>();
          s->momentum_buffer(get("momentum_buffer"));
          state[key] = std::move(s);
        }
      }
    }
    if (k != list.Length()) throw std::invalid_argument("state has " + std::to_string(list.Length()) + " entries, the optimizer " + std::to_string(k) + " parameters");
    return 0;
  });
  return env.Undefined();
}

// clipGradNorm([params], maxNorm, normType) -> the total norm before clipping
static Napi::Value clip_grad_norm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::vector<at::Tensor> params;
  auto a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) params.push_back(unwrap(a.Get(i), "clipGradNorm"));
  double max_norm = info[1].As<Napi::Number>().DoubleValue();
  double norm_type = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 2.0;
  return guard(env, "clipGradNorm", [&] {
    double total = torch::nn::utils::clip_grad_norm_(params, max_norm, norm_type);
    return Napi::Number::New(env, total);
  });
}

void init_optim(Napi::Env env, Napi::Object e) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) { e.Set(name, Napi::Function::New(env, f, name)); };
  fn("optimNew", optim_new);
  fn("optimStep", optim_step);
  fn("optimFree", optim_free);
  fn("liveOptimizers", live_optimizer_count);
  fn("optimZeroGrad", optim_zero_grad);
  fn("optimSetLr", optim_set_lr);
  fn("optimGetLr", optim_get_lr);
  fn("optimGetState", optim_get_state);
  fn("optimSetState", optim_set_state);
  fn("clipGradNorm", clip_grad_norm);
#ifdef SPPO_FUSED_ADAMW_CUDA
  set_feature(env, e, "fusedAdamwCuda", true);
#else
  set_feature(env, e, "fusedAdamwCuda", false);
#endif
}

}  // namespace sppo
