// What rnnkit.native's kernels share: the activations and their derivatives over contiguous values, and the checks
// of a block's shape. float32 takes exp from a polynomial written so that the compiler vectorises it (Cephes' expf,
// within 2 ulp); tanh is 2 sigmoid(2x) - 1 there, as in rnnkit.bptt. float64 (the tests' gradchecks) uses the C
// library. Also the declarations of the loops (loops.cpp) that gated_steps.cpp's module binds.
#pragma once

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <bit>
#include <stdexcept>
#include <string>
#include <vector>

namespace rnnkit_native {

enum Activation : int64_t { kTanh = 0, kSigmoid = 1, kRelu = 2, kIdentity = 3, kHardSigmoid = 4 };

inline float exp_approx(float x) {
  // x = n ln2 + r with |r| <= ln2 / 2; exp(r) by Cephes' polynomial; 2^n written into the exponent bits
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);  // (floor(x + 0.5) keeps GCC from vectorising)
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

inline double exp_approx(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_approx(-x));
}

inline float tanh_of(float x) { return 2.0f * sigmoid(2.0f * x) - 1.0f; }
inline double tanh_of(double x) { return std::tanh(x); }

// y = act(x) over n contiguous values, in place allowed
template <typename T>
inline void activate(const T* x, T* y, int64_t n, int64_t act) {
  switch (act) {
    case kTanh:
      for (int64_t j = 0; j < n; ++j) y[j] = tanh_of(x[j]);
      break;
    case kSigmoid:
      for (int64_t j = 0; j < n; ++j) y[j] = sigmoid(x[j]);
      break;
    case kRelu:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] > T(0) ? x[j] : T(0);
      break;
    case kIdentity:
      for (int64_t j = 0; j < n; ++j) y[j] = x[j];
      break;
    case kHardSigmoid:  // relu6(x + 3) / 6, as torch's hardsigmoid
      for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(x[j] + T(3), T(0)), T(6)) / T(6);
      break;
    default:
      TORCH_CHECK(false, "rnnkit native: unknown activation ", act);
  }
}

// out = act'(from its output y) * grad over n values
template <typename T>
inline void derivative(const T* y, const T* grad, T* out, int64_t n, int64_t act) {
  switch (act) {
    case kTanh:
      for (int64_t j = 0; j < n; ++j) out[j] = grad[j] * (T(1) - y[j] * y[j]);
      break;
    case kSigmoid:
      for (int64_t j = 0; j < n; ++j) out[j] = grad[j] * ((T(1) - y[j]) * y[j]);
      break;
    case kRelu:
      for (int64_t j = 0; j < n; ++j) out[j] = y[j] > T(0) ? grad[j] : T(0);
      break;
    case kIdentity:
      for (int64_t j = 0; j < n; ++j) out[j] = grad[j];
      break;
    case kHardSigmoid:  // slope 1/6 strictly inside (0, 1), as torch's hardsigmoid_backward
      for (int64_t j = 0; j < n; ++j) out[j] = (y[j] > T(0) && y[j] < T(1)) ? grad[j] / T(6) : T(0);
      break;
    default:
      TORCH_CHECK(false, "rnnkit native: unknown activation ", act);
  }
}

inline void check_rows(const torch::Tensor& t, int64_t rows, int64_t width, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.size(0) == rows && t.size(1) == width, "rnnkit native: ", name, " must be (",
              rows, ", ", width, "), got ", t.sizes());
  TORCH_CHECK(t.stride(1) == 1, "rnnkit native: ", name, " must have contiguous rows");
  TORCH_CHECK(t.device().is_cpu(), "rnnkit native: ", name, " must be on the CPU");
}

// One row of an LSTM step after the product: z = [i f g o] (4H) before activation, replaced by the activations;
// writes c = f c_prev + i g, phi = act(c) and h = o phi (gated_steps.cpp has the equations)
template <typename T>
inline void lstm_row(T* z, const T* c_prev, T* c, T* phi, T* h, int64_t H, int64_t act, int64_t gate) {
  T *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
  activate(i, i, 2 * H, gate);  // i and f lie side by side
  activate(g, g, H, act);
  activate(o, o, H, gate);
  for (int64_t j = 0; j < H; ++j) c[j] = f[j] * c_prev[j] + i[j] * g[j];
  activate(c, phi, H, act);
  for (int64_t j = 0; j < H; ++j) h[j] = o[j] * phi[j];
}

// rows of at least this many values a thread (torch's own grain for elementwise work)
constexpr int64_t kGrain = 32768;

}  // namespace rnnkit_native

// loops.cpp: the Elman and Jordan loops, forward and backward; each pack is an optional oneDNN packing of the
// matrix its name gives
void elman_forward(const torch::Tensor& us, const torch::Tensor& h0, const torch::Tensor& w_hh,
                   const c10::optional<torch::Tensor>& pack, const c10::optional<torch::Tensor>& mask,
                   torch::Tensor news, torch::Tensor states, int64_t act);
void elman_backward(const c10::optional<torch::Tensor>& d_news, torch::Tensor carry, const torch::Tensor& news,
                    const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& mask, torch::Tensor dz,
                    int64_t act);
void lstm_inference(const torch::Tensor& xs, const c10::optional<torch::Tensor>& b_hh, const torch::Tensor& h0,
                    const torch::Tensor& c0, const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& pack,
                    const c10::optional<torch::Tensor>& mask, torch::Tensor hs, torch::Tensor h, torch::Tensor c,
                    int64_t act, int64_t gate);
void jordan_forward(const torch::Tensor& xs, const torch::Tensor& y0, const torch::Tensor& w_yh,
                    const torch::Tensor& w_hy, const c10::optional<torch::Tensor>& b_hy,
                    const c10::optional<torch::Tensor>& pack_yh, const c10::optional<torch::Tensor>& pack_hy,
                    const c10::optional<torch::Tensor>& mask, torch::Tensor hs, torch::Tensor ys, torch::Tensor states,
                    int64_t act_h, int64_t act_y);
void jordan_backward(const c10::optional<torch::Tensor>& d_ys, torch::Tensor carry, const torch::Tensor& hs,
                     const torch::Tensor& ys, const torch::Tensor& w_yh, const torch::Tensor& w_hy,
                     const c10::optional<torch::Tensor>& mask, torch::Tensor dz, torch::Tensor d_o, int64_t act_h,
                     int64_t act_y);

// gated_steps.cpp: the step kernels model_step.cpp calls
void lstm_forward_step(torch::Tensor z, const c10::optional<torch::Tensor>& zh, const torch::Tensor& c_prev,
                       torch::Tensor c, torch::Tensor phi, torch::Tensor h, int64_t act, int64_t gate);
void gru_forward_step(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& h_prev, torch::Tensor h,
                      int64_t act, int64_t gate);

// model_step.cpp: generation's whole step of a model of recurrent layers
std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>> model_step(
    const torch::Tensor& step, const c10::optional<torch::Tensor>& embedding, const c10::optional<torch::Tensor>& table,
    const std::vector<int64_t>& kinds, const std::vector<std::vector<torch::Tensor>>& w,
    const std::vector<std::vector<c10::optional<torch::Tensor>>>& blocks,
    const std::vector<std::vector<c10::optional<torch::Tensor>>>& b, const std::vector<c10::optional<torch::Tensor>>& h0,
    const std::vector<c10::optional<torch::Tensor>>& c0, const std::vector<int64_t>& acts,
    const std::vector<double>& alphas, const std::vector<c10::optional<torch::Tensor>>& periods,
    const std::vector<bool>& residual, const torch::Tensor& head_w, const c10::optional<torch::Tensor>& head_blocks,
    const c10::optional<torch::Tensor>& head_b, int64_t block_rows);

// sampling.cpp: the default draw of rnnkit.tasks.sampling.sample_next
torch::Tensor sample_rows(const torch::Tensor& logits, const std::vector<int64_t>& banned, double temperature,
                          c10::optional<at::Generator> generator);
