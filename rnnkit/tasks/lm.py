"""Language models: embedding -> recurrent layers (any cell) -> softmax; perplexity, sampling, scoring.

Dropout follows Zaremba et al. 2014: only on non-recurrent connections (the embedding's output, between
layers, before the softmax). ``variational=True`` draws one mask per sequence and reuses it at every time
step (Gal and Ghahramani 2016), on the same connections. ``tie_weights`` shares the embedding and the
softmax matrix (Press and Wolf 2017; Inan et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.errors import RnnkitError
from rnnkit.init import SCHEMES
from rnnkit.resources import count_params, recurrent_params
from rnnkit.tasks.base import LossOutput, Task, bits, perplexity


@dataclass
class LMConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(256, "units per recurrent layer", ge=1, le=MAX_WIDTH)
    layers: int = option(2, "stacked recurrent layers", ge=1, le=1000)
    embed: int | None = option(None, "embedding size (default: --hidden)", ge=1, le=MAX_WIDTH)
    dropout: float = option(0.0, "dropout on non-recurrent connections (Zaremba et al. 2014)", ge=0, lt=1)
    variational: bool = option(False, "one dropout mask per sequence, reused at every step (Gal and Ghahramani)")
    tie_weights: bool = option(False, "share the embedding and softmax matrices (needs --embed = --hidden)")
    init: str = option("uniform", "initialisation of the recurrent layers", choices=tuple(SCHEMES))
    init_range: float | None = option(None, "initialise every parameter ~ U(-r, r) instead (Zaremba: 0.1)", gt=0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.tie_weights and (self.embed or self.hidden) != self.hidden:
            raise RnnkitError(f"--tie-weights needs --embed equal to --hidden ({self.embed} != {self.hidden})")

    def params(self, vocab_size: int) -> int:
        """Parameters of a :class:`LanguageModel` of this config, counted without allocating them (for
        :func:`rnnkit.resources.check_model_memory` before the model is built)."""
        one_layer = count_params(lambda: LanguageModel(vocab_size, replace(self, layers=1)))
        E, H = self.embed or self.hidden, self.hidden
        return one_layer + recurrent_params(self.cell, E, H, self.layers) - recurrent_params(self.cell, E, H, 1)


class LanguageModel(Task):
    """A recurrent language model over a vocabulary of ``vocab_size`` ids.

    >>> lm = LanguageModel(50, LMConfig(hidden=16, layers=1))
    >>> logits, state = lm(torch.randint(0, 50, (7, 3)))     # (T, B) ids
    >>> logits.shape
    torch.Size([7, 3, 50])
    """

    carries_state = True

    def __init__(self, vocab_size: int, config: LMConfig, *, pad_id: int = 0, level: str = "word") -> None:
        super().__init__()
        self.config, self.pad_id, self.level = config, pad_id, level
        E, H = config.embed or config.hidden, config.hidden
        self.embedding = nn.Embedding(vocab_size, E)
        layers, size = [], E
        for _ in range(config.layers):  # a layer's output size need not be H (SCRN outputs [h; s])
            layers.append(make_layer(config.cell, size, H, init=config.init))
            size = layers[-1].output_size
        self.layers = nn.ModuleList(layers)
        self.decoder = nn.Linear(size, vocab_size)
        with torch.no_grad():  # as pytorch/examples' word_language_model
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.decoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()
        if config.tie_weights:
            if size != E:
                raise RnnkitError(f"--tie-weights needs the last layer's output size ({size}) to equal --embed ({E})")
            self.decoder.weight = self.embedding.weight
        if config.init_range is not None:
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-config.init_range, config.init_range)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        """ids (T, B) -> logits (T, B, V) and the state of every layer."""
        h = self._drop(self.embedding(ids))
        new_state = []
        for i, layer in enumerate(self.layers):
            h, s = layer(h, None if state is None else state[i])
            h = self._drop(h)
            new_state.append(s)
        return self.decoder(h), tuple(new_state)

    def loss(self, batch: tuple[Tensor, Tensor], state: Any = None) -> LossOutput:
        x, y = batch  # (T, B) inputs and next-token targets
        logits, state = self(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum", ignore_index=self.pad_id)
        return LossOutput(loss, (y != self.pad_id).sum(), state)

    def metrics(self, mean_loss: float) -> dict[str, float]:
        key = "bpc" if self.level == "char" else "ppl"
        value = bits(mean_loss) if key == "bpc" else perplexity(mean_loss)
        return {"loss": mean_loss, key: value} | ({"ppl": perplexity(mean_loss)} if key == "bpc" else {})

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        """The sampling step: ids (T, B) on any device -> logits, state."""
        return self(ids.to(self.embedding.weight.device), state)

    @torch.no_grad()
    def score(self, sequences: list[list[int]], boundary_id: int) -> list[dict[str, float]]:
        """Log-probability (nats) and perplexity of each id sequence, read between two boundary tokens.

        The model starts from a zero state at ``boundary_id`` (what precedes a sentence in training: <eos>
        for words, a newline for characters) and predicts every token and the closing boundary.
        """
        was_training = self.training
        self.eval()
        results = []
        for seq in sequences:
            ids = torch.tensor([boundary_id, *seq, boundary_id]).unsqueeze(1)
            logits, _ = self.step(ids[:-1])
            logp = -F.cross_entropy(logits.squeeze(1), ids[1:, 0].to(logits.device), reduction="sum").item()
            n = len(seq) + 1
            results.append({"logprob": logp, "tokens": n, "perplexity": math.exp(-logp / n)})
        self.train(was_training)
        return results

    def _drop(self, x: Tensor) -> Tensor:
        return time_dropout(x, self.config.dropout, self.training, variational=self.config.variational)


def time_dropout(x: Tensor, p: float, training: bool, *, variational: bool = False) -> Tensor:
    """Dropout of x (T, B, ...); ``variational`` draws one mask per sequence for every time step."""
    if not training or p == 0:
        return x
    if not variational:
        return F.dropout(x, p, training=True)
    mask = x.new_empty(1, *x.shape[1:]).bernoulli_(1 - p) / (1 - p)  # one mask for every time step
    return x * mask
