// Tensors for JavaScript: every ATen operator through libtorch's own dispatcher (boxed calls driven by
// each operator's schema), plus creation from and reading into JavaScript memory, autograd, random
// generators and device queries. No model logic lives here.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <c10/core/GradMode.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace sppo {

std::atomic<int64_t> live_tensors{0};

// Tensors live in a slot table; JavaScript holds a number: slot + generation * 2^24. dispose() frees
// the slot at once. (An External with a finalizer would keep a little memory per tensor until the
// event loop turns, since Node runs finalizers there; a synchronous training loop never yields.)
// The generation makes a stale number fail cleanly instead of reaching a reused slot.
static std::vector<at::Tensor> slots;
static std::vector<uint32_t> generations;
static std::vector<uint32_t> free_slots;
static constexpr double kSlotSpan = 16777216.0;  // 2^24 slots

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  uint32_t idx;
  if (!free_slots.empty()) {
    idx = free_slots.back();
    free_slots.pop_back();
  } else {
    if (slots.size() >= (size_t)kSlotSpan) throw Napi::Error::New(env, "too many live tensors (16M): dispose tensors you no longer need");
    idx = (uint32_t)slots.size();
    slots.emplace_back();
    generations.push_back(0);
  }
  slots[idx] = std::move(t);
  live_tensors++;
  return Napi::Number::New(env, (double)generations[idx] * kSlotSpan + idx);
}

static bool slot_of(const Napi::Value& v, uint32_t* idx) {
  if (!v.IsNumber()) return false;
  double h = v.As<Napi::Number>().DoubleValue();
  if (!(h >= 0) || h != std::floor(h) || h >= 9007199254740992.0) return false;
  double gen = std::floor(h / kSlotSpan);
  double i = h - gen * kSlotSpan;
  if (i >= slots.size()) return false;
  *idx = (uint32_t)i;
  return generations[*idx] == (uint32_t)gen && slots[*idx].defined();
}

bool is_tensor(const Napi::Value& v) {
  uint32_t idx;
  return slot_of(v, &idx);
}

at::Tensor& unwrap(const Napi::Value& v, const char* what) {
  uint32_t idx;
  if (!slot_of(v, &idx)) {
    if (v.IsNumber()) throw Napi::Error::New(v.Env(), std::string(what) + ": not a live tensor (disposed?)");
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a tensor");
  }
  return slots[idx];
}

static void release(uint32_t idx) {
  slots[idx] = at::Tensor();
  generations[idx]++;
  free_slots.push_back(idx);
  live_tensors--;
}

const char* dtype_name(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(s);
  }
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << dtype_name(t.scalar_type()) << "[";
  for (int64_t i = 0; i < t.dim(); i++) s << (i ? "," : "") << t.size(i);
  s << "]";
  if (!t.device().is_cpu()) s << "@" << t.device();
  return s.str();
}

// ------------------------------------------------------------------ operators by schema
// Any operator is called boxed: arguments converted by its schema into IValues. Operators of the
// commonest signatures (unary, binary, binary with a scalar: the elementwise bulk of a model) are
// also called unboxed through the same dispatcher, which skips the IValue stack.
enum class Sig { Boxed, T, TT, TTS, TS, TSS };

using FnT = at::Tensor(const at::Tensor&);
using FnTT = at::Tensor(const at::Tensor&, const at::Tensor&);
using FnTTS = at::Tensor(const at::Tensor&, const at::Tensor&, const c10::Scalar&);
using FnTS = at::Tensor(const at::Tensor&, const c10::Scalar&);
using FnTSS = at::Tensor(const at::Tensor&, const c10::Scalar&, const c10::Scalar&);

struct Op {
  c10::OperatorHandle h;
  std::string name;
  Sig sig = Sig::Boxed;
  c10::optional<c10::TypedOperatorHandle<FnT>> t;
  c10::optional<c10::TypedOperatorHandle<FnTT>> tt;
  c10::optional<c10::TypedOperatorHandle<FnTTS>> tts;
  c10::optional<c10::TypedOperatorHandle<FnTS>> ts;
  c10::optional<c10::TypedOperatorHandle<FnTSS>> tss;
  std::vector<c10::optional<c10::Scalar>> scalar_defaults;
};
static std::vector<Op> ops;

static Sig classify(const c10::FunctionSchema& s) {
  if (s.is_mutable() || s.is_vararg() || s.returns().size() != 1) return Sig::Boxed;
  if (s.returns()[0].type()->kind() != c10::TypeKind::TensorType || s.returns()[0].alias_info()) return Sig::Boxed;
  std::string code;
  for (const auto& a : s.arguments()) {
    if (a.alias_info()) return Sig::Boxed;
    auto k = a.type()->kind();
    if (k == c10::TypeKind::TensorType) code += 'T';
    else if (k == c10::TypeKind::NumberType) code += 'S';
    else return Sig::Boxed;
  }
  if (code == "T") return Sig::T;
  if (code == "TT") return Sig::TT;
  if (code == "TTS") return Sig::TTS;
  if (code == "TS") return Sig::TS;
  if (code == "TSS") return Sig::TSS;
  return Sig::Boxed;
}

// opFind(name, overload) -> id, or -1 when this libtorch has no such operator.
static Napi::Value op_find(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::string name = info[0].As<Napi::String>();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  auto h = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!h) return Napi::Number::New(env, -1);
  Op op{*h, overload.empty() ? name : name + "." + overload};
  op.sig = classify(h->schema());
  try {
    switch (op.sig) {
      case Sig::T: op.t = h->typed<FnT>(); break;
      case Sig::TT: op.tt = h->typed<FnTT>(); break;
      case Sig::TTS: op.tts = h->typed<FnTTS>(); break;
      case Sig::TS: op.ts = h->typed<FnTS>(); break;
      case Sig::TSS: op.tss = h->typed<FnTSS>(); break;
      case Sig::Boxed: break;
    }
  } catch (const std::exception&) {
    op.sig = Sig::Boxed;  // its C++ signature differs: stay boxed
  }
  for (const auto& a : h->schema().arguments()) {
    if (a.type()->kind() == c10::TypeKind::NumberType && a.default_value()) op.scalar_defaults.push_back(a.default_value()->toScalar());
    else op.scalar_defaults.push_back(c10::nullopt);
  }
  ops.push_back(std::move(op));
  return Napi::Number::New(env, (double)(ops.size() - 1));
}

static Napi::Value op_schema(const Napi::CallbackInfo& info) {
  int64_t id = info[0].As<Napi::Number>().Int64Value();
  std::ostringstream s;
  s << ops.at(id).h.schema();
  return Napi::String::New(info.Env(), s.str());
}

static c10::IValue to_ivalue(const Napi::Value& v, const c10::TypePtr& type, c10::optional<int32_t> N, const char* arg);

static c10::Scalar to_scalar(const Napi::Value& v, const char* arg) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0) return c10::Scalar((int64_t)d);
    return c10::Scalar(d);
  }
  if (v.IsBigInt()) {
    bool lossless;
    return c10::Scalar((int64_t)v.As<Napi::BigInt>().Int64Value(&lossless));
  }
  throw Napi::TypeError::New(v.Env(), std::string("argument '") + arg + "': expected a number");
}

static int64_t to_int(const Napi::Value& v, const char* arg) {
  if (v.IsNumber()) return v.As<Napi::Number>().Int64Value();
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  throw Napi::TypeError::New(v.Env(), std::string("argument '") + arg + "': expected an integer");
}

static c10::IValue to_ivalue(const Napi::Value& v, const c10::TypePtr& type, c10::optional<int32_t> N, const char* arg) {
  auto env = v.Env();
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return unwrap(v, arg);
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return to_ivalue(v, type->castRaw<c10::OptionalType>()->getElementType(), N, arg);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
      return to_int(v, arg);
    case c10::TypeKind::FloatType:
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("argument '") + arg + "': expected a number");
      return v.As<Napi::Number>().DoubleValue();
    case c10::TypeKind::BoolType:
      if (!v.IsBoolean()) throw Napi::TypeError::New(env, std::string("argument '") + arg + "': expected a boolean");
      return v.As<Napi::Boolean>().Value();
    case c10::TypeKind::NumberType:
      return to_scalar(v, arg);
    case c10::TypeKind::StringType:
      return v.ToString().Utf8Value();
    case c10::TypeKind::DeviceObjType:
      return c10::Device(v.ToString().Utf8Value());
    case c10::TypeKind::GeneratorType:
      return *v.As<Napi::External<at::Generator>>().Data();
    case c10::TypeKind::ListType: {
      auto elem = type->castRaw<c10::ListType>()->getElementType();
      auto ek = elem->kind();
      if (ek == c10::TypeKind::IntType || ek == c10::TypeKind::SymIntType) {
        std::vector<int64_t> xs;
        if (v.IsArray()) {
          auto a = v.As<Napi::Array>();
          for (uint32_t i = 0; i < a.Length(); i++) xs.push_back(to_int(a.Get(i), arg));
        } else {
          xs.assign(N ? *N : 1, to_int(v, arg));
        }
        return xs;
      }
      if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("argument '") + arg + "': expected an array");
      auto a = v.As<Napi::Array>();
      if (ek == c10::TypeKind::TensorType) {
        std::vector<at::Tensor> xs;
        for (uint32_t i = 0; i < a.Length(); i++) xs.push_back(unwrap(a.Get(i), arg));
        return xs;
      }
      if (ek == c10::TypeKind::OptionalType) {
        c10::List<c10::optional<at::Tensor>> xs;
        for (uint32_t i = 0; i < a.Length(); i++) {
          auto e = a.Get(i);
          if (e.IsNull() || e.IsUndefined()) xs.push_back(c10::nullopt);
          else xs.push_back(unwrap(e, arg));
        }
        return xs;
      }
      if (ek == c10::TypeKind::FloatType) {
        std::vector<double> xs;
        for (uint32_t i = 0; i < a.Length(); i++) xs.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
        return xs;
      }
      if (ek == c10::TypeKind::BoolType) {
        c10::List<bool> xs;
        for (uint32_t i = 0; i < a.Length(); i++) xs.push_back(a.Get(i).As<Napi::Boolean>().Value());
        return xs;
      }
      break;
    }
    default:
      break;
  }
  throw Napi::TypeError::New(env, std::string("argument '") + arg + "': type " + type->str() + " is not supported from JavaScript");
}

static Napi::Value from_ivalue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isInt()) return Napi::Number::New(env, (double)v.toInt());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isTensorList()) {
    auto xs = v.toTensorVector();
    auto a = Napi::Array::New(env, xs.size());
    for (size_t i = 0; i < xs.size(); i++) a.Set(i, wrap(env, xs[i]));
    return a;
  }
  if (v.isTuple()) {
    auto& xs = v.toTupleRef().elements();
    auto a = Napi::Array::New(env, xs.size());
    for (size_t i = 0; i < xs.size(); i++) a.Set(i, from_ivalue(env, xs[i]));
    return a;
  }
  if (v.isIntList()) {
    auto xs = v.toIntVector();
    auto a = Napi::Array::New(env, xs.size());
    for (size_t i = 0; i < xs.size(); i++) a.Set(i, Napi::Number::New(env, (double)xs[i]));
    return a;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  throw Napi::TypeError::New(env, std::string("a result of type ") + v.tagKind() + " is not supported in JavaScript");
}

// The error message names the operator and the tensors it was given.
static std::string show(const Napi::Value& v, bool tensor) {
  std::ostringstream s;
  if (tensor && is_tensor(v)) s << describe(unwrap(v, ""));
  else if (v.IsNumber()) s << v.As<Napi::Number>().DoubleValue();
  else if (v.IsBoolean()) s << (v.As<Napi::Boolean>().Value() ? "true" : "false");
  else if (v.IsNull() || v.IsUndefined()) s << "None";
  else if (v.IsString()) s << "'" << v.As<Napi::String>().Utf8Value() << "'";
  else if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    s << "[";
    for (uint32_t j = 0; j < a.Length() && j < 8; j++) s << (j ? "," : "") << show(a.Get(j), tensor);
    s << (a.Length() > 8 ? ",...]" : "]");
  } else s << "?";
  return s.str();
}

static bool is_tensor_type(const c10::TypePtr& t) {
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return true;
    case c10::TypeKind::OptionalType: return is_tensor_type(t->castRaw<c10::OptionalType>()->getElementType());
    case c10::TypeKind::ListType: return is_tensor_type(t->castRaw<c10::ListType>()->getElementType());
    default: return false;
  }
}

static std::string call_site(size_t id, const Napi::CallbackInfo& info) {
  const auto& args = ops[id].h.schema().arguments();
  std::ostringstream s;
  s << ops[id].name << "(";
  for (size_t i = 1; i < info.Length(); i++) {
    if (i > 1) s << ", ";
    s << show(info[i], i - 1 < args.size() && is_tensor_type(args[i - 1].type()));
  }
  s << ")";
  return s.str();
}

// call(id, ...args): arguments in schema order (keyword-only ones too); undefined takes the default.
// Returns a tensor handle, a number/boolean, null, or an array for several results.
// The unboxed path: returns false (nothing done) when the call does not fit it exactly.
static bool scalar_arg(const Napi::CallbackInfo& info, const Op& op, size_t i, c10::Scalar* out) {
  Napi::Value v = i + 1 < info.Length() ? info[i + 1] : info.Env().Undefined();
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d == std::floor(d) && std::fabs(d) < 9007199254740992.0) *out = c10::Scalar((int64_t)d);
    else *out = c10::Scalar(d);
    return true;
  }
  if (v.IsUndefined() && op.scalar_defaults[i]) {
    *out = *op.scalar_defaults[i];
    return true;
  }
  return false;
}

static bool tensor_arg(const Napi::CallbackInfo& info, size_t i, at::Tensor** out) {
  uint32_t idx;
  if (i + 1 >= info.Length() || !slot_of(info[i + 1], &idx)) return false;
  *out = &slots[idx];
  return true;
}

static bool call_unboxed(const Napi::CallbackInfo& info, const Op& op, at::Tensor* result) {
  at::Tensor *a, *b;
  c10::Scalar x, y;
  switch (op.sig) {
    case Sig::T:
      if (!tensor_arg(info, 0, &a)) return false;
      *result = op.t->call(*a);
      return true;
    case Sig::TT:
      if (!tensor_arg(info, 0, &a) || !tensor_arg(info, 1, &b)) return false;
      *result = op.tt->call(*a, *b);
      return true;
    case Sig::TTS:
      if (!tensor_arg(info, 0, &a) || !tensor_arg(info, 1, &b) || !scalar_arg(info, op, 2, &x)) return false;
      *result = op.tts->call(*a, *b, x);
      return true;
    case Sig::TS:
      if (!tensor_arg(info, 0, &a) || !scalar_arg(info, op, 1, &x)) return false;
      *result = op.ts->call(*a, x);
      return true;
    case Sig::TSS:
      if (!tensor_arg(info, 0, &a) || !scalar_arg(info, op, 1, &x) || !scalar_arg(info, op, 2, &y)) return false;
      *result = op.tss->call(*a, x, y);
      return true;
    case Sig::Boxed:
      return false;
  }
  return false;
}

// call(id, ...args): arguments in schema order (keyword-only ones too); undefined takes the default.
// Returns a tensor handle, a number/boolean, null, or an array for several results.
static Napi::Value op_call_impl(const Napi::CallbackInfo& info, bool discard) {
  auto env = info.Env();
  size_t id = (size_t)info[0].As<Napi::Number>().Int64Value();
  if (id >= ops.size()) throw Napi::RangeError::New(env, "unknown operator id");
  const auto& op = ops[id];
  thread_local torch::jit::Stack stack;
  stack.clear();
  try {
    if (op.sig != Sig::Boxed) {
      at::Tensor r;
      if (call_unboxed(info, op, &r)) return discard ? env.Undefined() : wrap(env, std::move(r));
    }
    const auto& args = op.h.schema().arguments();
    for (size_t i = 0; i < args.size(); i++) {
      const auto& a = args[i];
      Napi::Value v = i + 1 < info.Length() ? info[i + 1] : env.Undefined();
      if (v.IsUndefined()) {
        if (a.default_value()) {
          stack.push_back(*a.default_value());
          continue;
        }
        if (a.type()->kind() == c10::TypeKind::OptionalType) {
          stack.emplace_back();
          continue;
        }
        throw Napi::TypeError::New(env, "missing argument '" + a.name() + "'");
      }
      stack.push_back(to_ivalue(v, a.type(), a.N(), a.name().c_str()));
    }
    op.h.callBoxed(&stack);
  } catch (const Napi::Error& e) {
    stack.clear();
    throw Napi::Error::New(env, call_site(id, info) + ": " + e.Message());
  } catch (const c10::Error& e) {
    stack.clear();
    throw Napi::Error::New(env, call_site(id, info) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    stack.clear();
    throw Napi::Error::New(env, call_site(id, info) + ": " + e.what());
  }
  Napi::Value out;
  if (discard) out = env.Undefined();
  else if (stack.size() == 1) out = from_ivalue(env, stack[0]);
  else {
    auto arr = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) arr.Set(i, from_ivalue(env, stack[i]));
    out = arr;
  }
  stack.clear();
  return out;
}

static Napi::Value op_call(const Napi::CallbackInfo& info) { return op_call_impl(info, false); }
static Napi::Value op_call_inplace(const Napi::CallbackInfo& info) { return op_call_impl(info, true); }

// ------------------------------------------------------------------ tensors and JavaScript memory
static std::vector<int64_t> shape_of(const Napi::Value& v) {
  std::vector<int64_t> shape;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) shape.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  return shape;
}

// fromBytes(typedArray, dtype, shape) -> a new CPU tensor holding a copy of the bytes.
static Napi::Value from_bytes(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto ta = info[0].As<Napi::TypedArray>();
  auto dtype = (at::ScalarType)info[1].As<Napi::Number>().Int32Value();
  auto shape = shape_of(info[2]);
  return guard(env, "fromBytes", [&] {
    auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t need = t.numel() * t.element_size();
    if (ta.ByteLength() != need) {
      throw Napi::RangeError::New(env, "fromBytes: " + std::to_string(ta.ByteLength()) + " bytes given for " + describe(t) + ", which needs " + std::to_string(need));
    }
    auto ab = ta.ArrayBuffer();
    std::memcpy(t.data_ptr(), (uint8_t*)ab.Data() + ta.ByteOffset(), need);
    return wrap(env, t);
  });
}

// toBytes(t) -> ArrayBuffer with a copy of the tensor's elements, contiguous, from any device.
static Napi::Value to_bytes(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t0 = unwrap(info[0], "toBytes");
  return guard(env, "toBytes(" + describe(t0) + ")", [&] {
    at::NoGradGuard ng;
    auto t = t0.to(at::kCPU).contiguous();
    size_t n = t.numel() * t.element_size();
    auto ab = Napi::ArrayBuffer::New(env, n);
    if (n) std::memcpy(ab.Data(), t.data_ptr(), n);
    return ab;
  });
}

// readInto(t, path, offset): fills a contiguous CPU tensor from a file, straight into its memory.
static Napi::Value read_into(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "readInto");
  std::string path = info[1].As<Napi::String>();
  int64_t offset = info[2].As<Napi::Number>().Int64Value();
  if (!t.device().is_cpu() || !t.is_contiguous()) throw Napi::Error::New(env, "readInto: needs a contiguous CPU tensor");
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Napi::Error::New(env, path + ": " + std::strerror(errno));
  size_t n = t.numel() * t.element_size();
  auto* p = (uint8_t*)t.data_ptr();
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, p + done, n - done, offset + done);
    if (r <= 0) {
      int err = errno;
      close(fd);
      throw Napi::Error::New(env, path + ": " + (r == 0 ? std::string("file ends early (truncated?)") : std::strerror(err)));
    }
    done += r;
  }
  close(fd);
  return env.Undefined();
}

static Napi::Value dispose(const Napi::CallbackInfo& info) {
  uint32_t idx;
  if (slot_of(info[0], &idx)) release(idx);
  return info.Env().Undefined();
}

static Napi::Value live(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)live_tensors.load()); }

// meta(t) -> [dtype, device, requiresGrad, ...shape]
static Napi::Value meta(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "meta");
  auto a = Napi::Array::New(env, 3 + t.dim());
  a.Set(0u, Napi::Number::New(env, (int)t.scalar_type()));
  a.Set(1u, Napi::String::New(env, t.device().str()));
  a.Set(2u, Napi::Boolean::New(env, t.requires_grad()));
  for (int64_t i = 0; i < t.dim(); i++) a.Set(3 + i, Napi::Number::New(env, (double)t.size(i)));
  return a;
}

static Napi::Value is_contiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrap(info[0], "isContiguous").is_contiguous());
}

static Napi::Value shape(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "shape");
  auto a = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); i++) a.Set(i, Napi::Number::New(env, (double)t.size(i)));
  return a;
}

static Napi::Value item(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "item");
  return guard(env, "item(" + describe(t) + ")", [&]() -> Napi::Value {
    auto s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(env, (double)s.toLong());
    return Napi::Number::New(env, s.toDouble());
  });
}

static Napi::Value same_storage(const Napi::CallbackInfo& info) {
  auto& a = unwrap(info[0], "sameStorage");
  auto& b = unwrap(info[1], "sameStorage");
  return Napi::Boolean::New(info.Env(), a.storage().is_alias_of(b.storage()));
}

// ------------------------------------------------------------------ autograd
static Napi::Value requires_grad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "requiresGrad");
  bool on = info[1].As<Napi::Boolean>();
  guard(env, "requiresGrad(" + describe(t) + ")", [&] { t.set_requires_grad(on); return 0; });
  return env.Undefined();
}

static Napi::Value grad(const Napi::CallbackInfo& info) {
  auto& t = unwrap(info[0], "grad");
  return wrap(info.Env(), t.grad());
}

static Napi::Value set_grad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = unwrap(info[0], "setGrad");
  if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad().reset();
  else t.mutable_grad() = unwrap(info[1], "setGrad");
  return env.Undefined();
}

static Napi::Value is_leaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrap(info[0], "isLeaf").is_leaf());
}

static std::vector<at::Tensor> tensors_of(const Napi::Value& v, const char* what) {
  std::vector<at::Tensor> xs;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    auto e = a.Get(i);
    xs.push_back(e.IsNull() || e.IsUndefined() ? at::Tensor() : unwrap(e, what));
  }
  return xs;
}

// backward(outputs, grads|null, retainGraph, createGraph)
static Napi::Value backward(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto outs = tensors_of(info[0], "backward");
  std::vector<at::Tensor> grads;
  if (info[1].IsArray()) grads = tensors_of(info[1], "backward");
  bool retain = info[2].ToBoolean();
  bool create = info[3].ToBoolean();
  std::string site = "backward(";
  for (size_t i = 0; i < outs.size(); i++) site += (i ? ", " : "") + describe(outs[i]);
  site += ")";
  guard(env, site, [&] {
    torch::autograd::backward(outs, grads, retain, create);
    return 0;
  });
  return env.Undefined();
}

static Napi::Value set_grad_enabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].As<Napi::Boolean>());
  return Napi::Boolean::New(info.Env(), prev);
}

static Napi::Value is_grad_enabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

// ------------------------------------------------------------------ random numbers, devices, threads
static Napi::Value manual_seed(const Napi::CallbackInfo& info) {
  uint64_t seed = (uint64_t)info[0].As<Napi::Number>().Int64Value();
  at::manual_seed(seed);
  return info.Env().Undefined();
}

static Napi::Value generator_new(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  uint64_t seed = (uint64_t)info[0].As<Napi::Number>().Int64Value();
  std::string device = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
  return guard(env, "Generator(" + device + ")", [&] {
    c10::Device d(device);
    at::Generator g;
    if (d.is_cpu()) {
      g = at::make_generator<at::CPUGeneratorImpl>(seed);
    } else {
      // A private copy of the device's default generator, reseeded.
      g = at::globalContext().defaultGenerator(c10::Device(d.type(), d.has_index() ? d.index() : 0)).clone();
      g.set_current_seed(seed);
    }
    return Napi::External<at::Generator>::New(env, new at::Generator(g), [](Napi::Env, at::Generator* p) { delete p; });
  });
}

static Napi::Value generator_seed(const Napi::CallbackInfo& info) {
  auto* g = info[0].As<Napi::External<at::Generator>>().Data();
  g->set_current_seed((uint64_t)info[1].As<Napi::Number>().Int64Value());
  return info.Env().Undefined();
}

static Napi::Value cuda_available(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
}

static Napi::Value cuda_device_count(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)torch::cuda::device_count());
}

static Napi::Value version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), TORCH_VERSION);
}

void init_tensor(Napi::Env env, Napi::Object e) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) { e.Set(name, Napi::Function::New(env, f, name)); };
  fn("opFind", op_find);
  fn("opSchema", op_schema);
  fn("call", op_call);
  fn("callInplace", op_call_inplace);
  fn("fromBytes", from_bytes);
  fn("toBytes", to_bytes);
  fn("readInto", read_into);
  fn("dispose", dispose);
  fn("liveTensors", live);
  fn("meta", meta);
  fn("shape", shape);
  fn("isContiguous", is_contiguous);
  fn("item", item);
  fn("sameStorage", same_storage);
  fn("setRequiresGrad", requires_grad);
  fn("grad", grad);
  fn("setGrad", set_grad);
  fn("isLeaf", is_leaf);
  fn("backward", backward);
  fn("setGradEnabled", set_grad_enabled);
  fn("isGradEnabled", is_grad_enabled);
  fn("manualSeed", manual_seed);
  fn("generatorNew", generator_new);
  fn("generatorSeed", generator_seed);
  fn("cudaIsAvailable", cuda_available);
  fn("cudaDeviceCount", cuda_device_count);
  fn("version", version);
}

}  // namespace sppo
