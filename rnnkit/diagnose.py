r"""Gradient flow through time: how much the loss at the last step hears each earlier state.

For a loss :math:`L_T` that reads only the last step's output, the norm :math:`\|\partial L_T / \partial h_t\|`
for :math:`t = T, \dots, 1` is the signal backpropagation through time carries back :math:`T - t` steps. In a
simple RNN, :math:`\partial L_T/\partial h_t = (\prod_{k=t+1}^{T} J_k)^\top \partial L_T/\partial h_T` with
:math:`J_k = \mathrm{diag}(g'(a_k)) W_{hh}`, so it shrinks (vanishes) or grows (explodes) geometrically with the
spectral radius of :math:`W_{hh}` and the slope of :math:`g`; an LSTM's memory :math:`c_t` carries it back
through the forget gates instead (Hochreiter 1991; Bengio et al. 1994; Pascanu et al. 2013).

Here :math:`h_t` is a cell's whole state after step t (every floating-point field: an LSTM's h and c, a
SCRN's h and s), and the model is stepped by hand, one ``cell.step`` at a time, so that each state really
feeds the next (a fused kernel or minGRU's parallel scan would hide the per-step states).

With a batch of B sequences, each sequence b has its own last-step loss :math:`\ell_b`; the norm reported
at step t is the root mean square over the batch of :math:`\|\partial \ell_b / \partial h^{(b)}_t\|`, which for
B = 1 is exactly :math:`\|\partial L_T/\partial h_t\|`. Gradient clipping
(``torch.nn.utils.clip_grad_norm_(params, c)``) rescales the whole gradient of the training loss
:math:`L = \frac1B\sum_b \ell_b` by :math:`f = \min(1, c / (\|\partial L/\partial\theta\| + 10^{-6}))`: every
per-step signal is multiplied by the same f, so clipping caps an explosion's size but never changes the
shape of the curve (it cannot fix vanishing, and it cannot make far steps count more than near ones).

>>> flow = cell_gradient_flow("rnn", steps=20, hidden=8, batch=2)
>>> flow.norms.shape, bool(flow.norms[-1] > flow.norms[0])      # norms[t - 1] is step t: the last step hears most
(torch.Size([20]), True)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS, Cell
from rnnkit.config import MAX_SEED, check_fields, option
from rnnkit.errors import RnnkitError
from rnnkit.init import SCHEMES
from rnnkit.io import write_atomically
from rnnkit.resources import check_memory, recurrent_params

#: what the clip factor adds to the norm, as torch.nn.utils.clip_grad_norm_ does
CLIP_EPS = 1e-6


@dataclass
class ProbeConfig:
    """The synthetic setting a cell is diagnosed in at random initialisation."""

    steps: int = option(100, "time steps T", ge=1)
    batch: int = option(8, "random sequences averaged over", ge=1)
    input_size: int = option(16, "features of the random input x_t ~ N(0, 1)", ge=1)
    hidden: int = option(64, "units per layer", ge=1)
    layers: int = option(1, "stacked layers", ge=1)
    seed: int = option(0, "seed of the weights, the input and the loss's projection", ge=0, le=MAX_SEED)
    init: str | None = option(
        None, "initialisation scheme of every cell; unset, each cell's own", choices=(None, *SCHEMES)
    )
    radius: float | None = option(
        None, "rescale each H x H recurrent block to this spectral radius; above 1 explodes", gt=0
    )

    def __post_init__(self) -> None:
        check_fields(self)


#: Peak memory of :func:`gradient_flow`, in float64 values per step, layer, sequence and unit: the states,
#: the gates autograd saves and the returned per-step gradients. Measured as the growth of peak RSS
#: (resource.getrusage) of cell_gradient_flow at T = 2000, B = 128, H = 64, rounded up; other cells count
#: as an LSTM. Checked at (T, B, H, layers) = (2000, 32, 256, 2), (1000, 16, 512, 1), (20000, 8, 64, 1):
#: the estimate is 0.8-1.4x the measured peak (2.4x for SCRN and Jordan), except that the allocator's
#: fragmentation sometimes adds up to an H x H matrix per step (3x an rnn's estimate at H = 512).
FLOW_VALUES = {"rnn": 8, "elman": 8, "irnn": 8, "jordan": 10, "clockwork": 10, "scrn": 14, "mingru": 15, "gru": 18}
FLOW_VALUES |= {"minlstm": 19, "lstm": 20}
#: H x H matrices per step some cells also hold (clockwork: the masked recurrent weight autograd saves;
#: SCRN and Jordan: measured at B = 1, H = 512)
FLOW_STEP_MATRIX = {"clockwork": 1.0, "scrn": 1.0, "jordan": 0.5}


def flow_bytes(cell: str, steps: int, batch: int, hidden: int, layers: int, params: int) -> int:
    """About the peak memory :func:`gradient_flow` needs: per step and layer, the cell's states and saved
    gates for ``batch`` sequences (:data:`FLOW_VALUES`), and the parameters in float32 and float64 with
    their gradients.

    >>> flow_bytes("lstm", steps=100_000, batch=8, hidden=64, layers=1, params=0) / 1e9    # GB
    8.192
    """
    per_step = FLOW_VALUES.get(cell, FLOW_VALUES["lstm"]) * batch * hidden
    per_step += FLOW_STEP_MATRIX.get(cell, 0) * hidden * hidden
    return int(8 * (steps * layers * per_step + 3 * params))


def check_probe_memory(spec: str, cfg: ProbeConfig) -> None:
    """Refuse, in one line and before allocating, a probe of cell ``spec`` that cannot fit in memory."""
    name = spec.partition(":")[0]
    if name not in CELLS:
        return  # build_cells names the unknown cell
    params = recurrent_params(name, cfg.input_size, cfg.hidden, cfg.layers)
    what = f"diagnosing {spec} over {cfg.steps} steps (batch {cfg.batch}, hidden {cfg.hidden}, {cfg.layers} layer(s))"
    nbytes = flow_bytes(name, cfg.steps, cfg.batch, cfg.hidden, cfg.layers, params)
    check_memory(nbytes, what, "lower --steps, --batch or --hidden")


@dataclass
class GradientFlow:
    """Per-step gradient norms of one model; ``norms[t - 1]`` belongs to step t (t = 1 .. T)."""

    name: str
    norms: Tensor  # (T,) float64
    grad_norm: float  # ||dL/dθ|| of the batch-mean loss over the parameters: what clip_grad_norm_ measures

    @property
    def steps(self) -> int:
        return len(self.norms)

    def clip_factor(self, max_norm: float) -> float:
        """The factor ``clip_grad_norm_(params, max_norm)`` multiplies every gradient by (1 if under the limit)."""
        return min(1.0, max_norm / (self.grad_norm + CLIP_EPS))

    def clipped(self, max_norm: float) -> Tensor:
        """The per-step norms after clipping's rescale."""
        return self.norms * self.clip_factor(max_norm)

    def summary(self) -> dict[str, float]:
        """Norms at t = T, T-10, T/2 and 1, and the decay ratio ||g_1|| / ||g_T||."""
        T, n = self.steps, self.norms.tolist()
        row = {"T": n[T - 1]} | ({"T-10": n[T - 11]} if T > 10 else {}) | {"T/2": n[T // 2 - 1] if T > 1 else n[0]}
        return row | {"1": n[0], "ratio": n[0] / n[T - 1] if n[T - 1] else math.inf}


def gradient_flow(
    cells: Sequence[Cell],
    xs: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    *,
    layer: int = -1,
    params: Iterable[nn.Parameter] | None = None,
    name: str = "",
) -> GradientFlow:
    """||dℓ/dh_t|| of ``cells[layer]`` for every step, the stack run by hand on ``xs``.

    Args:
        cells: one-way stack, bottom first; cell k reads cell k-1's outputs.
        xs: (T, B, input_size) the bottom cell's input.
        loss_fn: the last step's top output (B, O) -> per-sequence losses (B,).
        layer: which cell's states to watch (negative counts from the top).
        params: the parameters clipping would see (default: the cells').
        name: the label of the result.

    >>> cell = CELLS["rnn"](1, 1, nonlinearity="identity", bias=False)
    >>> with torch.no_grad():
    ...     _ = cell.weight_hh.fill_(0.5)
    >>> gradient_flow([cell], torch.ones(4, 1, 1), lambda y: y.sum(-1)).norms.tolist()   # 0.5 ** (T - t)
    [0.125, 0.25, 0.5, 1.0]
    """
    if not cells:
        raise RnnkitError("gradient_flow needs at least one cell")
    if xs.dim() != 3 or xs.shape[-1] != cells[0].input_size:
        raise RnnkitError(f"gradient_flow expected input of shape (T, B, {cells[0].input_size}), got {tuple(xs.shape)}")
    if not -len(cells) <= layer < len(cells):
        raise RnnkitError(f"--layer {layer} is out of range for a stack of {len(cells)} layer(s)")
    top, watched = _run_stack(cells, xs, layer % len(cells))
    loss = loss_fn(top).sum()
    params = [p for p in (cells_params(cells) if params is None else params) if p.requires_grad]
    fields = [s for step in watched for s in step]
    grads = torch.autograd.grad(loss, fields + params, allow_unused=True, materialize_grads=True)
    B, k, norms = xs.shape[1], 0, []
    for step in watched:
        norms.append(math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads[k : k + len(step)]) / B))
        k += len(step)
    grad_norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads[k:])) / B
    return GradientFlow(name, torch.tensor(norms, dtype=torch.float64), grad_norm)


def _run_stack(cells: Sequence[Cell], xs: Tensor, layer: int) -> tuple[Tensor, list[list[Tensor]]]:
    """Step every cell by hand: the top cell's last output (B, O), and cell ``layer``'s state fields per step."""
    watched: list[list[Tensor]] = []  # per step: the watched cell's floating-point state fields
    h = xs
    for index, cell in enumerate(cells):
        state = cell.initial_state(xs.shape[1], device=xs.device, dtype=xs.dtype)
        outputs = []
        for x_t in cell.project_inputs(h).unbind(0):
            y, state = cell.step(x_t, state)
            outputs.append(y)
            if index == layer:
                watched.append([s for s in state if s.is_floating_point()])
        h = torch.stack(outputs)  # (T, B, O)
    return h[-1], watched


def cells_params(cells: Sequence[Cell]) -> list[nn.Parameter]:
    return [p for cell in cells for p in cell.parameters()]


def build_cells(spec: str, cfg: ProbeConfig) -> list[Cell]:
    """A stack of ``cfg.layers`` cells from ``NAME[:key=value,...]`` (e.g. ``lstm:forget_bias=1``,
    ``irnn:radius=1.05``, ``rnn:nonlinearity=relu``, ``clockwork:periods=1/4/16``); ``radius`` and ``init``
    override the config's."""
    name, kwargs = parse_cell_spec(spec)
    radius = kwargs.pop("radius", cfg.radius)
    init = kwargs.pop("init", cfg.init)
    if init is not None:
        kwargs["init"] = init
    if name == "jordan":
        kwargs.setdefault("output_size", cfg.hidden)
    cells, size = [], cfg.input_size
    for _ in range(cfg.layers):
        try:
            cells.append(CELLS[name](size, cfg.hidden, **kwargs))
        except TypeError as err:
            raise RnnkitError(f"cell {spec!r}: {err}") from None
        size = cells[-1].output_size
    if radius is not None:
        for cell in cells:
            set_spectral_radius(cell, float(radius), spec)
    return cells


@torch.no_grad()
def set_spectral_radius(cell: Cell, radius: float, what: str = "") -> None:
    """Rescale each square H x H block of the cell's recurrent matrices to spectral radius ``radius``
    (the radius of the effective matrix, for a Clockwork cell the masked one)."""
    what = what or type(cell).__name__
    weights = [getattr(cell, n) for n in cell.recurrent_weights if getattr(cell, n, None) is not None]
    if not weights:
        raise RnnkitError(f"{what}: the cell has no recurrent matrix for --radius to rescale")
    for w in weights:
        if w.shape[1] != cell.hidden_size or w.shape[0] % cell.hidden_size:
            raise RnnkitError(
                f"{what}: --radius needs square ({cell.hidden_size} x {cell.hidden_size}) recurrent blocks, "
                f"got a {tuple(w.shape)} matrix"
            )
        mask = getattr(cell, "recurrent_mask", torch.ones_like(w))  # a Clockwork cell's block-triangular mask
        for block, kept in zip(w.split(cell.hidden_size), mask.split(cell.hidden_size), strict=True):
            rho = float(torch.linalg.eigvals((block * kept).double()).abs().max())
            if rho > 0:
                block.mul_(radius / rho)


def cell_gradient_flow(spec: str, cfg: ProbeConfig | None = None, *, layer: int = -1, **overrides: Any) -> GradientFlow:
    """A cell (``NAME[:key=value,...]``) at random init, in float64, on random input; the loss is a fixed
    random unit projection of the last step's output. ``overrides`` replace ProbeConfig fields
    (``steps=``, ``hidden=``, ...)."""
    cfg = ProbeConfig(**({} if cfg is None else vars(cfg)) | overrides)
    check_probe_memory(spec, cfg)
    torch.manual_seed(cfg.seed)
    cells = [cell.double() for cell in build_cells(spec, cfg)]
    xs = torch.randn(cfg.steps, cfg.batch, cfg.input_size, dtype=torch.float64)
    v = F.normalize(torch.randn(cells[-1].output_size, dtype=torch.float64), dim=0)
    return gradient_flow(cells, xs, lambda y: y @ v, layer=layer, name=spec)


def lm_gradient_flow(model: nn.Module, ids: Tensor, *, layer: int = -1, name: str = "") -> GradientFlow:
    """A language model (:class:`rnnkit.tasks.lm.LanguageModel`) on one id sequence (T + 1,): the loss is
    the cross-entropy of the prediction at step T (of token T + 1). Runs on a float64 copy in eval mode."""
    config = model.config  # an LMConfig
    steps, params = ids.numel() - 1, sum(p.numel() for p in model.parameters())
    nbytes = flow_bytes(config.cell, steps, 1, config.hidden, config.layers, params)
    check_memory(nbytes, f"diagnosing {name or 'the model'} over {steps} steps", "lower --steps")
    model = copy.deepcopy(model).double().eval()
    cells = []
    for recurrent in model.layers:
        if recurrent.bidirectional:
            raise RnnkitError("diagnose runs one-way stacks only: this model's layers are bidirectional")
        cells.extend(recurrent.bound_cells())
    ids = ids.view(-1, 1)  # (T + 1, 1)
    xs = model.embedding(ids[:-1])  # (T, 1, E)

    def loss_fn(y: Tensor) -> Tensor:
        return F.cross_entropy(model.decoder(y), ids[-1], reduction="none")

    return gradient_flow(cells, xs, loss_fn, layer=layer, params=model.parameters(), name=name)


def plot_gradient_flow(flows: Sequence[GradientFlow], path: str | Path, *, clip: float | None = None) -> Path:
    """A PNG: ||dL_T/dh_t|| (log scale) against the steps before the end, one curve per model; with
    ``clip``, a dashed curve of the clipped norms for each model that clipping would rescale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for i, flow in enumerate(flows):
        back = torch.arange(flow.steps - 1, -1, -1)  # T - t for t = 1 .. T
        ax.plot(back, flow.norms, color=f"C{i}", lw=1.8, label=flow.name)
        if clip is not None and flow.clip_factor(clip) < 1:
            factor = flow.clip_factor(clip)
            ax.plot(
                back, flow.clipped(clip), color=f"C{i}", lw=1.2, ls="--", label=f"{flow.name}, clipped (x{factor:.2g})"
            )
    ax.set_yscale("log")
    ax.set_xlabel("steps before the end (T - t)")
    ax.set_ylabel(r"$\|\partial L_T / \partial h_t\|$")
    title = "gradient flow through time" + (f" (clip_grad_norm_ at {clip:g}: dashed)" if clip is not None else "")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def parse_cell_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:key=value,...]`` -> (cell name, keyword arguments); values become int, float, bool, None, a
    list (``periods=1/4/16``) or stay strings (``forget_bias=chrono``).

    >>> parse_cell_spec("lstm:forget_bias=chrono,t_max=120")
    ('lstm', {'forget_bias': 'chrono', 't_max': 120})
    """
    name, _, rest = spec.partition(":")
    if name not in CELLS:
        raise RnnkitError(f"unknown cell {name!r} in {spec!r}: choose one of {', '.join(CELLS)}")
    return name, dict(_parse_option(item, spec) for item in rest.split(",") if item) if rest else {}


def _parse_option(item: str, spec: str) -> tuple[str, Any]:
    key, eq, text = item.partition("=")
    if not eq or not key:
        raise RnnkitError(f"cell {spec!r}: expected NAME:key=value,..., got {item!r}")
    if "/" in text:  # a list: periods=1/4/16
        return key, [_parse_value(t) for t in text.split("/")]
    return key, _parse_value(text)


def _parse_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)
