// Whole loops over time of the cells whose step is a product or two and an activation: Elman (the RNN cells and
// the SCRN's recurrence) and Jordan, forward and backward (rnnkit/bptt.py writes the same equations in Python and
// says what each keeps). Per step the Python loop makes half a dozen torch calls; at batch 32, hidden 256 each
// costs about as much as the elementwise work it starts, and a Jordan step's two products are only about 20 us
// each. Here a step is its products (MKL's or oneDNN's, as torch's operators take them: Product below) and one
// pass over each (B, H) block for the sum, the activation, the mask and the shares.
//
// Elman:   forward   news_t = g(u_t + h_{t-1} W_hh^T);  h_t = news_t, or h_{t-1} on a padding row
//          backward  dz_t = g'(news_t) (d_news_t + [real] carry);  carry = dz_t W_hh + [padding] carry
// Jordan:  forward   h_t = g(x_t + y_{t-1} W_yh^T);  y_t = act_y(h_t W_hy^T + b_hy);  y held on a padding row
//          backward  do_t = act_y'(y_t) (d_ys_t + [real] carry);  dz_t = g'(h_t) (do_t W_hy);
//                    carry = dz_t W_yh + [padding] carry
// A padding step computes its outputs as the reference loop does (they are discarded by the layer), and the state
// passes it unchanged. Weight gradients are one product over all steps, taken in Python afterwards.
//
// The forward products go through oneDNN where Python passes packed weights (rnnkit.onednn.loop_pack: from 512
// inputs). A Jordan loop at B32 T100 H512 (an Intel Xeon, 2 threads) then took 16.5 ms forward against 18.6 with
// MKL's; its backward's products through oneDNN took 18.3-18.9 ms against 17.5-18.4, so the backward keeps MKL's.
#include "kernels.h"

namespace rnnkit_native {
namespace {

// a gradient arriving from the loss: the steps' shape, any strides
void check_grads(const torch::Tensor& t, int64_t T, int64_t B, int64_t width, const char* name) {
  TORCH_CHECK(t.dim() == 3 && t.size(0) == T && t.size(1) == B && t.size(2) == width, "rnnkit native: ", name,
              " must be (", T, ", ", B, ", ", width, "), got ", t.sizes());
  TORCH_CHECK(t.device().is_cpu(), "rnnkit native: ", name, " must be on the CPU");
}

// every step's block, (T, B, width), laid out as the loops read it
void check_steps(const torch::Tensor& t, int64_t T, int64_t B, int64_t width, const char* name) {
  check_grads(t, T, B, width, name);
  TORCH_CHECK(t.is_contiguous(), "rnnkit native: ", name, " must be contiguous");
}

// a (B, width) state the loop reads and writes in place as plain rows
void check_state(const torch::Tensor& t, int64_t B, int64_t width, const char* name) {
  check_rows(t, B, width, name);
  TORCH_CHECK(t.is_contiguous(), "rnnkit native: ", name, " must be contiguous");
}

const bool* mask_rows(const c10::optional<torch::Tensor>& mask, int64_t T, int64_t B) {
  if (!mask.has_value() || !mask->defined()) return nullptr;
  TORCH_CHECK(mask->scalar_type() == torch::kBool && mask->dim() == 2 && mask->size(0) == T && mask->size(1) == B &&
                  mask->is_contiguous(),
              "rnnkit native: the mask must be (", T, ", ", B, ") contiguous bool, got ", mask->sizes());
  return mask->data_ptr<bool>();
}

// x W^T, a step's product with one of the loop's matrices W: MKL's (at::mm_out) with W^T laid out as its own
// matrix (with a transposed view it took 24 us at (32 x 256) . (256 x 256), with the copy, made once a sequence, 20),
// or, given W packed by torch.ops.mkldnn._reorder_linear_weight (rnnkit.onednn.loop_pack decides), oneDNN's
// (mkldnn::_linear_pointwise, the product torch.nn.LSTM's kernel runs on)
struct Product {
  torch::Tensor w_t, packed;

  Product(const torch::Tensor& w, const c10::optional<torch::Tensor>& pack) {
    if (pack.has_value() && pack->defined()) {
      packed = *pack;
    } else {
      w_t = w.t().contiguous();
    }
  }

  void operator()(const torch::Tensor& x, torch::Tensor& out) const {
    if (!packed.defined()) {
      at::mm_out(out, x, w_t);
      return;
    }
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
    torch::jit::Stack stack{x, packed, c10::IValue(), std::string("none"),
                            c10::List<c10::optional<at::Scalar>>(), c10::IValue()};
    op.callBoxed(&stack);
    const torch::Tensor y = stack[0].toTensor();
    TORCH_CHECK(y.sizes() == out.sizes() && y.is_contiguous(), "rnnkit native: oneDNN's product has shape ",
                y.sizes(), ", expected ", out.sizes());
    std::copy(y.data_ptr<float>(), y.data_ptr<float>() + y.numel(), out.data_ptr<float>());
  }
};

// y = act(y + add) over a (B, N) block of contiguous rows; add's rows lie add_stride apart (0: one vector, a
// bias), or add is null. (addmm would first copy its addend into the product's output: a pass of its own, which
// took as long as the activation here.)
template <typename T>
void add_activate(torch::Tensor& y, const T* add, int64_t add_stride, int64_t act) {
  const int64_t B = y.size(0), N = y.size(1), s = y.stride(0);
  T* p = y.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, kGrain / N), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      T* row = p + b * s;
      if (add != nullptr) {
        const T* a = add + b * add_stride;
        for (int64_t j = 0; j < N; ++j) row[j] += a[j];
      }
      activate(row, row, N, act);
    }
  });
}

// state_t = new_t on real rows, state_{t-1} on padding rows
template <typename T>
void hold(const bool* m, const torch::Tensor& fresh, const torch::Tensor& prev, torch::Tensor& state) {
  const int64_t B = fresh.size(0), N = fresh.size(1);
  const T *f = fresh.data_ptr<T>(), *p = prev.data_ptr<T>();
  T* out = state.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) {
    const T* from = m[b] ? f + b * fresh.stride(0) : p + b * prev.stride(0);
    std::copy(from, from + N, out + b * state.stride(0));
  }
}

// The state after step t: its output, or, under a mask, states[t] with the padding rows holding prev
template <typename T>
torch::Tensor advance(const bool* m, int64_t t, const torch::Tensor& out, const torch::Tensor& prev,
                      torch::Tensor& states) {
  if (m == nullptr) return out;
  torch::Tensor state = states.select(0, t);
  hold<T>(m + t * out.size(0), out, prev, state);
  return state;
}

// The gradient reaching step t's outputs from the loss: d_t's (B, N) rows, any strides (the gradient of a sum is one
// value broadcast), or none (0)
template <typename T>
struct Incoming {
  const T* p = nullptr;
  int64_t st = 0, sb = 0, sj = 0;
  Incoming(const c10::optional<torch::Tensor>& d) {
    if (d.has_value() && d->defined()) {
      p = d->data_ptr<T>();
      st = d->stride(0), sb = d->stride(1), sj = d->stride(2);
    }
  }
};

// out = act'(y) (d_t + [real] carry) over (B, N) rows
template <typename T>
void incoming(const torch::Tensor& y, const Incoming<T>& d, int64_t t, const torch::Tensor& carry, const bool* m,
              torch::Tensor& out, int64_t act) {
  const int64_t B = y.size(0), N = y.size(1);
  const T *yp = y.data_ptr<T>(), *cp = carry.data_ptr<T>();
  T* op = out.data_ptr<T>();
  std::vector<T> g(N);
  for (int64_t b = 0; b < B; ++b) {
    const bool real = m == nullptr || m[b];
    if (real) {
      std::copy(cp + b * N, cp + (b + 1) * N, g.begin());
    } else {
      std::fill(g.begin(), g.end(), T(0));
    }
    if (d.p != nullptr) {
      const T* row = d.p + t * d.st + b * d.sb;
      if (d.sj == 1) {
        for (int64_t j = 0; j < N; ++j) g[j] += row[j];
      } else {
        for (int64_t j = 0; j < N; ++j) g[j] += row[j * d.sj];
      }
    }
    derivative(yp + b * N, g.data(), op + b * N, N, act);
  }
}

// out = act'(y) grad, in place allowed; over (B, N) rows
template <typename T>
void through(const torch::Tensor& y, const torch::Tensor& grad, torch::Tensor& out, int64_t act) {
  const int64_t B = y.size(0), N = y.size(1);
  const T *yp = y.data_ptr<T>(), *gp = grad.data_ptr<T>();
  T* op = out.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) derivative(yp + b * N, gp + b * N, op + b * N, N, act);
}

// carry = back on real rows, back + carry on padding rows (the held state's share passes on)
template <typename T>
void pass_on(const torch::Tensor& back, const bool* m, torch::Tensor& carry) {
  const int64_t B = back.size(0), N = back.size(1);
  const T* bp = back.data_ptr<T>();
  T* cp = carry.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) {
    const T* from = bp + b * N;
    T* to = cp + b * N;
    if (m == nullptr || m[b]) {
      std::copy(from, from + N, to);
    } else {
      for (int64_t j = 0; j < N; ++j) to[j] += from[j];
    }
  }
}

}  // namespace
}  // namespace rnnkit_native

using namespace rnnkit_native;

// us (T, B, H): the inputs' share, biases in it; writes news (each step's g(...)) and, under a mask, states (the h
// after each step; without a mask pass news again: the states are the outputs).
void elman_forward(const torch::Tensor& us, const torch::Tensor& h0, const torch::Tensor& w_hh,
                   const c10::optional<torch::Tensor>& pack, const c10::optional<torch::Tensor>& mask,
                   torch::Tensor news, torch::Tensor states, int64_t act) {
  const int64_t T = us.size(0), B = us.size(1), H = us.size(2);
  check_steps(us, T, B, H, "inputs' share");
  check_steps(news, T, B, H, "outputs");
  check_steps(states, T, B, H, "states");
  const bool* m = mask_rows(mask, T, B);
  torch::Tensor h = h0.contiguous();
  const Product recurrent(w_hh, pack);
  AT_DISPATCH_FLOATING_TYPES(us.scalar_type(), "elman_forward", [&] {
    for (int64_t t = 0; t < T; ++t) {
      torch::Tensor out = news.select(0, t);
      recurrent(h, out);
      add_activate<scalar_t>(out, us.data_ptr<scalar_t>() + t * B * H, H, act);
      h = advance<scalar_t>(m, t, out, h, states);
    }
  });
}

// carry (B, H), contiguous: in, dL/dh after the last step; out, dL/dh0. Writes dz (T, B, H), the gradients of each
// step's pre-activation.
void elman_backward(const c10::optional<torch::Tensor>& d_news, torch::Tensor carry, const torch::Tensor& news,
                    const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& mask, torch::Tensor dz,
                    int64_t act) {
  const int64_t T = news.size(0), B = news.size(1), H = news.size(2);
  check_steps(news, T, B, H, "outputs");
  check_steps(dz, T, B, H, "gradients");
  check_state(carry, B, H, "carry");
  if (d_news.has_value() && d_news->defined()) check_grads(*d_news, T, B, H, "output gradients");
  const bool* m = mask_rows(mask, T, B);
  torch::Tensor back = torch::empty_like(carry);
  const Product recurrent(w_hh.t(), c10::nullopt);  // dz W_hh (MKL's: oneDNN's was no faster here, module top)
  AT_DISPATCH_FLOATING_TYPES(news.scalar_type(), "elman_backward", [&] {
    using T_ = scalar_t;
    const Incoming<T_> d(d_news);
    for (int64_t t = T - 1; t >= 0; --t) {
      const bool* mt = m == nullptr ? nullptr : m + t * B;
      torch::Tensor dzt = dz.select(0, t);
      incoming<T_>(news.select(0, t), d, t, carry, mt, dzt, act);
      recurrent(dzt, back);
      pass_on<T_>(back, mt, carry);
    }
  });
}

// The LSTM's forward alone (no gradient wanted: nothing kept for a backward). xs (T, B, 4H): the inputs' share
// (W_ih x + b_ih); b_hh (4H) or none; h and c (B, H): h0 and c0 in, the final state out. Writes each step's h into hs
// (T, B, H). A step is z = h W_hh^T (oneDNN's product where Python passes the packed weight, as the training loop
// takes it), then per row z + x_t + b_hh and gated_steps.cpp's equations; a padding row keeps its h and c.
void lstm_inference(const torch::Tensor& xs, const c10::optional<torch::Tensor>& b_hh, const torch::Tensor& h0,
                    const torch::Tensor& c0, const torch::Tensor& w_hh, const c10::optional<torch::Tensor>& pack,
                    const c10::optional<torch::Tensor>& mask, torch::Tensor hs, torch::Tensor h, torch::Tensor c,
                    int64_t act, int64_t gate) {
  const int64_t T = xs.size(0), B = xs.size(1), H = xs.size(2) / 4;
  check_steps(xs, T, B, 4 * H, "inputs' share");
  check_steps(hs, T, B, H, "outputs");
  check_state(h, B, H, "h");
  check_state(c, B, H, "c");
  torch::Tensor bias;
  if (b_hh.has_value() && b_hh->defined()) {
    bias = b_hh->contiguous();
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == 4 * H, "rnnkit native: the bias must be (", 4 * H, ")");
  }
  const bool* m = mask_rows(mask, T, B);
  const Product recurrent(w_hh, pack);
  h.copy_(h0);
  c.copy_(c0);
  torch::Tensor z = torch::empty({B, 4 * H}, xs.options()), c_new = torch::empty({B, H}, xs.options()),
                phi = torch::empty({B, H}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "lstm_inference", [&] {
    using T_ = scalar_t;
    const T_* b_p = bias.defined() ? bias.data_ptr<T_>() : nullptr;
    T_ *zp = z.data_ptr<T_>(), *hp = h.data_ptr<T_>(), *cp = c.data_ptr<T_>(), *np = c_new.data_ptr<T_>(),
       *pp = phi.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      recurrent(h, z);
      const T_* x_t = xs.data_ptr<T_>() + t * B * 4 * H;
      T_* out_t = hs.data_ptr<T_>() + t * B * H;
      const bool* mt = m == nullptr ? nullptr : m + t * B;
      at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (4 * H)), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          T_* zb = zp + b * 4 * H;
          const T_* xb = x_t + b * 4 * H;
          if (b_p != nullptr) {
            for (int64_t j = 0; j < 4 * H; ++j) zb[j] += xb[j] + b_p[j];
          } else {
            for (int64_t j = 0; j < 4 * H; ++j) zb[j] += xb[j];
          }
          T_* out = out_t + b * H;
          lstm_row(zb, cp + b * H, np + b * H, pp + b * H, out, H, act, gate);
          if (mt == nullptr || mt[b]) {  // the new state; a padding row's stays
            std::copy(np + b * H, np + (b + 1) * H, cp + b * H);
            std::copy(out, out + H, hp + b * H);
          }
        }
      });
    }
  });
}

// xs (T, B, H): the inputs' share (W_ih x + b_ih); writes hs (T, B, H), ys (T, B, O) and, under a mask, states (the
// y after each step; without a mask pass ys again).
void jordan_forward(const torch::Tensor& xs, const torch::Tensor& y0, const torch::Tensor& w_yh,
                    const torch::Tensor& w_hy, const c10::optional<torch::Tensor>& b_hy,
                    const c10::optional<torch::Tensor>& pack_yh, const c10::optional<torch::Tensor>& pack_hy,
                    const c10::optional<torch::Tensor>& mask, torch::Tensor hs, torch::Tensor ys, torch::Tensor states,
                    int64_t act_h, int64_t act_y) {
  const int64_t T = xs.size(0), B = xs.size(1), H = xs.size(2), O = w_hy.size(0);
  check_steps(xs, T, B, H, "inputs' share");
  check_steps(hs, T, B, H, "hidden layers");
  check_steps(ys, T, B, O, "outputs");
  check_steps(states, T, B, O, "states");
  const bool* m = mask_rows(mask, T, B);
  torch::Tensor bias;
  if (b_hy.has_value() && b_hy->defined()) {
    bias = b_hy->contiguous();
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == O, "rnnkit native: the output bias must be (", O, ")");
  }
  torch::Tensor y = y0.contiguous();
  const Product recurrent(w_yh, pack_yh), output(w_hy, pack_hy);
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "jordan_forward", [&] {
    const scalar_t* b = bias.defined() ? bias.data_ptr<scalar_t>() : nullptr;
    for (int64_t t = 0; t < T; ++t) {
      torch::Tensor h = hs.select(0, t), out = ys.select(0, t);
      recurrent(y, h);
      add_activate<scalar_t>(h, xs.data_ptr<scalar_t>() + t * B * H, H, act_h);
      output(h, out);
      add_activate<scalar_t>(out, b, 0, act_y);
      y = advance<scalar_t>(m, t, out, y, states);
    }
  });
}

// carry (B, O), contiguous: in, dL/dy after the last step; out, dL/dy0. Writes dz (T, B, H) and d_o (T, B, O), the
// gradients of each step's two pre-activations.
void jordan_backward(const c10::optional<torch::Tensor>& d_ys, torch::Tensor carry, const torch::Tensor& hs,
                     const torch::Tensor& ys, const torch::Tensor& w_yh, const torch::Tensor& w_hy,
                     const c10::optional<torch::Tensor>& mask, torch::Tensor dz, torch::Tensor d_o, int64_t act_h,
                     int64_t act_y) {
  const int64_t T = hs.size(0), B = hs.size(1), H = hs.size(2), O = ys.size(2);
  check_steps(hs, T, B, H, "hidden layers");
  check_steps(ys, T, B, O, "outputs");
  check_steps(dz, T, B, H, "hidden gradients");
  check_steps(d_o, T, B, O, "output gradients");
  check_state(carry, B, O, "carry");
  if (d_ys.has_value() && d_ys->defined()) check_grads(*d_ys, T, B, O, "gradients of the outputs");
  const bool* m = mask_rows(mask, T, B);
  torch::Tensor back = torch::empty_like(carry), tmp = torch::empty({B, H}, hs.options());
  const Product recurrent(w_yh.t(), c10::nullopt), output(w_hy.t(), c10::nullopt);  // dz W_yh, do W_hy
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "jordan_backward", [&] {
    using T_ = scalar_t;
    const Incoming<T_> d(d_ys);
    for (int64_t t = T - 1; t >= 0; --t) {
      const bool* mt = m == nullptr ? nullptr : m + t * B;
      torch::Tensor dot = d_o.select(0, t), dzt = dz.select(0, t);
      incoming<T_>(ys.select(0, t), d, t, carry, mt, dot, act_y);
      output(dot, tmp);
      through<T_>(hs.select(0, t), tmp, dzt, act_h);
      recurrent(dzt, back);
      pass_on<T_>(back, mt, carry);
    }
  });
}
