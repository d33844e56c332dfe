"""CRF log-partition speed: rnnkit.CRF (one matmul per step) against the plain logsumexp forward algorithm.

python benchmarks/crf_speed.py     # forward + backward of log Z, B=32, T=20, K=120 tags, one thread
"""

import time

import torch

from rnnkit import CRF


def logsumexp_forward(crf: CRF, emissions: torch.Tensor) -> torch.Tensor:
    """log Z by the textbook recursion: alpha_t = logsumexp_i(alpha_{t-1,i} + A_ij) + e_tj."""
    alpha = crf.start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        alpha = torch.logsumexp(alpha.unsqueeze(2) + crf.transitions, 1) + emissions[:, t]
    return torch.logsumexp(alpha + crf.end, 1)


def median_ms(fn, emissions: torch.Tensor, repeats: int = 7) -> float:
    fn(emissions).sum().backward()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(emissions).sum().backward()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[repeats // 2]


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    crf = CRF(120)
    with torch.no_grad():
        crf.transitions.normal_()
    emissions = torch.randn(32, 20, 120, requires_grad=True)
    plain = median_ms(lambda e: logsumexp_forward(crf, e), emissions)
    fast = median_ms(crf.log_partition, emissions)
    print(f"logsumexp forward {plain:.1f} ms, rnnkit.CRF {fast:.1f} ms: {plain / fast:.1f}x (median of 7)")


if __name__ == "__main__":
    main()
