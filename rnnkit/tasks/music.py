"""Polyphonic music: piano roll -> recurrent layers (any cell) -> 88 sigmoids predicting the next step.

At every step the model reads the roll x_t (88 keys, 0/1) and gives each key an independent probability of
sounding at t + 1 (Boulanger-Lewandowski et al. 2012; Chung et al. 2014):

    h_t = RNN(x_t, h_{t-1}),    p_{t+1} = sigmoid(W h_t + b),
    NLL(x) = - sum_{t=1}^{T-1} sum_k [ x_{t+1,k} log p_{t+1,k} + (1 - x_{t+1,k}) log(1 - p_{t+1,k}) ].

The metric is the NLL per predicted time step: summed over the 88 keys and over steps 2..T of every
sequence (predicted from steps 1..T-1), divided by the number of predicted steps, sum_i (T_i - 1). This
is the convention of locuslab/TCN ``poly_music/music_test.py`` (loss summed over keys, ``count +=
len(x)`` with ``x = line[:-1]``), which is what its 8.10 (TCN) and 8.43 (GRU) on JSB Chorales report.

Dropout (Zaremba et al. 2014: non-recurrent connections only) acts on the input roll (``input_dropout``,
dropping notes), between layers and before the output layer (``dropout``); ``variational`` reuses one mask
per sequence at every step (Gal and Ghahramani 2016). ``weight_drop`` is DropConnect on the recurrent
weights (Merity et al. 2017), the one regulariser here that acts inside the recurrence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.data.music import KEYS
from rnnkit.errors import RnnkitError
from rnnkit.init import SCHEMES
from rnnkit.resources import count_params, recurrent_params
from rnnkit.tasks import stepping
from rnnkit.tasks.base import LossOutput, Task
from rnnkit.tasks.regularization import check_weight_drop, time_dropout, weight_dropped
from rnnkit.tasks.stepping import Stepper


@dataclass
class MusicConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(200, "units per recurrent layer", ge=1, le=MAX_WIDTH)
    layers: int = option(1, "stacked recurrent layers", ge=1, le=1000)
    dropout: float = option(0.0, "dropout between layers and before the output layer", ge=0, lt=1)
    input_dropout: float = option(0.0, "dropout on the input roll (drops notes of x_t)", ge=0, lt=1)
    weight_drop: float = option(
        0.0, "DropConnect on the hidden-to-hidden weights, one mask per batch (AWD-LSTM)", ge=0, lt=1
    )
    variational: bool = option(False, "one dropout mask per sequence, reused at every step (Gal and Ghahramani)")
    init: str | None = option(
        None, "initialisation of the recurrent layers (default: the cell's own)", choices=(None, *SCHEMES)
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def params(self) -> int:
        """Parameters of a :class:`MusicModel` of this config, counted without allocating them (for
        :func:`rnnkit.resources.check_model_memory` before the model is built)."""
        one_layer = count_params(lambda: MusicModel(replace(self, layers=1)))
        H = self.hidden
        return one_layer + recurrent_params(self.cell, KEYS, H, self.layers) - recurrent_params(self.cell, KEYS, H, 1)


class MusicModel(Task):
    """Next-step model of 88-key piano rolls.

    >>> model = MusicModel(MusicConfig(cell="gru", hidden=16))
    >>> logits, state = model(torch.zeros(7, 3, 88))      # (T, B, 88) rolls
    >>> logits.shape
    torch.Size([7, 3, 88])
    """

    def __init__(self, config: MusicConfig) -> None:
        super().__init__()
        self.config = config
        kw = {} if config.init is None else {"init": config.init}
        layers, size = [], KEYS
        for _ in range(config.layers):  # a layer's output size need not be H (SCRN outputs [h; s])
            layers.append(make_layer(config.cell, size, config.hidden, **kw))
            size = layers[-1].output_size
        self.layers = nn.ModuleList(layers)
        self.output = nn.Linear(size, KEYS)
        if config.weight_drop:
            check_weight_drop(self.layers)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        """x (T, B, 88) -> logits (T, B, 88) of step t + 1 given steps ..t, and every layer's state.

        Padding needs no lengths here: it follows a sequence's last step, and the layers run forward in
        time, so it never reaches a real step's output (the loss masks the padded steps' predictions).
        """
        cfg = self.config
        h = time_dropout(x, cfg.input_dropout, self.training, variational=cfg.variational)
        new_state = []
        for i, layer in enumerate(self.layers):
            h, s = weight_dropped(layer, h, None if state is None else state[i], cfg.weight_drop, self.training)
            h = time_dropout(h, cfg.dropout, self.training, variational=cfg.variational)
            new_state.append(s)
        return self.output(h), tuple(new_state)

    def loss(self, batch: tuple[Tensor, Tensor], state: Any = None) -> LossOutput:
        """Summed binary cross-entropy of steps 2..T_b of each sequence; count = sum_b (T_b - 1)."""
        x, lengths = batch  # (T, B, 88) zero-padded, (B,)
        logits, state = self(x[:-1])
        predicted = torch.arange(x.shape[0] - 1, device=x.device).unsqueeze(1) < (lengths.to(x.device) - 1)  # (T-1, B)
        bce = F.binary_cross_entropy_with_logits(logits, x[1:], reduction="none").sum(-1)  # (T-1, B)
        return LossOutput((bce * predicted).sum(), predicted.sum(), state)

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"loss": mean_loss, "nll": mean_loss}

    def generate(
        self, seed: Tensor, steps: int, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """The seed roll (S, 88) followed by ``steps`` sampled steps: (S + steps, 88).

        Each key of the next step is drawn from Bernoulli(sigmoid(logit / temperature)), independently given
        the past, and the drawn step is fed back with the carried state. ``temperature`` 0 takes every key
        whose probability exceeds 1/2; below 1 sharper, above 1 flatter.
        """
        return torch.cat([seed.cpu(), *self.stream(seed, steps, temperature=temperature, generator=generator)])

    def stream(
        self, seed: Tensor, steps: int, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Iterator[Tensor]:
        """:meth:`generate`'s sampled steps one at a time, each (1, 88), as they are drawn."""
        if not math.isfinite(temperature) or temperature < 0:
            raise RnnkitError(f"--temperature must be at least 0 and finite, got {temperature}")
        if seed.dim() != 2 or seed.shape[1] != KEYS or seed.shape[0] < 1:
            raise RnnkitError(f"the seed must be a piano roll of shape (S >= 1, {KEYS}), got {tuple(seed.shape)}")
        forward = self.stepper()  # the eval-mode forward, laid out for one step at a time
        logits, state = forward(seed.unsqueeze(1))  # (S, 1, 88)
        for _ in range(steps):
            last = logits[-1, 0]
            if temperature == 0:
                step = (last > 0).float().cpu()
            else:
                step = torch.bernoulli(torch.sigmoid(last / temperature).cpu(), generator=generator)
            yield step.unsqueeze(0)
            logits, state = forward(step.view(1, 1, KEYS), state)

    def stepper(self) -> Stepper:
        """The model in eval mode, for generation one step at a time (see :mod:`rnnkit.tasks.stepping`)."""
        return stepping.stepper(self, lambda: Stepper(self.layers, self.output))
