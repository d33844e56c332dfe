// Generation's step of a language model or music model of recurrent layers, any of rnnkit's cells
// (rnnkit.tasks.native_step), the products included, in one call. At batch 1 a step is memory-bound (a 2 x 512 LSTM over 10,000 words reads 37 MB
// of weights a token), and the Python around a cell's half-dozen torch calls cost 80-90 us a layer beside a 156 us
// product, measured after products that streamed megabytes through the caches.
//
// Every product is F.linear's own (addmm of the rows and w^T, mm without a bias) and every row's equations the step
// kernels' of gated_steps.cpp, which the cells' step() in Python calls too: the same numbers
// (tests/tasks/test_native_step.py). The one difference: with ids, the first cell takes W_ih x (+ b) from a table.
#include "kernels.h"

namespace {

enum Kind : int64_t { kLstm = 0, kGru = 1, kElman = 2, kJordan = 3, kMinGru = 4, kMinLstm = 5, kScrn = 6, kClockwork = 7 };

using OptionalTensor = c10::optional<torch::Tensor>;

// F.linear of rows x and w (out, in): its own addmm(b, x, w^T), or mm without a bias; or, where w is a
// rnnkit.tasks.stepping.ParallelMatrix and x has at most block_rows rows, that class's product over its column
// blocks (parts, in, width), in the same operations
struct Matrix {
  const torch::Tensor& w;
  const OptionalTensor& blocks;
  int64_t block_rows;

  torch::Tensor times(const torch::Tensor& x, const OptionalTensor& b) const {
    const bool biased = b.has_value() && b->defined();
    if (blocks.has_value() && blocks->defined() && x.size(0) <= block_rows) {
      const int64_t parts = blocks->size(0), width = blocks->size(2), rows = x.size(0);
      torch::Tensor y = at::bmm(x.expand({parts, rows, x.size(1)}), *blocks);
      y = y.transpose(0, 1).reshape({rows, parts * width}).narrow(1, 0, w.size(0));
      return biased ? y + *b : y;
    }
    return biased ? at::addmm(*b, x, w.t()) : at::mm(x, w.t());
  }

  // the columns [from, from + n) of w, as a matrix of their own (an LSTM's W_hh in [W_ih W_hh])
  torch::Tensor columns_times(const torch::Tensor& x, int64_t from, int64_t n) const {
    if (blocks.has_value() && blocks->defined() && x.size(0) <= block_rows) {
      const OptionalTensor part = blocks->narrow(1, from, n);
      return Matrix{w, part, block_rows}.times(x, c10::nullopt);
    }
    return at::mm(x, w.narrow(1, from, n).t());
  }
};

void check_matrix(const torch::Tensor& w, int64_t rows, int64_t cols, size_t layer, int64_t cell) {
  TORCH_CHECK(w.dim() == 2 && w.size(0) == rows && w.size(1) == cols, "rnnkit native: layer ", layer, " cell ", cell,
              "'s weight must be (", rows, ", ", cols, "), got ", w.sizes());
}

torch::Tensor state(const OptionalTensor& t, int64_t L, int64_t B, int64_t H, size_t layer) {
  TORCH_CHECK(t.has_value() && t->defined() && t->dim() == 3 && t->size(0) == L && t->size(1) == B && t->size(2) == H,
              "rnnkit native: layer ", layer, "'s state must be (", L, ", ", B, ", ", H, "), got ",
              t.has_value() && t->defined() ? t->sizes() : c10::IntArrayRef{});
  return t->contiguous();
}

void activate_rows(torch::Tensor t, int64_t act) {  // in place, over (B, n) rows of stride t.stride(0)
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "model_step", [&] {
    for (int64_t r = 0; r < t.size(0); ++r) {
      scalar_t* row = t.data_ptr<scalar_t>() + r * t.stride(0);
      rnnkit_native::activate(row, row, t.size(1), act);
    }
  });
}

// One cell's step: its matrices and biases are w[at], w[at + 1], ... (model_step's order); share, where defined,
// is W_ih x + b read from the table. Each writes the cell's new state into h (and c), the cell's output.
struct Cell {
  const std::vector<torch::Tensor>& w;
  const std::vector<OptionalTensor>& blocks;
  const std::vector<OptionalTensor>& b;
  size_t at;
  int64_t block_rows;
  size_t layer;
  int64_t index;

  Matrix matrix(size_t j) const { return Matrix{w[at + j], blocks[at + j], block_rows}; }

  // [W_ih W_hh] (4H, In + H) and the biases summed; equations: gated_steps.cpp's lstm_forward_step
  void lstm(const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& h_prev,
            const torch::Tensor& c_prev, torch::Tensor h, torch::Tensor c, int64_t act, int64_t gate) const {
    const int64_t H = h_prev.size(1), In = x.size(1);
    check_matrix(w[at], 4 * H, In + H, layer, index);
    torch::Tensor z = share.defined() ? share.add_(matrix(0).columns_times(h_prev, In, H))
                                      : matrix(0).times(at::cat({x, h_prev}, 1), b[at]);
    torch::Tensor phi = torch::empty_like(h);
    lstm_forward_step(z, c10::nullopt, c_prev, c, phi, h, act, gate);
  }

  // W_ih (gH, In), W_hh (gH, H) and their biases: a GRU (reset after the product, g = 3) or an Elman cell,
  // h = act(W_ih x + b_ih + W_hh h + b_hh) (g = 1)
  void gru_or_elman(Kind kind, const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& h_prev,
                    torch::Tensor h, int64_t act, int64_t gate) const {
    const int64_t H = h_prev.size(1), gates = kind == kGru ? 3 : 1;
    check_matrix(w[at], gates * H, x.size(1), layer, index);
    check_matrix(w[at + 1], gates * H, H, layer, index);
    const torch::Tensor xs = share.defined() ? share : matrix(0).times(x, b[at]);
    const torch::Tensor hh = matrix(1).times(h_prev, b[at + 1]);
    if (kind == kGru) {
      gru_forward_step(xs, hh, h_prev, h, act, gate);
    } else {
      at::add_out(h, xs, hh);
      activate_rows(h, act);
    }
  }

  // W_ih (H, In), W_yh (H, O), W_hy (O, H), biases b_ih, none, b_hy (rnnkit.JordanCell):
  // h = g(W_ih x + b_ih + W_yh y), y = act_y(W_hy h + b_hy); the state and the output are y
  void jordan(const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& y_prev, torch::Tensor y,
              int64_t g, int64_t act_y) const {
    const int64_t O = y_prev.size(1), H = w[at].size(0);
    check_matrix(w[at], H, x.size(1), layer, index);
    check_matrix(w[at + 1], H, O, layer, index);
    check_matrix(w[at + 2], O, H, layer, index);
    const torch::Tensor xs = share.defined() ? share : matrix(0).times(x, b[at]);
    torch::Tensor hidden = xs + matrix(1).times(y_prev, b[at + 1]);
    activate_rows(hidden, g);
    y.copy_(matrix(2).times(hidden, b[at + 2]));
    activate_rows(y, act_y);
  }

  // W_ih (S + H, In) = [B; A], W_sh (H, S) = P, W_hh (H, H) = R, biases None, b, None (rnnkit.SCRNCell):
  // s = (1 - alpha) B x + alpha s_prev, h = sigma(P s + b + A x + R h_prev); the output is [h; s]
  void scrn(const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& h_prev,
            const torch::Tensor& s_prev, torch::Tensor h, torch::Tensor s, double alpha) const {
    const int64_t H = h_prev.size(1), S = s_prev.size(1);
    check_matrix(w[at], S + H, x.size(1), layer, index);
    check_matrix(w[at + 1], H, S, layer, index);
    check_matrix(w[at + 2], H, H, layer, index);
    const torch::Tensor xs = share.defined() ? share : matrix(0).times(x, b[at]);
    s.copy_(xs.narrow(1, 0, S) * (1 - alpha) + s_prev * alpha);
    at::sigmoid_out(h, matrix(1).times(s, b[at + 1]) + xs.narrow(1, S, H) + matrix(2).times(h_prev, b[at + 2]));
  }

  // W_ih (H, In), W_hh (H, H) already masked (rnnkit.ClockworkCell.for_steps) and b_ih, None; unit_period (H) int64,
  // the period of each unit's module (increasing). Module i ticks where t mod T_i = 0: h = g(W_ih x + b + W_hh h_prev)
  // there, h_prev elsewhere; t counts on. As ClockworkCell.step: where every row is at the same t and the modules
  // that tick are the first ones, only their rows of W_hh are multiplied.
  void clockwork(const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& h_prev,
                 const torch::Tensor& t_prev, torch::Tensor h, torch::Tensor t, const torch::Tensor& unit_period,
                 int64_t act) const {
    const int64_t B = h_prev.size(0), H = h_prev.size(1);
    check_matrix(w[at], H, x.size(1), layer, index);
    check_matrix(w[at + 1], H, H, layer, index);
    TORCH_CHECK(unit_period.numel() == H && unit_period.scalar_type() == torch::kLong && t_prev.numel() == B,
                "rnnkit native: a Clockwork cell needs (H) periods and (B) steps");
    const torch::Tensor xs = share.defined() ? share : matrix(0).times(x, b[at]);
    const int64_t* period = unit_period.data_ptr<int64_t>();
    const int64_t* steps = t_prev.data_ptr<int64_t>();
    bool same = true;
    for (int64_t r = 1; r < B; ++r) same = same && steps[r] == steps[0];
    int64_t rows = 0;  // the leading units that tick, where every row is at one step and they are a prefix
    bool prefix = same;
    if (same) {
      while (rows < H && steps[0] % period[rows] == 0) ++rows;
      for (int64_t j = rows; j < H && prefix; ++j) prefix = steps[0] % period[j] != 0;
    }
    if (prefix && rows == 0) {
      h.copy_(h_prev);
    } else if (prefix && rows < H) {
      torch::Tensor ticking = h.narrow(1, 0, rows);
      ticking.copy_(xs.narrow(1, 0, rows) + at::mm(h_prev, w[at + 1].narrow(0, 0, rows).t()));
      activate_rows(ticking, act);
      h.narrow(1, rows, H - rows).copy_(h_prev.narrow(1, rows, H - rows));
    } else {
      h.copy_(xs + matrix(1).times(h_prev, b[at + 1]));
      activate_rows(h, act);
      if (!prefix) {  // rows at different steps, or modules that tick out of order: keep those that do not tick
        const torch::Tensor active = (t_prev.unsqueeze(1) % unit_period).eq(0);
        h.copy_(at::where(active, h, h_prev));
      }
    }
    at::add_out(t, t_prev, 1);
  }

  // W_ih (gH, In) and b_ih of a minGRU cell (g = 2, rows [z; h]) or a minLSTM cell (g = 3, rows [f; i; h]), which
  // have no recurrent matrix (rnnkit/cells/mingru.py): minGRU h = h_prev + z (g(k_h) - h_prev) with z = sigma(k_z);
  // minLSTM h = (f h_prev + i g(k_h)) / (f + i) with f, i = sigma(k_f, k_i); g(x) = relu(x) + sigma(min(x, 0))
  void min_cell(Kind kind, const torch::Tensor& x, const torch::Tensor& share, const torch::Tensor& h_prev,
                torch::Tensor h) const {
    const int64_t B = h_prev.size(0), H = h_prev.size(1), gates = kind == kMinGru ? 2 : 3;
    check_matrix(w[at], gates * H, x.size(1), layer, index);
    const torch::Tensor k = (share.defined() ? share : matrix(0).times(x, b[at])).contiguous();
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "model_step", [&] {
      using T = scalar_t;
      for (int64_t r = 0; r < B; ++r) {
        const T *kr = k.data_ptr<T>() + r * gates * H, *hp = h_prev.data_ptr<T>() + r * H;
        T* out = h.data_ptr<T>() + r * H;
        const T* kh = kr + (gates - 1) * H;
        for (int64_t j = 0; j < H; ++j) {
          const T candidate = std::max(kh[j], T(0)) + rnnkit_native::sigmoid(std::min(kh[j], T(0)));
          if (kind == kMinGru) {
            const T z = rnnkit_native::sigmoid(kr[j]);
            out[j] = hp[j] + z * (candidate - hp[j]);
          } else {
            const T f = rnnkit_native::sigmoid(kr[j]), i = rnnkit_native::sigmoid(kr[H + j]);
            out[j] = (f * hp[j] + i * candidate) / (f + i);
          }
        }
      }
    });
  }
};

}  // namespace

// step: one step of ids (1, B) where there is an embedding (V, In), else of features (1, B, In).
// For layer i:
//   kinds[i]: its cells' kind (Kind);
//   w[i], b[i]: its cells' matrices and biases in order (any layout, a bias may be None): an LSTM cell's
//     [W_ih W_hh] (4H, In + H) side by side (rnnkit.LSTMCell.for_steps) and its two biases summed; a GRU cell's
//     W_ih (3H, In) and W_hh (3H, H) and their biases (reset after the product); an Elman cell's W_ih (H, In) and
//     W_hh (H, H) and theirs; a Jordan cell's W_ih, W_yh, W_hy and b_ih, None, b_hy; an SCRN cell's W_ih, W_sh,
//     W_hh and None, b, None; a Clockwork cell's W_ih and masked W_hh and b_ih, None; a minGRU or minLSTM cell's
//     W_ih and b_ih (Cell above);
//   blocks[i]: the column blocks of each matrix that has them, else None (Matrix above);
//   h0[i] (L_i, B, S_i): its state before the step (a Jordan layer's is y), with c0[i] an LSTM's c, an SCRN's
//     context s or a Clockwork layer's steps t (L_i, B) (else None);
//   acts[2i], acts[2i + 1]: its activation numbers (an LSTM's or GRU's phi and sigma, an Elman cell's g twice, a
//     Jordan cell's g and act_y, a Clockwork cell's g twice; unused for the SCRN and min cells);
//   alphas[i]: an SCRN layer's alpha (else unused); periods[i]: a Clockwork layer's units' periods (H) (else None);
//   residual[i]: whether each cell's input is added to its output from the second cell on.
// head_w (V, H), head_blocks and head_b: the output layer. With a table (V, gates), the first cell takes W_ih x + b
// from the word's row: the step then reads W_hh alone of that cell's weights (4 of the 8 MB of a 512-unit LSTM's).
// Returns the logits (1, B, V) and each layer's new state: h (or y), and c, s or t (None for the other kinds).
std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>> model_step(
    const torch::Tensor& step, const OptionalTensor& embedding, const OptionalTensor& table,
    const std::vector<int64_t>& kinds, const std::vector<std::vector<torch::Tensor>>& w,
    const std::vector<std::vector<OptionalTensor>>& blocks, const std::vector<std::vector<OptionalTensor>>& b,
    const std::vector<OptionalTensor>& h0, const std::vector<OptionalTensor>& c0, const std::vector<int64_t>& acts,
    const std::vector<double>& alphas, const std::vector<OptionalTensor>& periods, const std::vector<bool>& residual,
    const torch::Tensor& head_w, const OptionalTensor& head_blocks, const OptionalTensor& head_b, int64_t block_rows) {
  at::NoGradGuard no_grad;  // generation: nothing here is differentiated (the weights are copies)
  const size_t layers = kinds.size();
  TORCH_CHECK(w.size() == layers && blocks.size() == layers && b.size() == layers && h0.size() == layers &&
                  c0.size() == layers && acts.size() == 2 * layers && alphas.size() == layers &&
                  periods.size() == layers && residual.size() == layers,
              "rnnkit native: one list entry a layer (two activations)");
  const bool embedded = embedding.has_value() && embedding->defined();
  TORCH_CHECK(step.dim() == (embedded ? 2 : 3) && step.size(0) == 1, "rnnkit native: one step must be (1, B",
              embedded ? "" : ", features", "), got ", step.sizes());
  torch::Tensor ids, x = step[0];
  if (embedded) {  // F.embedding's rows
    ids = x.to(embedding->device(), torch::kLong).contiguous();
    for (int64_t r = 0; r < ids.numel(); ++r) {  // F.embedding's IndexError and message
      const int64_t id = ids.data_ptr<int64_t>()[r];
      TORCH_CHECK_INDEX(id >= 0 && id < embedding->size(0), "index out of range in self (id ", id, ", ",
                        embedding->size(0), " words)");
    }
    x = embedding->index_select(0, ids);
  }
  const int64_t B = x.size(0);
  const bool tabled = embedded && table.has_value() && table->defined();
  TORCH_CHECK(!tabled || (table->dim() == 2 && table->size(1) == w.at(0).at(0).size(0)),
              "rnnkit native: the table must hold the first cell's ", w.at(0).at(0).size(0), " gates a word");
  std::vector<torch::Tensor> hs, cs;
  for (size_t i = 0; i < layers; ++i) {
    const Kind kind = static_cast<Kind>(kinds[i]);
    TORCH_CHECK(kind >= kLstm && kind <= kClockwork, "rnnkit native: unknown kind of cell ", kinds[i]);
    const bool single = kind == kLstm || kind == kMinGru || kind == kMinLstm;  // one matrix a cell
    TORCH_CHECK(kind != kClockwork || (periods[i].has_value() && periods[i]->defined()),
                "rnnkit native: a Clockwork layer needs its units' periods");
    const size_t per_cell = single ? 1 : kind == kJordan || kind == kScrn ? 3 : 2;
    TORCH_CHECK(w[i].size() >= per_cell && w[i].size() % per_cell == 0 && b[i].size() == w[i].size() &&
                    blocks[i].size() == w[i].size(),
                "rnnkit native: layer ", i, " must give ", per_cell, " matrices and biases a cell");
    const int64_t L = static_cast<int64_t>(w[i].size() / per_cell);
    // the state's width: H, or a Jordan cell's output size
    const int64_t S = kind == kLstm     ? w[i][0].size(0) / 4
                      : kind == kMinGru   ? w[i][0].size(0) / 2
                      : kind == kMinLstm  ? w[i][0].size(0) / 3
                      : kind == kJordan   ? w[i][2].size(0)
                                          : w[i][1].size(1);
    const bool two = kind == kLstm || kind == kScrn;  // a second state: an LSTM's c, an SCRN's context s
    const int64_t S2 = kind == kScrn ? w[i][1].size(1) : S;
    const torch::Tensor state_h = state(h0[i], L, B, kind == kScrn ? w[i][2].size(0) : S, i);
    torch::Tensor state_c = two ? state(c0[i], L, B, S2, i) : torch::Tensor();
    if (kind == kClockwork) {  // the second field is the step counter t (L, B)
      TORCH_CHECK(c0[i].has_value() && c0[i]->defined() && c0[i]->dim() == 2 && c0[i]->size(0) == L &&
                      c0[i]->size(1) == B && c0[i]->scalar_type() == torch::kLong,
                  "rnnkit native: layer ", i, "'s steps must be (", L, ", ", B, ") int64");
      state_c = c0[i]->contiguous();
    }
    torch::Tensor h = torch::empty_like(state_h), c = state_c.defined() ? torch::empty_like(state_c) : torch::Tensor();
    for (int64_t k = 0; k < L; ++k) {
      const Cell cell{w[i], blocks[i], b[i], static_cast<size_t>(k) * per_cell, block_rows, i, k};
      // the first cell's input share W_ih x + b: a row of the table, or undefined (the cell computes it)
      const torch::Tensor share = tabled && i == 0 && k == 0 ? table->index_select(0, ids) : torch::Tensor();
      torch::Tensor h_k = h[k];
      switch (kind) {
        case kLstm: {
          torch::Tensor c_k = c[k];
          cell.lstm(x, share, state_h[k], state_c[k], h_k, c_k, acts[2 * i], acts[2 * i + 1]);
          break;
        }
        case kGru:
        case kElman:
          cell.gru_or_elman(kind, x, share, state_h[k], h_k, acts[2 * i], acts[2 * i + 1]);
          break;
        case kJordan:
          cell.jordan(x, share, state_h[k], h_k, acts[2 * i], acts[2 * i + 1]);
          break;
        case kMinGru:
        case kMinLstm:
          cell.min_cell(kind, x, share, state_h[k], h_k);
          break;
        case kScrn:
          cell.scrn(x, share, state_h[k], state_c[k], h_k, c[k], alphas[i]);
          break;
        case kClockwork:
          cell.clockwork(x, share, state_h[k], state_c[k], h_k, c[k], *periods[i], acts[2 * i]);
          break;
      }
      const torch::Tensor y = kind == kScrn ? at::cat({h_k, c[k]}, 1) : h_k;
      x = residual[i] && k > 0 ? y + x : y;
    }
    hs.push_back(h);
    cs.push_back(c);
  }
  TORCH_CHECK(head_w.dim() == 2 && head_w.size(1) == x.size(1), "rnnkit native: the output layer must be (V, ",
              x.size(1), "), got ", head_w.sizes());
  return {Matrix{head_w, head_blocks, block_rows}.times(x, head_b).unsqueeze(0), hs, cs};
}
