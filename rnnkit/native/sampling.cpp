// Drawing the next token from a model's logits (rnnkit.tasks.sampling.sample_next), its default case, in one call.
// The draw is rnnkit.tasks.sampling.draw's: with p = softmax(logits / temperature) in float64 (banned ids at 0), the
// first id whose cumulative probability exceeds u times the total, u ~ U[0, 1) from the generator (one number a
// row, as torch.rand draws it). Here the cumulative sums are of exp(.) before normalising and the exponential is
// exp_f64 below, where Python takes torch's softmax and cumsum: the same sums to within float64 rounding (~1e-16),
// so the ids differ only when u falls that close to a boundary between two ids (tests/tasks/test_lm_sampling.py
// checks thousands of draws against Python's). Why: at batch 1 and 10,000 words Python's dozen torch operations
// took 150-180 us a token after a model's step had streamed tens of megabytes through the caches (60-70 us when
// timed by themselves); this one pass over the row took about 60 us there (25 us by itself).
#include "kernels.h"

#include <numeric>

namespace {

// exp(x) in float64 for x <= 0, vectorisable: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, Cody and Waite),
// exp(r) by its Taylor series to r^13 (the remainder under 1e-17), 2^n written into the exponent bits; 0 below -708
// (where the result would leave the normal range: such a share is under 1e-307 of the largest, which is 1)
inline double exp_f64(double x) {
  const bool tiny = !(x >= -708.0);
  const double y = tiny ? -708.0 : x;
  const double n = std::nearbyint(y * 1.4426950408889634);
  const double r = (y - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  constexpr double kInverseFactorials[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                           1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                           1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0,
                                           1.0};
  for (double c : kInverseFactorials) p = p * r + c;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  return tiny ? 0.0 : p * std::bit_cast<double>(bits);
}

constexpr int64_t kLanes = 16;  // partial maxima and sums side by side, so that the loops vectorise

// p (V) is the row's logits in float64 on entry (banned ids -inf) and exp((l - m) / T) on return; -1 where no id
// may be drawn (a NaN logit, an infinite one, every id banned), else the id whose share of the sum holds u
int64_t draw_row(double* p, int64_t V, double temperature, double u) {
  double lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<double>::infinity());
  int bad = 0;
  for (int64_t j = 0; j + kLanes <= V; j += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) {
      bad |= p[j + k] != p[j + k];
      lanes[k] = p[j + k] > lanes[k] ? p[j + k] : lanes[k];
    }
  }
  double m = *std::max_element(lanes, lanes + kLanes);
  for (int64_t j = V - V % kLanes; j < V; ++j) {
    bad |= p[j] != p[j];
    m = std::max(m, p[j]);
  }
  if (bad || std::isinf(m)) return -1;
  const double scale = 1.0 / temperature;  // (l - m) / T, as Python; by the reciprocal (within rounding) but for T = 1
  for (int64_t j = 0; j < V; ++j) p[j] = exp_f64(temperature == 1.0 ? p[j] - m : (p[j] - m) * scale);
  std::fill(lanes, lanes + kLanes, 0.0);
  for (int64_t j = 0; j + kLanes <= V; j += kLanes) {
    for (int64_t k = 0; k < kLanes; ++k) lanes[k] += p[j + k];
  }
  double total = std::accumulate(lanes, lanes + kLanes, 0.0);
  for (int64_t j = V - V % kLanes; j < V; ++j) total += p[j];
  if (!(total > 0.0)) return -1;
  // u < 1, but u * total can round up to the total: keep it below. The first id whose running sum exceeds it; where
  // the running sum (summed in another order than the total) ends just under it, the last id that may be drawn
  const double target = std::min(u * total, std::nextafter(total, 0.0));
  double running = 0.0;
  int64_t last = -1;
  for (int64_t j = 0; j < V; ++j) {
    if (p[j] == 0.0) continue;  // a banned id (or one too unlikely to hold a float64 share) never comes first
    running += p[j];
    last = j;
    if (running > target) return j;
  }
  return last;
}

}  // namespace

// logits (B, V); banned: ids that may not be drawn (each in [0, V)); temperature > 0. One id per row; a row that
// gives no id a probability (a NaN or infinite logit, every id banned) raises ValueError.
torch::Tensor sample_rows(const torch::Tensor& logits, const std::vector<int64_t>& banned, double temperature,
                          c10::optional<at::Generator> generator) {
  TORCH_CHECK(logits.dim() == 2 && logits.device().is_cpu(), "rnnkit native: logits must be (B, V) on the CPU");
  TORCH_CHECK(temperature > 0, "rnnkit native: the temperature must be > 0, got ", temperature);
  const int64_t B = logits.size(0), V = logits.size(1);
  for (int64_t id : banned) TORCH_CHECK(id >= 0 && id < V, "rnnkit native: banned id ", id, " outside [0, ", V, ")");
  const torch::Tensor u = at::rand({B, 1}, generator, logits.options().dtype(torch::kDouble));
  const torch::Tensor rows = logits.contiguous();
  torch::Tensor out = torch::empty({B}, logits.options().dtype(torch::kLong));
  thread_local std::vector<double> p;  // (kept between calls: a fresh 80 kB buffer a token cost a page's worth)
  p.resize(V);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rows.scalar_type(), "sample_rows", [&] {
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t* row = rows.data_ptr<scalar_t>() + b * V;
      // float32 first, as Python's draw (logits.float()), then float64; banned ids at -inf
      for (int64_t j = 0; j < V; ++j) p[j] = static_cast<double>(static_cast<float>(row[j]));
      for (int64_t id : banned) p[id] = -std::numeric_limits<double>::infinity();
      const int64_t id = draw_row(p.data(), V, temperature, u.data_ptr<double>()[b]);
      if (id < 0) throw std::invalid_argument("rnnkit native: no id of row " + std::to_string(b) + " can be drawn");
      out.data_ptr<int64_t>()[b] = id;
    }
  });
  return out;
}
