"""The cell protocol: how one time step maps (input, state) to (output, new state).

A cell is a small ``nn.Module`` with:

- ``input_size``, ``hidden_size`` and ``output_size`` (what a layer stacked on it receives);
- ``initial_state(batch_size, device=, dtype=)``: a NamedTuple of zeros, one field per state tensor;
- ``project_inputs(x)``: the part of the step that depends on the input alone, for every time step at
  once (one large matrix product instead of T small ones); the default is the identity;
- ``step(x_proj, state) -> (output, state)``: one step, given the projected input;
- ``sequence(xs_proj, state, mask, keep_steps)``: the loop over time. The default steps one at a time;
  a cell whose recurrence allows a cheaper loop overrides it (minGRU's scan, SCRN's context scan,
  Clockwork's ticking modules, LSTM's and Jordan's backpropagation written by hand in :mod:`rnnkit.bptt`),
  tested against this reference loop.

The layer (:class:`rnnkit.Recurrent`) knows only this protocol, so a user's own cell written to it runs
stacked, bidirectional and on variable lengths like the built-in ones. A layer built from a cell class
takes the cells' own parameters as its own, under torch's names (``weight_hh_l0``), and runs each cell on
them through :meth:`Cell.bound`; a cell's code never needs to know.

A ``sequence`` fast path that torch.compile cannot trace (in-place writes into views, branches on tensor
values) falls back to the reference loop when ``torch.compiler.is_compiling()``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.errors import ArgumentTypeError, RnnkitError
from rnnkit.init import init_cell


class Cell(nn.Module):
    """Base class of rnnkit's cells; subclasses write ``step`` (and usually ``project_inputs``)."""

    input_size: int
    hidden_size: int
    #: names of the recurrent matrices, which the "orthogonal" and "identity" init schemes treat specially
    recurrent_weights: tuple[str, ...] = ()

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def initial_state(
        self, batch_size: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> NamedTuple:
        raise NotImplementedError

    def project_inputs(self, x: Tensor) -> Tensor:
        """(..., input_size) -> (..., P): the input's share of the step, for all steps at once."""
        return x

    def step(self, x_proj: Tensor, state: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def sequence(
        self, xs_proj: Tensor, state: Any, mask: Tensor | None = None, keep_steps: bool = False
    ) -> tuple[Tensor, Any, list[Any] | None]:
        """Run ``step`` over time.

        Args:
            xs_proj: (T, B, P) projected inputs.
            state: the state before the first step.
            mask: (T, B) bool, true at real (non-padding) positions; where it is false the state is
                carried unchanged, so the final state is each sequence's state at its own last step.
            keep_steps: also return the list of the T states.

        Returns:
            outputs (T, B, output_size) (unspecified at padded positions: the layer zeroes them),
            the final state, and the list of states (or None).
        """
        outputs, steps = [], [] if keep_steps else None
        masks = mask.unbind(0) if mask is not None else None
        # unbind, not xs_proj[t]: indexing costs a full-size gradient buffer per step in backward
        for t, x_t in enumerate(xs_proj.unbind(0)):
            y, new = self.step(x_t, state)
            state = new if masks is None else S.where(masks[t], new, state)
            outputs.append(y)
            if steps is not None:
                steps.append(state)
        return torch.stack(outputs), state, steps

    def for_steps(self) -> Cell:
        """This cell prepared for many ``step`` calls with the same weights (generation: rnnkit.tasks.stepping
        calls it once per set of weights). The default is the cell itself; a cell that derives something from
        its weights at every step returns a view that derives it once (Clockwork's masked W_H)."""
        return self

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One step on a raw input ``x`` (B, input_size); ``state`` defaults to zeros."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        return self.step(self.project_inputs(x), state)

    def reset_parameters(self, init: str = "uniform") -> None:
        """Re-initialise with a named scheme (see :mod:`rnnkit.init`)."""
        init_cell(self, init)

    def bound(self, weights: dict[str, Tensor]) -> Cell:
        """This cell computing with ``weights`` (its parameter names -> tensors) in place of its own.

        How a layer runs a cell whose weights the layer owns (:class:`rnnkit.Recurrent` keeps them under
        torch's names, so weight_norm and parametrizations apply): ``self.weight_hh`` in the equations reads
        the given tensor. The view shares everything else with the cell and changes nothing in it, so two
        threads may run one layer at once; torch.compile traces it.

        >>> cell = rnnkit.ElmanCell(2, 2, nonlinearity="identity", bias=False)
        >>> view = cell.bound({"weight_ih": torch.eye(2), "weight_hh": torch.zeros(2, 2)})
        >>> view(torch.tensor([[1.0, 2.0]]))[0].tolist()
        [[1.0, 2.0]]
        """
        # object.__new__ and a dict of its own: no __init__, no copy protocol (which torch.compile cannot trace)
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.__dict__["_parameters"] = {**self._parameters, **weights}
        return view

    def _zeros(self, batch_size: int, size: int, device: Any, dtype: Any) -> Tensor:
        """(B, size) zeros on the cell's device and dtype unless told otherwise."""
        p = next(self.parameters(), None)
        if p is not None:
            device = p.device if device is None else device
            dtype = p.dtype if dtype is None else dtype
        return torch.zeros(batch_size, size, device=device, dtype=dtype)


class WeightedCell(Cell):
    """Shared set-up of the torch-shaped cells: ``weight_ih`` (G*H, I), ``weight_hh``, ``bias_ih``, ``bias_hh``.

    Parameters are registered in torch's order, so the default "uniform" init draws the same numbers
    as torch.nn's modules under the same seed, and torch.nn.*Cell state_dicts load unchanged.
    """

    recurrent_weights = ("weight_hh",)
    min_hidden_size = 1  # torch.nn's cells accept 0 (an empty state): rnnkit.compat's drop-ins set 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gates: int,
        *,
        bias: bool,
        recurrent_input_size: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size=input_size)
        _check_sizes(type(self).__name__, minimum=self.min_hidden_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = {"device": device, "dtype": dtype}
        rec = hidden_size if recurrent_input_size is None else recurrent_input_size
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, rec, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def project_inputs(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)


def last_step_index(mask: Tensor, width: int) -> Tensor:
    """(1, B, width) indices of each sequence's last real step in a (T, B) mask whose padding trails,
    for ``gather(0, ...)`` along time: how a scan that runs through the padding reads the final state."""
    last = (mask.sum(0) - 1).clamp(min=0)
    return last.view(1, -1, 1).expand(1, -1, width)


def _check_sizes(owner: str, minimum: int = 1, **sizes: int) -> None:
    """Each size an int >= minimum; the messages carry torch.nn's wording (and its TypeError for a wrong type)."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgumentTypeError(f"{owner}: {name} should be of type int, got: {type(value).__name__} ({value!r})")
        if value < minimum:
            raise RnnkitError(f"{owner}: {name} must be greater than zero, got {value}")
