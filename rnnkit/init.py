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

from rnnkit.errors import RnnkitError

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


def check_forget_bias(owner: str, forget_bias: float | str | None, t_max: int | None) -> None:
    """A number, None, or "chrono" with ``t_max`` an int > 2 (the longest dependency expected)."""
    if forget_bias == "chrono":
        if not isinstance(t_max, int) or isinstance(t_max, bool) or t_max <= 2:
            raise RnnkitError(
                f"{owner}: forget_bias='chrono' needs t_max=, the longest dependency to expect in steps "
                f"(an integer > 2, e.g. the sequence length), got {t_max!r}"
            )
    elif forget_bias is not None and (isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float))):
        raise RnnkitError(f"{owner}: forget_bias must be a number, 'chrono' or None, got {forget_bias!r}")
    elif t_max is not None:
        raise RnnkitError(f"{owner}: t_max is for forget_bias='chrono', got forget_bias={forget_bias!r}")


@torch.no_grad()
def init_gate_bias(
    cell: nn.Module, gate: int, value: float | str, t_max: int | None = None, *, opposite: int | None = None
) -> None:
    """Start gate ``gate``'s bias (rows gate*H .. (gate+1)*H of b_ih; b_hh's are zeroed) at ``value``.

    ``value="chrono"`` is Tallec and Ollivier's (2018) chrono initialisation: b ~ log U(1, t_max - 1) per
    unit, so the gate's characteristic memory times spread over 1 .. t_max steps; the gate ``opposite``
    (an LSTM's input gate) gets -b. Drawn from torch's global generator, like the other schemes.

    >>> cell = rnnkit.LSTMCell(2, 1000, forget_bias="chrono", t_max=100)
    >>> b_f = cell.bias_ih[1000:2000]
    >>> 0 <= float(b_f.min()) and float(b_f.max()) <= math.log(99), bool((cell.bias_ih[:1000] == -b_f).all())
    (True, True)
    """
    H = cell.hidden_size
    rows = slice(gate * H, (gate + 1) * H)
    if value == "chrono":
        b = torch.empty_like(cell.bias_ih[rows]).uniform_(1, t_max - 1).log_()
    else:
        b = torch.full_like(cell.bias_ih[rows], float(value))
    cell.bias_ih[rows] = b
    cell.bias_hh[rows] = 0
    if opposite is not None:
        other = slice(opposite * H, (opposite + 1) * H)
        cell.bias_ih[other] = -b
        cell.bias_hh[other] = 0
