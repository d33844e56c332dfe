// Generation's step of a language model or music model of LSTM, GRU and Elman layers (rnnkit.tasks.native_step), the
// products included, in one call. At batch 1 a step is memory-bound (a 2 x 512 LSTM over 10,000 words reads 37 MB
// of weights a token), and the Python around a cell's half-dozen torch calls cost 80-90 us a layer beside a 156 us
// product, measured after products that streamed megabytes through the caches.
//
// Every product is F.linear's own (addmm of the rows and w^T, mm without a bias) and every row's equations the step
// kernels' of gated_steps.cpp, which the cells' step() in Python calls too: the same numbers
// (tests/tasks/test_native_step.py). The one difference: with ids, the first cell takes W_ih x (+ b) from a table.
#include "kernels.h"

namespace {

enum Kind : int64_t { kLstm = 0, kGru = 1, kElman = 2 };

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

}  // namespace

// step: one step of ids (1, B) where there is an embedding (V, In), else of features (1, B, In). For layer i,
// kinds[i] is its cells' kind; w[i] and b[i] its cells' matrices and biases in order: an LSTM cell's [W_ih W_hh]
// (4H, In + H) side by side (rnnkit.LSTMCell.for_steps) and its two biases summed, a GRU cell's W_ih (3H, In) and
// W_hh (3H, H) and their biases (reset after the product), an Elman cell's W_ih (H, In) and W_hh (H, H) and theirs;
// any layout, a bias may be None; blocks[i] the column blocks of each matrix that has them (else None: Matrix
// below). h0[i] (L_i, B, H_i) is its state before the step, with c0[i] for an LSTM (else
// None); acts[2i], acts[2i + 1] its activation numbers (phi, sigma; an Elman cell's g and again g); residual[i]
// whether each cell's input is added to its output from the second cell on. head_w (V, H), head_blocks and head_b:
// the output layer. With a table (V, gates), the first cell takes W_ih x + b from the word's row: the step then reads W_hh
// alone of that cell's weights (4 of the 8 MB of a 512-unit LSTM's). Returns the logits (1, B, V) and each layer's
// new h and c (c None but for an LSTM).
std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>> model_step(
    const torch::Tensor& step, const OptionalTensor& embedding, const OptionalTensor& table,
    const std::vector<int64_t>& kinds, const std::vector<std::vector<torch::Tensor>>& w,
    const std::vector<std::vector<OptionalTensor>>& blocks, const std::vector<std::vector<OptionalTensor>>& b,
    const std::vector<OptionalTensor>& h0, const std::vector<OptionalTensor>& c0, const std::vector<int64_t>& acts,
    const std::vector<bool>& residual, const torch::Tensor& head_w, const OptionalTensor& head_blocks,
    const OptionalTensor& head_b, int64_t block_rows) {
  at::NoGradGuard no_grad;  // generation: nothing here is differentiated (the weights are copies)
  const size_t layers = kinds.size();
  TORCH_CHECK(w.size() == layers && blocks.size() == layers && b.size() == layers && h0.size() == layers &&
                  c0.size() == layers &&
                  acts.size() == 2 * layers && residual.size() == layers,
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
    const bool lstm = kinds[i] == kLstm;
    TORCH_CHECK(lstm || kinds[i] == kGru || kinds[i] == kElman, "rnnkit native: unknown kind of cell ", kinds[i]);
    const size_t per_cell = lstm ? 1 : 2;
    const int64_t gates = lstm ? 4 : kinds[i] == kGru ? 3 : 1;
    TORCH_CHECK(w[i].size() >= per_cell && w[i].size() % per_cell == 0 && b[i].size() == w[i].size() &&
                    blocks[i].size() == w[i].size(),
                "rnnkit native: layer ", i, " must give ", per_cell, " matrices and biases a cell");
    const int64_t L = static_cast<int64_t>(w[i].size() / per_cell);
    const int64_t H = lstm ? w[i][0].size(0) / 4 : w[i][1].size(1);
    const torch::Tensor state_h = state(h0[i], L, B, H, i);
    const torch::Tensor state_c = lstm ? state(c0[i], L, B, H, i) : torch::Tensor();
    torch::Tensor h = torch::empty_like(state_h), c = lstm ? torch::empty_like(state_c) : torch::Tensor();
    torch::Tensor phi = lstm ? torch::empty({B, H}, x.options()) : torch::Tensor();
    for (int64_t k = 0; k < L; ++k) {
      const bool first = tabled && i == 0 && k == 0;
      const int64_t In = x.size(1);
      torch::Tensor h_k = h[k];
      if (lstm) {
        const torch::Tensor& wk = w[i][k];
        check_matrix(wk, 4 * H, In + H, i, k);
        const Matrix m{wk, blocks[i][k], block_rows};
        torch::Tensor z = first ? table->index_select(0, ids).add_(m.columns_times(state_h[k], In, H))
                                : m.times(at::cat({x, state_h[k]}, 1), b[i][k]);
        torch::Tensor c_k = c[k];
        lstm_forward_step(z, c10::nullopt, state_c[k], c_k, phi, h_k, acts[2 * i], acts[2 * i + 1]);
      } else {
        const torch::Tensor &w_ih = w[i][2 * k], &w_hh = w[i][2 * k + 1];
        check_matrix(w_ih, gates * H, In, i, k);
        check_matrix(w_hh, gates * H, H, i, k);
        const Matrix m_ih{w_ih, blocks[i][2 * k], block_rows}, m_hh{w_hh, blocks[i][2 * k + 1], block_rows};
        const torch::Tensor xs = first ? table->index_select(0, ids) : m_ih.times(x, b[i][2 * k]);
        const torch::Tensor hh = m_hh.times(state_h[k], b[i][2 * k + 1]);
        if (kinds[i] == kGru) {
          gru_forward_step(xs, hh, state_h[k], h_k, acts[2 * i], acts[2 * i + 1]);
        } else {  // Elman: h = g(W_ih x + b_ih + W_hh h + b_hh)
          at::add_out(h_k, xs, hh);
          AT_DISPATCH_FLOATING_TYPES(h_k.scalar_type(), "model_step", [&] {
            rnnkit_native::activate(h_k.data_ptr<scalar_t>(), h_k.data_ptr<scalar_t>(), h_k.numel(), acts[2 * i]);
          });
        }
      }
      x = residual[i] && k > 0 ? h_k + x : h_k;
    }
    hs.push_back(h);
    cs.push_back(c);
  }
  TORCH_CHECK(head_w.dim() == 2 && head_w.size(1) == x.size(1), "rnnkit native: the output layer must be (V, ",
              x.size(1), "), got ", head_w.sizes());
  return {Matrix{head_w, head_blocks, block_rows}.times(x, head_b).unsqueeze(0), hs, cs};
}
