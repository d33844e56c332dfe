"""Language models: embedding -> recurrent layers (any cell) -> softmax; perplexity, sampling, scoring.

Dropout follows Zaremba et al. 2014: only on non-recurrent connections (the embedding's output, between
layers, before the softmax), each with its own rate if asked (``dropout_input``, ``dropout_hidden``,
``dropout``). ``variational=True`` draws one mask per sequence and reuses it at every time step (Gal and
Ghahramani 2016), on the same connections. ``tie_weights`` shares the embedding and the softmax matrix
(Press and Wolf 2017; Inan et al. 2017); with ``embed`` unlike ``hidden``, the last layer takes the
embedding's size (AWD-LSTM's 400-1150-1150-400). The rest of AWD-LSTM's regularisers (Merity et al.
2018) are options too: ``embed_dropout`` (whole words), ``weight_drop`` (DropConnect on the recurrent
matrices) and ``ar`` / ``tar`` (activation and temporal activation regularisation); see
:mod:`rnnkit.tasks.regularization`.
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
from rnnkit.tasks import stepping
from rnnkit.tasks.base import LossOutput, Task, bits, perplexity
from rnnkit.tasks.regularization import (
    activation_penalty,
    check_weight_drop,
    embedding_dropout,
    time_dropout,
    weight_dropped,
)
from rnnkit.tasks.stepping import Stepper


@dataclass
class LMConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(256, "units per recurrent layer", ge=1, le=MAX_WIDTH)
    layers: int = option(2, "stacked recurrent layers", ge=1, le=1000)
    embed: int | None = option(None, "embedding size (default: --hidden)", ge=1, le=MAX_WIDTH)
    dropout: float = option(0.0, "dropout on non-recurrent connections (Zaremba et al. 2014)", ge=0, lt=1)
    dropout_input: float | None = option(None, "dropout on the embedding's output (default --dropout)", ge=0, lt=1)
    dropout_hidden: float | None = option(None, "dropout between recurrent layers (default --dropout)", ge=0, lt=1)
    variational: bool = option(False, "one dropout mask per sequence, reused at every step (Gal and Ghahramani)")
    embed_dropout: float = option(0.0, "drop whole words: rows of the embedding, one mask per batch", ge=0, lt=1)
    weight_drop: float = option(0.0, "DropConnect on the recurrent matrices, one mask per batch", ge=0, lt=1)
    ar: float = option(0.0, "activation regularisation: ar * mean(h^2) of the last layer's output", ge=0)
    tar: float = option(0.0, "temporal activation regularisation: tar * mean((h_t - h_t-1)^2)", ge=0)
    tie_weights: bool = option(False, "share the embedding and softmax matrices (the last layer takes --embed's size)")
    init: str = option("uniform", "initialisation of the recurrent layers", choices=tuple(SCHEMES))
    init_range: float | None = option(None, "initialise every parameter ~ U(-r, r) instead (Zaremba: 0.1)", gt=0)

    def __post_init__(self) -> None:
        check_fields(self)

    def sizes(self) -> list[int]:
        """Each recurrent layer's hidden size: --hidden, and --embed for the last one when tied."""
        E, H = self.embed or self.hidden, self.hidden
        return [H] * (self.layers - 1) + [E if self.tie_weights else H]

    def params(self, vocab_size: int) -> int:
        """Parameters of a :class:`LanguageModel` of this config, counted without allocating them (for
        :func:`rnnkit.resources.check_model_memory` before the model is built), in constant time: a model of
        at most three layers on the meta device, and the middle layer again for each layer more."""
        with torch.device("meta"):
            model = LanguageModel(vocab_size, replace(self, layers=min(self.layers, 3)))
        count = sum(p.numel() for p in model.parameters())
        if self.layers > 3:
            count += (self.layers - 3) * sum(p.numel() for p in model.layers[1].parameters())
        return count


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
        E = config.embed or config.hidden
        self.embedding = nn.Embedding(vocab_size, E)
        layers, size = [], E
        for hidden in config.sizes():  # a layer's output size need not be its hidden size (SCRN: [h; s])
            layers.append(make_layer(config.cell, size, hidden, init=config.init))
            size = layers[-1].output_size
        self.layers = nn.ModuleList(layers)
        if config.weight_drop:
            check_weight_drop(self.layers)
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
        logits, new_state, _, _ = self._run(ids, state)
        return logits, new_state

    def _run(self, ids: Tensor, state: Any) -> tuple[Tensor, tuple, Tensor, Tensor]:
        """The forward pass, also returning the top layer's output before and after its dropout (for AR/TAR)."""
        cfg, train = self.config, self.training
        p_in, p_mid = _default(cfg.dropout_input, cfg.dropout), _default(cfg.dropout_hidden, cfg.dropout)
        h = embedding_dropout(self.embedding, ids, cfg.embed_dropout, train)
        h = time_dropout(h, p_in, train, variational=cfg.variational)
        new_state, last = [], len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            raw, s = weight_dropped(layer, h, None if state is None else state[i], cfg.weight_drop, train)
            h = time_dropout(raw, cfg.dropout if i == last else p_mid, train, variational=cfg.variational)
            new_state.append(s)
        return self.decoder(h), tuple(new_state), raw, h

    def loss(self, batch: tuple[Tensor, Tensor], state: Any = None) -> LossOutput:
        """Summed cross-entropy of the next tokens; in training, AR and TAR added per token (AWD-LSTM adds
        them to the mean loss: here the sum, so they are multiplied by the token count)."""
        x, y = batch[0], batch[1]  # (T, B) inputs and next-token targets (a Chunk also has its lr_scale)
        logits, state, raw, dropped = self._run(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum", ignore_index=self.pad_id)
        count = (y != self.pad_id).sum()
        if self.training and (self.config.ar or self.config.tar):
            loss = loss + count * activation_penalty(dropped, raw, self.config.ar, self.config.tar)
        return LossOutput(loss, count, state)

    def metrics(self, mean_loss: float) -> dict[str, float]:
        key = "bpc" if self.level == "char" else "ppl"
        value = bits(mean_loss) if key == "bpc" else perplexity(mean_loss)
        return {"loss": mean_loss, key: value} | ({"ppl": perplexity(mean_loss)} if key == "bpc" else {})

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, tuple]:
        """The sampling step: ids (T, B) on any device -> logits, state."""
        return self(ids.to(self.embedding.weight.device), state)

    def stepper(self) -> Stepper:
        """:meth:`step` for generation, several times faster at batch 1 (see :mod:`rnnkit.tasks.stepping`):
        the same numbers as in eval mode, the same state, no gradients."""
        return stepping.stepper(self, lambda: Stepper(self.layers, self.decoder, self.embedding))

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


def _default(value: float | None, fallback: float) -> float:
    return fallback if value is None else value
