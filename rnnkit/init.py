"""Initialisation schemes a user can name (``init="orthogonal"`` on any cell or layer).

Why they matter (Le et al. 2015; Saxe et al. 2014): a recurrent matrix with small singular values makes
gradients vanish over time, one with large ones makes them explode. The schemes:

- ``"uniform"``: torch's default, every parameter ~ U(-k, k) with k = 1/sqrt(hidden_size). Drawn in
  parameter order, so ``torch.manual_seed(s)`` gives the same weights as torch.nn.LSTM/GRU/RNN.
- ``"normal"``: weights ~ 0.01 * N(0, 1), biases 0. The tutorials' example of vanishing gradients.
- ``"xavier"``: weights ~ N(0, 1/fan_in) (the sqrt(1/n) rule), biases 0.
- ``"orthogonal"``: recurrent matrices orthogonal (one block per gate), input weights as "xavier", biases 0.
- ``"identity"``: recurrent matrices the identity (one block per gate), input weights ~ N(0, 0.001^2),
  biases 0: the IRNN of Le, Jaitly and Hinton 2015.

A cell names its recurrent matrices in ``recurrent_weights``; every other 2-D parameter counts as an input
weight and every 1-D parameter as a bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEMES = ("uniform", "normal", "xavier", "orthogonal", "identity")


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    return scheme


@torch.no_grad()
def init_cell(cell: nn.Module, scheme: str) -> None:
    """Initialise the cell's own parameters (not its submodules') with the named scheme."""
    check_scheme(scheme)
    k = 1.0 / math.sqrt(cell.hidden_size) if cell.hidden_size else 0.0  # torch.nn's cells allow hidden_size 0
    recurrent = set(getattr(cell, "recurrent_weights", ()))
    for name, p in cell.named_parameters(recurse=False):
        if scheme == "uniform":
            p.uniform_(-k, k)
        elif p.dim() < 2:
            p.zero_()
        elif scheme == "normal":
            p.normal_(0.0, 0.01)
        elif scheme == "xavier" or (scheme == "orthogonal" and name not in recurrent):
            p.normal_(0.0, math.sqrt(1.0 / p.shape[1]))
        elif scheme == "identity" and name not in recurrent:
            p.normal_(0.0, 0.001)
        else:  # a recurrent matrix: one (hidden_size x n) block per gate
            for block in p.split(cell.hidden_size, dim=0):
                if scheme == "orthogonal":
                    nn.init.orthogonal_(block)
                else:
                    nn.init.eye_(block)
