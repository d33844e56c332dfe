"""Shared test helpers, offered as fixtures (tests/ is not a package)."""

import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call

import rnnkit.cli


class Unroll(nn.Module):
    """Step a cell over (T, B, I) by hand, returning every output and every final state field."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, xs, state):
        ys = []
        for x in xs:
            y, state = self.cell(x, state)
            ys.append(y)
        return (torch.stack(ys), *state)


def _gradcheck_cell(cell: nn.Module, T: int = 3, B: int = 2) -> None:
    """float64 gradcheck of T hand-stepped steps w.r.t. the inputs, the initial state and every parameter."""
    torch.manual_seed(1)
    wrapper = Unroll(cell)
    names = [n for n, _ in wrapper.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in wrapper.named_parameters()]
    assert params and all(p.dtype == torch.float64 for p in params)
    xs = torch.randn(T, B, cell.input_size, dtype=torch.float64, requires_grad=True)
    kind = type(cell.initial_state(1))
    state0 = [torch.randn_like(t).requires_grad_() for t in cell.initial_state(B, dtype=torch.float64)]
    n = len(state0)

    def f(xs, *rest):
        return functional_call(wrapper, dict(zip(names, rest[n:], strict=True)), (xs, kind(*rest[:n])))

    assert gradcheck(f, (xs, *state0, *params), eps=1e-6, atol=1e-5)


@pytest.fixture
def gradcheck_cell() -> Callable[..., None]:
    return _gradcheck_cell


def _gradcheck_layer(layer: nn.Module, x: torch.Tensor, state=None, *, fast_mode: bool = True, **call_kwargs) -> None:
    """float64 gradcheck of ``layer(x, state, **call_kwargs)`` w.r.t. x, the state's fields and every parameter.

    ``fast_mode`` (torch's): compare random projections u^T J v of the numerical and analytical Jacobians
    per input tensor instead of every entry; a layer has hundreds of parameters, the cells' checks are full.

    ``state`` is None, a tensor or a tuple of tensors; the layer's output may be a tensor or a
    PackedSequence (its data is checked) and its state a tensor or a tuple.
    """
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    assert params and all(p.dtype == torch.float64 for p in params)
    single = isinstance(state, torch.Tensor)
    fields = [] if state is None else [state] if single else list(state)
    fields = [t.detach().clone().requires_grad_() for t in fields]
    n = len(fields)

    def f(x, *rest):
        if state is None or single:
            st = None if state is None else rest[0]
        else:  # a NamedTuple is rebuilt field by field, a plain tuple as a tuple
            st = type(state)(*rest[:n]) if hasattr(state, "_fields") else tuple(rest[:n])
        out, final = functional_call(layer, dict(zip(names, rest[n:], strict=True)), (x, st), call_kwargs)[:2]
        if isinstance(out, nn.utils.rnn.PackedSequence):
            out = out.data
        return (out, *((final,) if isinstance(final, torch.Tensor) else final))

    inputs = (x.detach().clone().requires_grad_(), *fields, *params)
    assert gradcheck(f, inputs, eps=1e-6, atol=1e-5, fast_mode=fast_mode)


@pytest.fixture
def gradcheck_layer() -> Callable[..., None]:
    return _gradcheck_layer


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; two threads beside a busy core spin for nothing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _main_one_thread(argv) -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return rnnkit.cli.main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """``code, out, err = cli("translate", "eval", run, "--json")``: the ``rnnkit`` command in this process, on
    one thread (as in CI), its arguments as strings (paths welcome), stdout and stderr captured."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it

    def run(*argv) -> tuple[int, str, str]:
        code = _main_one_thread(argv)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def train_cli() -> Callable[..., None]:
    """For module-scoped fixtures that train a run once: ``train_cli("tag", "train", ...)`` runs the command on
    one thread and asserts that it succeeded."""

    def run(*argv) -> None:
        previous = warnings.formatwarning
        try:
            assert _main_one_thread(argv) == 0
        finally:
            warnings.formatwarning = previous

    return run


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch, tmp_path) -> Callable[..., ModuleType]:
    """Loads benchmark scripts for their tests: ``benchmarks("long_range", "long_memory")`` runs benchmarks/<name>.py
    for each name in turn as the module of that name (a script imports its siblings, common.py among them) and
    returns the last. What they write into benchmarks/results goes to the test's tmp_path; all is undone after it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(*names: str) -> ModuleType:
        for name in names:
            spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
            spec.loader.exec_module(module)
            monkeypatch.setattr(module, "RESULTS", tmp_path, raising=False)  # a script's own `from common import`
        monkeypatch.setattr(sys.modules["common"], "RESULTS", tmp_path)
        return module

    return load
