"""Weight averaging for NT-ASGD (Merity et al. 2018, "Regularizing and Optimizing LSTM Language Models").

Non-monotonically triggered averaged SGD trains with plain SGD until validation stops improving: when the
latest validation score is worse than the best of all scores before the last ``nonmono`` checks, it starts
averaging the weights after every step (Polyak averaging, :math:`\\bar w_n = \\bar w_{n-1} + (w_n - \\bar w_{n-1})
/ n`), and from then on validation and the saved best weights use the average while SGD goes on with the raw
weights. AWD-LSTM does this with torch.optim.ASGD (lambd = 0, t0 = 0, whose ``ax`` is this average); keeping
the average apart from the optimizer leaves the optimizer, its checkpoint and ``--resume`` as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError


def triggered(history: Sequence[float], nonmono: int) -> bool:
    """Whether the last of ``history`` (validation scores, lower is better) is worse than the best of those
    before the last ``nonmono``: AWD-LSTM's switch to averaging.

    >>> triggered([5.0, 4.0, 4.5, 4.2], 2)   # 4.2 > min(5.0, 4.0)
    True
    >>> triggered([5.0, 4.0, 3.9, 3.8], 2)
    False
    >>> triggered([5.0, 6.0], 2)             # not enough checks yet
    False
    """
    return len(history) > nonmono and history[-1] > min(history[:-nonmono])


class WeightAverage:
    """The running mean of a module's parameters over the steps since :meth:`start`.

    >>> layer = nn.Linear(1, 1, bias=False)
    >>> avg = WeightAverage(layer)
    >>> for w in (1.0, 2.0, 6.0):
    ...     _ = layer.weight.data.fill_(w)
    ...     avg.update() if avg.steps else avg.start()
    >>> with avg.swapped():
    ...     layer.weight.item()
    3.0
    >>> layer.weight.item()
    6.0
    """

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters()]
        self.mean: list[Tensor] = []
        self.steps = 0  # steps averaged; 0: not averaging
        self.start_step: int | None = None  # the optimizer step at which averaging began

    def start(self, step: int = 0) -> None:
        """Begin averaging with the current weights as the first term."""
        self.mean = [p.detach().clone() for p in self.params]
        self.steps, self.start_step = 1, step

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        for m, p in zip(self.mean, self.params, strict=True):
            m.add_(p.detach() - m, alpha=1.0 / self.steps)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the module for the duration (nothing changes when not averaging)."""
        if not self.steps:
            yield
            return
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, m in zip(self.params, self.mean, strict=True):
                p.copy_(m)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)

    def state(self) -> tuple[dict[str, Tensor], dict[str, int | None]]:
        """Tensors and JSON fields for a checkpoint."""
        return {f"average.{i}": m for i, m in enumerate(self.mean)}, {"steps": self.steps, "start": self.start_step}

    def load(self, tensors: dict[str, Tensor], meta: dict[str, int | None]) -> None:
        """Restore from :meth:`state`'s output; a missing or misshapen tensor is a one-line error."""
        steps = int(meta["steps"] or 0)
        mean = []
        for i, p in enumerate(self.params if steps else []):
            t = tensors.get(f"average.{i}")
            if t is None or t.shape != p.shape:
                got = "missing" if t is None else f"of shape {tuple(t.shape)}"
                raise RnnkitError(f"the checkpoint's averaged weight {i} is {got}, expected {tuple(p.shape)}")
            mean.append(t.to(p.device, p.dtype))
        self.mean, self.steps, self.start_step = mean, steps, meta["start"]
