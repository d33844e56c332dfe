"""A word's characters as one vector: a character BiLSTM per word (Lample et al. 2016).

Shapes: N words, C characters (the longest word's), E the character embedding size, H the hidden size of
each direction. The taggers (and the classifier) concatenate this feature to each word's embedding, so that
unseen words, capitals and suffixes ("-ing", "-ly") still say something about the tag.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.compat import make_layer

__all__ = ["CharEncoder"]


class CharEncoder(nn.Module):
    r"""Each word's characters -> the final states of a forward and a backward recurrent pass, concatenated.

    .. math::
        \overrightarrow{h}_c = \text{cell}(e(x_c), \overrightarrow{h}_{c-1}), \qquad
        \overleftarrow{h}_c = \text{cell}(e(x_c), \overleftarrow{h}_{c+1}), \qquad
        f(w) = [\overrightarrow{h}_{n}; \overleftarrow{h}_{1}] \in \mathbb{R}^{2H}

    for a word w = x_1 .. x_n (n its own length: padding never enters a word's feature). The forward pass
    ends on the suffix, the backward pass on the prefix.

    Args:
        num_chars: size of the character vocabulary (ids 0 .. num_chars - 1).
        embed: E, the character embedding size (Lample et al.: 25).
        hidden: H, per direction (Lample et al.: 25); the feature has 2H.
        pad_id: the id that fills each row after its word (its embedding is zero and never trained).
        cell: any name of :data:`rnnkit.CELLS` ("lstm", "gru", ...), run by :func:`rnnkit.compat.make_layer`.

    Call: ``encoder(chars, lengths)`` with chars (N, C) long and lengths (N,) (each at least 1) -> (N, 2H).

    >>> encoder = CharEncoder(num_chars=30, embed=8, hidden=5)
    >>> chars = torch.tensor([[3, 4, 5], [6, 0, 0]])    # "cat" and "a", padded with 0
    >>> encoder(chars, torch.tensor([3, 1])).shape
    torch.Size([2, 10])
    """

    def __init__(
        self, num_chars: int, embed: int = 25, hidden: int = 25, *, pad_id: int = 0, cell: str = "lstm", **cell_kwargs
    ) -> None:
        super().__init__()
        self.hidden, self.pad_id = hidden, pad_id
        self.embedding = nn.Embedding(num_chars, embed, padding_idx=pad_id)
        self.rnn = make_layer(cell, embed, hidden, bidirectional=True, batch_first=True, **cell_kwargs)
        self.output_size = self.rnn.output_size  # 2H (a Jordan cell: twice its output size)

    def forward(self, chars: Tensor, lengths: Any) -> Tensor:
        lengths = torch.as_tensor(lengths, device=chars.device)
        if chars.dim() != 2 or lengths.shape != chars.shape[:1]:
            shapes = f"{tuple(chars.shape)} and {tuple(lengths.shape)}"
            raise ValueError(f"CharEncoder expected chars (N, C) and lengths (N,), got {shapes}")
        if chars.shape[0] == 0:
            return chars.new_zeros(0, self.output_size, dtype=self.embedding.weight.dtype)
        if bool((lengths < 1).any()) or bool((lengths > chars.shape[1]).any()):
            raise ValueError(f"CharEncoder expected every word length in 1..C={chars.shape[1]}, got {lengths.tolist()}")
        out, _ = self.rnn(self.embedding(chars), lengths=lengths.cpu())  # (N, C, 2O), zero after each length
        half = out.shape[-1] // 2
        last = out[torch.arange(len(out), device=out.device), lengths - 1, :half]  # forward pass at x_n
        return torch.cat([last, out[:, 0, half:]], dim=-1)  # backward pass at x_1: (N, 2O)

    def per_token(self, chars: Tensor, lengths: Any, mask: Tensor, index: Tensor | None = None) -> Tensor:
        """Each real token's feature in its place, (B, T, 2H), zero at padding: ``mask`` (B, T) marks the real
        tokens, whose words ``chars``/``lengths`` hold in row-major order, or, with ``index`` (N,), each distinct
        word once and ``index`` says which row each token reads (``rnnkit.data.batching.pad_unique``).

        >>> encoder = CharEncoder(num_chars=30, embed=8, hidden=5)
        >>> mask = torch.tensor([[True, True], [True, False]])  # "cat a" and "cat"
        >>> f = encoder.per_token(torch.tensor([[3, 4, 5], [6, 0, 0]]), [3, 1], mask, torch.tensor([0, 1, 0]))
        >>> f.shape, bool(f[1, 1].eq(0).all()), torch.equal(f[0, 0], f[1, 0])
        (torch.Size([2, 2, 10]), True, True)
        """
        c = self(chars.to(mask.device), lengths)  # (U, 2H): the distinct words (or all N)
        c = c if index is None else c[index.to(c.device)]  # (N, 2H), the tokens in row-major order
        return c.new_zeros(*mask.shape, c.shape[1]).masked_scatter(mask.unsqueeze(-1), c)
