// Optimizers for JavaScript: torch::optim's AdamW, RMSprop and SGD with parameter groups, their
// per-parameter state read and written as tensors (so TypeScript saves it as safetensors), learning
// rates set per group by the schedules in TypeScript, and gradient-norm clipping.
#include "common.h"

#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <torch/nn/utils/clip_grad.h>

#include <memory>
#include <type_traits>

namespace sppo {

using torch::optim::Optimizer;

struct OptimBox {
  std::string kind;
  std::unique_ptr<Optimizer> opt;
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
    return Napi::External<OptimBox>::New(env, new OptimBox{kind, std::move(opt)}, [](Napi::Env, OptimBox* b) { delete b; });
  });
}

static OptimBox& box_of(const Napi::Value& v) {
  auto& b = *v.As<Napi::External<OptimBox>>().Data();
  if (!b.opt) throw Napi::Error::New(v.Env(), "optimizer(" + b.kind + ") used after dispose()");
  return b;
}

// optimFree(opt): frees the native optimizer and its state (moments, step counts) now, not at garbage
// collection; the External's finalizer later deletes the empty box. Freeing twice is a no-op.
static Napi::Value optim_free(const Napi::CallbackInfo& info) {
  info[0].As<Napi::External<OptimBox>>().Data()->opt.reset();
  return info.Env().Undefined();
}

static Napi::Value optim_step(const Napi::CallbackInfo& info) {
  auto& b = box_of(info[0]);
  guard(info.Env(), b.kind + ".step", [&] {
    at::NoGradGuard ng;
    b.opt->step();
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
  fn("optimZeroGrad", optim_zero_grad);
  fn("optimSetLr", optim_set_lr);
  fn("optimGetLr", optim_get_lr);
  fn("optimGetState", optim_get_state);
  fn("optimSetState", optim_set_state);
  fn("clipGradNorm", clip_grad_norm);
}

}  // namespace sppo
