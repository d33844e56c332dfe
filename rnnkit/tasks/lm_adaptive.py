r"""Evaluation that adapts to the text as it reads it: the neural cache and dynamic evaluation.

Both read a text stream in order (:class:`rnnkit.data.StreamBatches`: B columns, each a contiguous stretch, read
``bptt`` steps at a time) and score each token before using it, so the numbers are fair perplexities.

**Neural cache** (Grave, Joulin and Usunier 2017). The last ``window`` top-layer states :math:`h_i` of each
column and the tokens that followed them, :math:`x_{i+1}`, form a cache. At step t,

.. math::
    p_{cache}(w) \propto \sum_{i \in \text{window}} [x_{i+1} = w] \exp(\theta\, h_t^\top h_i), \qquad
    p(w) = (1 - \lambda)\, p_{model}(w) + \lambda\, p_{cache}(w),

and an empty cache leaves :math:`p_{model}` alone (the first token of each column).

**Dynamic evaluation** (Krause et al. 2018). After scoring a chunk, take a gradient step on its loss, pulled
back towards the trained weights :math:`\theta_0`:

.. math::
    \theta \leftarrow \theta - \eta\, \frac{\nabla L}{\sqrt{MS} + \epsilon} + \lambda\,(\theta_0 - \theta)
    \odot \frac{\sqrt{MS}}{\text{mean}(\sqrt{MS})}

with :math:`MS` the mean squared gradient of the trained model over training batches (Krause et al.'s
"RMS with a global prior"). The per-weight decay rate :math:`\lambda \sqrt{MS}/\text{mean}(\sqrt{MS})` is capped
at 1, as in Krause et al.'s code: weights whose gradients are far above the mean (a softmax bias) would otherwise
overshoot :math:`\theta_0` by more than they were away from it and oscillate to infinity. Without training
statistics it is plain SGD with decay, :math:`\theta \leftarrow \theta - \eta \nabla L + \lambda(\theta_0 -
\theta)`. The model's weights are restored afterwards: evaluating never changes a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from rnnkit import state as S
from rnnkit.errors import RnnkitError


@torch.no_grad()
def cache_evaluate(model: Any, batches: Iterable, *, window: int, theta: float, lam: float) -> dict[str, float]:
    """The model's loss on ``batches`` with a neural cache of ``window`` states per column (see the module)."""
    if window < 1 or not 0 <= theta < math.inf or not 0 <= lam <= 1:
        raise RnnkitError(
            f"the cache needs --cache-window >= 1, --cache-theta >= 0 and --cache-lambda in [0, 1]; got {window}, "
            f"{theta} and {lam}"
        )
    was_training = model.training
    model.eval()
    total, count, state, keys, values = 0.0, 0, None, None, None
    try:
        for x, y in batches:
            logits, state, raw, _ = model._run(x, state)  # raw: (T, B, H) the top layer's states
            for t in range(x.shape[0]):
                p = torch.softmax(logits[t], dim=-1)
                if keys is not None:
                    p = (1 - lam) * p + lam * cache_distribution(raw[t], keys, values, theta, p.shape[-1])
                real = y[t] != model.pad_id
                total -= float(p.gather(1, y[t].unsqueeze(1)).squeeze(1).clamp_min(1e-30).log()[real].sum())
                count += int(real.sum())
                keys, values = _push(keys, values, raw[t], y[t], window)
    finally:
        model.train(was_training)
    return _metrics(model, total, count)


def cache_distribution(h: Tensor, keys: Tensor, values: Tensor, theta: float, vocab_size: int) -> Tensor:
    """p_cache (B, V) of states ``h`` (B, H) over cached ``keys`` (W, B, H) and the tokens that followed them
    ``values`` (W, B).

    >>> keys = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two cached states of one column
    >>> cache_distribution(torch.tensor([[1.0, 0.0]]), keys, torch.tensor([[2], [3]]), 1.0, 4).round(decimals=4)
    tensor([[0.0000, 0.0000, 0.7311, 0.2689]])
    """
    weights = torch.softmax(theta * torch.einsum("bh,wbh->wb", h, keys), dim=0)  # (W, B)
    p = torch.zeros(h.shape[0], vocab_size, dtype=h.dtype, device=h.device)
    return p.scatter_add_(1, values.t(), weights.t())


def _push(keys: Tensor | None, values: Tensor | None, h: Tensor, y: Tensor, window: int) -> tuple[Tensor, Tensor]:
    keys = h.unsqueeze(0) if keys is None else torch.cat([keys, h.unsqueeze(0)])[-window:]
    values = y.unsqueeze(0) if values is None else torch.cat([values, y.unsqueeze(0)])[-window:]
    return keys, values


def adaptive_logprobs(
    model: Any,
    sequences: list[list[int]],
    boundary_id: int,
    *,
    cache: dict[str, float] | None = None,
    dynamic: dict[str, Any] | None = None,
) -> list[float]:
    """Each sequence's log-probability (nats, read between two boundary tokens from a zero state, as
    :meth:`LanguageModel.score`) when the sequences are read in order as one text: with ``cache`` ({"window",
    "theta", "lam"}) the cache holds the states of the sequences read before and of the current one's prefix;
    with ``dynamic`` ({"lr", "decay", "stats"}) the weights adapt after each sequence. The weights are restored
    afterwards."""
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    if dynamic is not None:
        adapter = _Adapter(params, start, dynamic["lr"], dynamic["decay"], dynamic.get("stats"))
    was_training = model.training
    model.eval()
    keys = values = None
    out = []
    try:
        for seq in sequences:
            ids = torch.tensor([boundary_id, *seq, boundary_id], device=params[0].device).unsqueeze(1)
            x, y = ids[:-1], ids[1:]
            with torch.set_grad_enabled(dynamic is not None):
                logits, _, raw, _ = model._run(x, None)
            logp = torch.log_softmax(logits[:, 0], dim=-1)  # (T, V)
            if cache is not None:
                with torch.no_grad():
                    total = 0.0
                    for t in range(x.shape[0]):
                        p = logp[t].exp().unsqueeze(0)
                        if keys is not None:
                            mix = cache_distribution(raw[t], keys, values, cache["theta"], p.shape[-1])
                            p = (1 - cache["lam"]) * p + cache["lam"] * mix
                        total += float(p[0, y[t, 0]].clamp_min(1e-30).log())
                        keys, values = _push(keys, values, raw[t].detach(), y[t], int(cache["window"]))
                out.append(total)
            else:
                out.append(float(logp.detach().gather(1, y).sum()))
            if dynamic is not None:
                loss = -logp.gather(1, y).mean()
                adapter.step(torch.autograd.grad(loss, params, allow_unused=True))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
        model.train(was_training)
    return out


def gradient_statistics(model: Any, batches: Iterable, max_batches: int | None = None) -> list[Tensor]:
    """The mean squared gradient of each parameter over (up to ``max_batches`` of) ``batches``, the model in eval
    mode (no dropout), the state carried as in training: Krause et al.'s MS_g."""
    was_training = model.training
    model.eval()
    params = list(model.parameters())
    squares, n, state = [torch.zeros_like(p) for p in params], 0, None
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            out = model.loss(batch, state)
            grads = torch.autograd.grad(out.loss / out.count.clamp(min=1), params, allow_unused=True)
            for sq, g in zip(squares, grads, strict=True):
                if g is not None:
                    sq.add_(g.square())
            n, state = n + 1, S.tree_map(Tensor.detach, out.state)
    finally:
        model.train(was_training)
    if n == 0:
        raise RnnkitError("no training batches to measure gradient statistics on")
    return [sq / n for sq in squares]


def dynamic_evaluate(
    model: Any, batches: Iterable, *, lr: float, decay: float, stats: list[Tensor] | None = None, eps: float = 1e-4
) -> dict[str, float]:
    """The model's loss on ``batches`` read in order, adapting its weights after each chunk (see the module);
    the weights are restored afterwards."""
    if not (0 <= lr < math.inf and 0 <= decay < math.inf):
        raise RnnkitError(f"--dynamic-lr and --dynamic-decay must be >= 0, got {lr} and {decay}")
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    adapter = _Adapter(params, start, lr, decay, stats, eps)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for batch in batches:
            out = model.loss(batch, state)
            total, count = total + float(out.loss.detach()), count + int(out.count)
            grads = torch.autograd.grad(out.loss / out.count.clamp(min=1), params, allow_unused=True)
            adapter.step(grads)
            state = S.tree_map(Tensor.detach, out.state)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
        model.train(was_training)
    return _metrics(model, total, count)


class _Adapter:
    """One dynamic-evaluation update of ``params`` (see the module), its per-weight scales computed once."""

    def __init__(self, params, start, lr: float, decay: float, stats: list[Tensor] | None, eps: float = 1e-4):
        self.params, self.start, self.lr, self.decay = params, start, lr, decay
        self.scale = None if stats is None else [s.sqrt() + eps for s in stats]
        self.rate = None if stats is None else decay_rates(stats, decay)

    @torch.no_grad()
    def step(self, grads) -> None:
        for i, (p, g, p0) in enumerate(zip(self.params, grads, self.start, strict=True)):
            if g is None:
                continue
            step = g if self.scale is None else g / self.scale[i]
            pull = self.decay * (p0 - p) if self.rate is None else self.rate[i] * (p0 - p)
            p.add_(pull - self.lr * step)


def decay_rates(stats: list[Tensor], decay: float) -> list[Tensor]:
    """Each weight's pull towards the trained weights, ``decay`` * sqrt(MS) / its mean over all parameters,
    capped at 1 (a full return to theta_0) so that no weight overshoots and diverges."""
    roots = [s.sqrt() for s in stats]
    mean = sum(float(r.sum()) for r in roots) / max(sum(r.numel() for r in roots), 1)
    return [(decay * r / max(mean, 1e-30)).clamp(max=1.0) for r in roots]


def _metrics(model: Any, total: float, count: int) -> dict[str, float]:
    mean = total / max(count, 1)
    return model.metrics(mean) | {"count": count}
