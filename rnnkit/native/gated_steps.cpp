// One step's elementwise work of the gated cells, in one call each: what rnnkit.bptt's Python loop otherwise spends
// a dozen torch operations (and their Python) on, per step; and generation's GRU step (rnnkit.tasks.stepping).
// The matrix products stay in Python (oneDNN or MKL through torch); these kernels take the gates after the product.
// Generation's whole step of a model, products included, is model_step.cpp's, and calls the step kernels here.
//
// LSTM equations (rnnkit/cells/lstm.py), gates z = [i f g o] of width H each, sigma the gate activation and phi
// the cell activation:
//   forward:   i, f, o = sigma(z_i, z_f, z_o);  g = phi(z_g);  c = f c_prev + i g;  h = o phi(c)
//   backward:  dh = dh_out + dh_next;  dc = phi'(c) o dh + dc_next
//              dz_i = sigma'(i) g dc,  dz_f = sigma'(f) c_prev dc,  dz_g = phi'(g) i dc,  dz_o = sigma'(o) phi(c) dh
//              the next shares: f dc (and dz W_hh, taken in Python)
// Every derivative is read from the activation's output, as rnnkit.bptt does. With a mask (padding), a row
// whose step is padding holds its state: its incoming shares pass on unchanged and its own step adds nothing.
//
// GRU (rnnkit/cells/gru.py, reset after the product), x = W_ih x + b_ih and g = W_hh h + b_hh, each [r z n]:
//   r, z = sigma(x_r + g_r, x_z + g_z);  n = phi(x_n + r g_n);  h = n + z (h_prev - n)
//
// The activations are kernels.h's. This file also holds the module's bindings, loops.cpp's among them.
#include "kernels.h"

using namespace rnnkit_native;

// z (B, 4H): the gates before activation (W_ih x + biases), replaced by their activations; zh, when given, is
// added first (the recurrent product W_hh h, so that its sum takes no pass of its own). Writes c, phi(c) and h.
void lstm_forward_step(torch::Tensor z, const c10::optional<torch::Tensor>& zh, const torch::Tensor& c_prev,
                       torch::Tensor c, torch::Tensor phi, torch::Tensor h, int64_t act, int64_t gate) {
  const int64_t B = z.size(0), H = z.size(1) / 4;
  check_rows(z, B, 4 * H, "gates");
  const bool add = zh.has_value() && zh->defined();
  if (add) check_rows(*zh, B, 4 * H, "recurrent product");
  for (const torch::Tensor& t : {c_prev, c, phi, h}) check_rows(t, B, H, "state");
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "lstm_forward_step", [&] {
    using T = scalar_t;
    T *zp = z.data_ptr<T>(), *cp = c.data_ptr<T>(), *pp = phi.data_ptr<T>(), *hp = h.data_ptr<T>();
    const T* cprev = c_prev.data_ptr<T>();
    const T* zhp = add ? zh->data_ptr<T>() : nullptr;
    const int64_t zs = z.stride(0), cps = c_prev.stride(0), cs = c.stride(0), ps = phi.stride(0),
                  hs = h.stride(0), zhs = add ? zh->stride(0) : 0;
    at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (4 * H)), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        T* zi = zp + b * zs;
        if (add) {
          const T* zh_b = zhp + b * zhs;
          for (int64_t j = 0; j < 4 * H; ++j) zi[j] += zh_b[j];
        }
        lstm_row(zi, cprev + b * cps, cp + b * cs, pp + b * ps, hp + b * hs, H, act, gate);
      }
    });
  });
}

// The backward of one step. z: the activated gates (B, 4H); c_prev, phi (B, H); dh_out: the gradient reaching
// this step's output; dh_next, dc_next: the shares from the step after. Writes dz (B, 4H) and, in place of
// dc_next, the next share f dc. mask: (B) bool, true where the step is real, or undefined (no padding); then
// dh_carry (B, H) receives the dh share a padding row passes on unchanged (0 on real rows), to add to dz W_hh.
void lstm_backward_step(const torch::Tensor& z, const torch::Tensor& c_prev, const torch::Tensor& phi,
                        const torch::Tensor& dh_out, const torch::Tensor& dh_next, torch::Tensor dc_next,
                        torch::Tensor dz, const c10::optional<torch::Tensor>& mask,
                        const c10::optional<torch::Tensor>& dh_carry, int64_t act, int64_t gate) {
  const int64_t B = z.size(0), H = z.size(1) / 4;
  check_rows(z, B, 4 * H, "gates");
  check_rows(dz, B, 4 * H, "gate gradients");
  for (const torch::Tensor& t : {c_prev, phi, dh_out, dh_next, dc_next}) check_rows(t, B, H, "state");
  const bool masked = mask.has_value() && mask->defined();
  if (masked) {
    TORCH_CHECK(mask->scalar_type() == torch::kBool && mask->numel() == B && mask->is_contiguous(),
                "rnnkit native: the mask must be (B) bool");
    TORCH_CHECK(dh_carry.has_value() && dh_carry->defined(), "rnnkit native: a mask needs dh_carry");
    check_rows(*dh_carry, B, H, "dh_carry");
  }
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "lstm_backward_step", [&] {
    using T = scalar_t;
    const T *zp = z.data_ptr<T>(), *cprev = c_prev.data_ptr<T>(), *pp = phi.data_ptr<T>(),
            *dho = dh_out.data_ptr<T>(), *dhn = dh_next.data_ptr<T>();
    T *dcn = dc_next.data_ptr<T>(), *dzp = dz.data_ptr<T>();
    const bool* m = masked ? mask->data_ptr<bool>() : nullptr;
    T* carry = masked ? dh_carry->data_ptr<T>() : nullptr;
    const int64_t zs = z.stride(0), cps = c_prev.stride(0), ps = phi.stride(0), dhos = dh_out.stride(0),
                  dhns = dh_next.stride(0), dcns = dc_next.stride(0), dzs = dz.stride(0),
                  cas = masked ? dh_carry->stride(0) : 0;
    at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (4 * H)), [&](int64_t begin, int64_t end) {
      std::vector<T> dh(H), dc(H), tmp(H);
      for (int64_t b = begin; b < end; ++b) {
        const bool real = m == nullptr || m[b];
        const T* zi = zp + b * zs;
        const T *i = zi, *f = zi + H, *g = zi + 2 * H, *o = zi + 3 * H;
        const T *cprev_b = cprev + b * cps, *phi_b = pp + b * ps, *dho_b = dho + b * dhos,
                *dhn_b = dhn + b * dhns;
        T *dcn_b = dcn + b * dcns, *dz_b = dzp + b * dzs;
        // a padding row: its own step's gradient flows into its gates, the carried shares skip the step
        for (int64_t j = 0; j < H; ++j) dh[j] = real ? dho_b[j] + dhn_b[j] : dho_b[j];
        for (int64_t j = 0; j < H; ++j) tmp[j] = dh[j] * o[j];
        derivative(phi_b, tmp.data(), dc.data(), H, act);
        if (real) {
          for (int64_t j = 0; j < H; ++j) dc[j] += dcn_b[j];
        }
        for (int64_t j = 0; j < H; ++j) tmp[j] = dc[j] * g[j];
        derivative(i, tmp.data(), dz_b, H, gate);
        for (int64_t j = 0; j < H; ++j) tmp[j] = dc[j] * cprev_b[j];
        derivative(f, tmp.data(), dz_b + H, H, gate);
        for (int64_t j = 0; j < H; ++j) tmp[j] = dc[j] * i[j];
        derivative(g, tmp.data(), dz_b + 2 * H, H, act);
        for (int64_t j = 0; j < H; ++j) tmp[j] = dh[j] * phi_b[j];
        derivative(o, tmp.data(), dz_b + 3 * H, H, gate);
        if (real) {
          for (int64_t j = 0; j < H; ++j) dcn_b[j] = dc[j] * f[j];
        } else {  // the held c's share passes on, plus this step's f dc
          for (int64_t j = 0; j < H; ++j) dcn_b[j] += dc[j] * f[j];
        }
        if (carry != nullptr) {
          T* carry_b = carry + b * cas;
          for (int64_t j = 0; j < H; ++j) carry_b[j] = real ? T(0) : dhn_b[j];
        }
      }
    });
  });
}

// One GRU step forward (reset after the product): x, g (B, 3H) the input's and the state's shares, h_prev (B, H);
// writes h (B, H). For generation, where no gradient is wanted: nothing is kept for a backward.
void gru_forward_step(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& h_prev, torch::Tensor h,
                      int64_t act, int64_t gate) {
  const int64_t B = x.size(0), H = x.size(1) / 3;
  check_rows(x, B, 3 * H, "input share");
  check_rows(g, B, 3 * H, "state share");
  for (const torch::Tensor& t : {h_prev, h}) check_rows(t, B, H, "state");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward_step", [&] {
    using T = scalar_t;
    const T *xp = x.data_ptr<T>(), *gp = g.data_ptr<T>(), *hpp = h_prev.data_ptr<T>();
    T* hp = h.data_ptr<T>();
    const int64_t xs = x.stride(0), gs = g.stride(0), hps = h_prev.stride(0), hs = h.stride(0);
    at::parallel_for(0, B, std::max<int64_t>(1, kGrain / (3 * H)), [&](int64_t begin, int64_t end) {
      std::vector<T> rz(2 * H);
      for (int64_t b = begin; b < end; ++b) {
        const T *x_b = xp + b * xs, *g_b = gp + b * gs, *hprev_b = hpp + b * hps;
        T* h_b = hp + b * hs;
        for (int64_t j = 0; j < 2 * H; ++j) rz[j] = x_b[j] + g_b[j];
        activate(rz.data(), rz.data(), 2 * H, gate);  // r and z lie side by side
        const T *r = rz.data(), *z = rz.data() + H;
        for (int64_t j = 0; j < H; ++j) h_b[j] = x_b[2 * H + j] + r[j] * g_b[2 * H + j];
        activate(h_b, h_b, H, act);  // n
        for (int64_t j = 0; j < H; ++j) h_b[j] = h_b[j] + z[j] * (hprev_b[j] - h_b[j]);
      }
    });
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward_step", &gru_forward_step, "one GRU step forward, reset after the product (generation)");
  m.def("model_step", &model_step, "generation's step of a model of recurrent layers (model_step.cpp)");
  m.def("lstm_forward_step", &lstm_forward_step, "one LSTM step's elementwise forward (rnnkit.bptt)");
  m.def("lstm_backward_step", &lstm_backward_step, "one LSTM step's elementwise backward (rnnkit.bptt)");
  m.def("elman_forward", &elman_forward, "the Elman loop h_t = g(u_t + W_hh h_{t-1}), forward (rnnkit.bptt)");
  m.def("elman_backward", &elman_backward, "the Elman loop's backward through time (rnnkit.bptt)");
  m.def("lstm_inference", &lstm_inference, "the LSTM loop's forward alone, products included (rnnkit.bptt)");
  m.def("jordan_forward", &jordan_forward, "the Jordan loop, forward (rnnkit.bptt)");
  m.def("sample_rows", &sample_rows, "the default draw of rnnkit.tasks.sampling.sample_next");
  m.def("jordan_backward", &jordan_backward, "the Jordan loop's backward through time (rnnkit.bptt)");
}
