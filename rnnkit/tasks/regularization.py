"""Regularisers of recurrent networks that a task's config switches on (AWD-LSTM's set, Merity et al. 2018).

- :func:`time_dropout`: dropout of a (T, B, ...) sequence; ``variational`` (locked) draws one mask per
  sequence and reuses it at every step (Gal and Ghahramani 2016).
- :func:`embedding_dropout`: drops whole words, rows of the embedding matrix, with one mask per batch.
- :func:`weight_dropped`: runs a layer with DropConnect on its hidden-to-hidden matrices (one mask per
  batch, shared by every step), by calling it on dropped copies of its ``weight_hh_l*`` weights, so torch's
  fused kernels still run.
- :func:`activation_penalty`: activation regularisation (AR) and temporal activation regularisation (TAR).
- :class:`RareWordDropout`: replaces rare training words by ``<unk>`` now and then (Kiperwasser and Goldberg
  2016), so that a model learns what to do with a word it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from rnnkit.config import option
from rnnkit.errors import RnnkitError


def time_dropout(x: Tensor, p: float, training: bool, *, variational: bool = False) -> Tensor:
    """Dropout of x (T, B, ...); ``variational`` draws one mask per sequence for every time step.

    >>> x = torch.ones(4, 2, 3)
    >>> y = time_dropout(x, 0.5, True, variational=True)
    >>> bool((y == y[0]).all())          # the same mask at every step
    True
    """
    if not training or p == 0:
        return x
    if not variational:
        return F.dropout(x, p, training=True)
    mask = x.new_empty(1, *x.shape[1:]).bernoulli_(1 - p) / (1 - p)  # one mask for every time step
    return x * mask


def embedding_dropout(embedding: nn.Embedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """The embedding of ``ids`` with whole words dropped: each row of the matrix is zeroed with probability
    ``p`` (the kept ones scaled by 1 / (1 - p)), so every occurrence of a dropped word in the batch reads
    zeros. A tied softmax keeps using the whole matrix.

    >>> emb = torch.nn.Embedding(10, 4)
    >>> out = embedding_dropout(emb, torch.tensor([[3, 3, 5]]), 0.5, True)
    >>> bool((out[0, 0] == out[0, 1]).all())   # a word is dropped or kept everywhere in the batch
    True
    """
    if not training or p == 0:
        return embedding(ids)
    weight = embedding.weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return F.embedding(ids, weight * mask, embedding.padding_idx, embedding.max_norm, embedding.norm_type,
                       embedding.scale_grad_by_freq, embedding.sparse)  # fmt: skip


def check_weight_drop(layers: nn.Module, flag: str = "--weight-drop") -> None:
    """One-line error when no layer has a hidden-to-hidden matrix (``weight_hh_l*``) to drop."""
    if not any(name.split(".")[-1].startswith("weight_hh") for name, _ in layers.named_parameters()):
        raise RnnkitError(f"{flag} needs a cell with weight_hh (rnn, gru, lstm, ...); this model's cells have none")


def weight_dropped(layer: nn.Module, x: Tensor, state: Any, p: float, training: bool) -> tuple[Tensor, Any]:
    """``layer(x, state)`` with DropConnect on its hidden-to-hidden matrices (Wan et al. 2013; the weight drop
    of Merity et al. 2018): one mask per call, shared by every time step. The layer owns its weights under
    torch's names, so this is a call on dropped copies of ``weight_hh_l*``; the layer is not changed."""
    if not training or p == 0:
        return layer(x, state)
    weights = {n: F.dropout(w, p) if n.startswith("weight_hh") else w for n, w in layer.named_parameters()}
    return functional_call(layer, weights, (x, state))


def activation_penalty(dropped: Tensor, raw: Tensor, ar: float, tar: float) -> Tensor:
    """AR + TAR of a top layer's outputs (T, B, H): ``ar`` * mean(dropped^2) (large activations) +
    ``tar`` * mean((raw_t - raw_{t-1})^2) (fast changes), as AWD-LSTM adds them to the mean loss.

    >>> h = torch.tensor([[[1.0]], [[3.0]]])              # T = 2, B = 1, H = 1
    >>> float(activation_penalty(h, h, ar=1.0, tar=1.0))  # mean(1, 9) + mean((3 - 1)^2)
    9.0
    """
    penalty = dropped.new_zeros(())
    if ar:
        penalty = penalty + ar * dropped.pow(2).mean()
    if tar and raw.shape[0] > 1:
        penalty = penalty + tar * (raw[1:] - raw[:-1]).pow(2).mean()
    return penalty


class RareWordDropout(nn.Module):
    """While training, each word id becomes ``unk_id`` with chance alpha / (alpha + c), c the word's count in
    the training data (Kiperwasser and Goldberg 2016): a word seen once with alpha = 0.25 is hidden 20% of the
    time, one seen 100 times 0.25%. In training every word is known (the vocabulary is built from it), so
    without this the ``<unk>`` row is never trained and a test word the run never saw reads as a vector the
    rest of the model has never met. Padding and ``<unk>`` stay; a word with no count (0, e.g. one added
    from pretrained vectors) never occurs in training. In eval mode, or with alpha = 0, ids pass unchanged.

    >>> drop = RareWordDropout([0, 0, 1, 1000], alpha=1.0, unk_id=1, pad_id=0)
    >>> [round(p, 4) for p in drop.chance.tolist()]       # pad and <unk> never; alpha / (alpha + c) else
    [0.0, 0.0, 0.5, 0.001]
    >>> drop.eval()(torch.tensor([[2, 3, 0]])).tolist()
    [[2, 3, 0]]
    """

    def __init__(self, counts: Sequence[int], alpha: float, *, unk_id: int, pad_id: int | None = None) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha must be at least 0, got {alpha}")
        self.alpha, self.unk_id = alpha, unk_id
        seen = torch.tensor([int(c) for c in counts], dtype=torch.float64)
        if alpha > 0 and not any(int(c) for c in counts):  # in Python: models are also built on the meta device
            raise RnnkitError("rare-word dropout needs the words' training counts; these are all 0 (a vocabulary "
                              "built without counts): build it with Vocabulary.build")  # fmt: skip
        chance = alpha / (alpha + seen) if alpha > 0 else torch.zeros_like(seen)
        for special in (unk_id, pad_id):
            if special is not None and 0 <= special < len(chance):
                chance[special] = 0.0
        self.register_buffer("chance", chance.float(), persistent=False)  # from the vocabulary: not saved

    def forward(self, ids: Tensor) -> Tensor:
        if not self.training or self.alpha == 0:
            return ids
        hide = torch.rand(ids.shape, device=ids.device) < self.chance.to(ids.device)[ids]
        return ids.masked_fill(hide, self.unk_id)


def rare_word_dropout_option() -> Any:
    """The ``rare_word_dropout`` field of a task's model config (:class:`RareWordDropout`'s alpha)."""
    return option(
        0.0,
        "while training, replace a word by <unk> with chance A / (A + its training count), so the model learns "
        "unknown words (Kiperwasser and Goldberg 2016; 0.25 is usual; 0: never)",
        ge=0,
        le=1000,
    )
