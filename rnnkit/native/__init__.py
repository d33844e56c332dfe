"""rnnkit's small C++ extension: one step's elementwise work of the gated cells in one call (``gated_steps.cpp``),
and the whole Elman and Jordan loops over time (``loops.cpp``).

:mod:`rnnkit.bptt` runs the LSTM loop of the cells torch's fused kernel cannot run (other activations,
``fused=False``). Per step that loop is a matrix product and a dozen elementwise operations on (B, H) blocks,
each a torch call from Python: at batch 32, hidden 256 those calls, not the arithmetic, were most of the
distance to torch.nn.LSTM. The extension does a step's elementwise forward, and its backward, in one call each;
and, for generation (:meth:`rnnkit.GRUCell.for_steps`), a GRU step's elementwise forward. The Elman and Jordan
loops are a product or two and an activation a step, so there the whole loop, products included, is one call each
way (a Jordan layer at batch 32, hidden 256 spent most of its time in the Python around its steps).

It is compiled once, at install time (``make`` runs ``python -m rnnkit.native``), with the machine's own
compiler and instruction set, into ``_build/`` beside this file; a name carrying a hash of the source means a
changed source is never loaded stale. :func:`load` never compiles: without a built extension (no compiler, or
``RNNKIT_NATIVE=0``) it returns None and the loop runs in Python, with the same equations
(tests/cells/test_native.py checks the two against each other and against autograd).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent
#: what is compiled (``gated_steps.cpp`` holds the module's bindings), and the header both include
SOURCES = (HERE / "gated_steps.cpp", HERE / "loops.cpp", HERE / "model_step.cpp", HERE / "sampling.cpp")
HEADERS = (HERE / "kernels.h",)
BUILD = Path(__file__).with_name("_build")

#: the activations the kernels compute, by the number they pass them as
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "identity": 3, "linear": 3, "hard_sigmoid": 4}


def module_name() -> str:
    """The extension's name: its sources' hash in it, so that a build of other sources is never loaded."""
    digest = hashlib.sha256()
    for path in (*SOURCES, *HEADERS):
        digest.update(path.read_bytes())
    return "rnnkit_native_" + digest.hexdigest()[:12]


_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnkit_native_off", default=False)


def enabled() -> bool:
    """``RNNKIT_NATIVE=0`` turns the extension off (to compare the two paths), as does :func:`disabled`."""
    return os.environ.get("RNNKIT_NATIVE", "1") != "0" and not _OFF.get()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within this block the loops run their elementwise work in Python (a loop's backward follows the path its
    forward took), for benchmarks and tests that compare the two."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


@functools.cache
def _load() -> ModuleType | None:
    name = module_name()
    path = BUILD / f"{name}.so"
    if not path.exists():
        return None
    import torch  # noqa: F401  (the extension links against torch's libraries, loaded by this import)

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:  # built against another torch: as if not built
        return None
    return module


def load() -> ModuleType | None:
    """The built extension, or None (not built, or turned off)."""
    return _load() if enabled() else None


def build(verbose: bool = False) -> Path:
    """Compile the extension into ``_build/`` (about a minute on 2 cores) and return the library's path."""
    from torch.utils import cpp_extension

    # the ninja of this Python's environment (pip's package) when its bin folder is not on PATH (make's call)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    BUILD.mkdir(exist_ok=True)
    name = module_name()
    cpp_extension.load(
        name=name,
        sources=[str(path) for path in SOURCES],
        build_directory=str(BUILD),
        extra_cflags=["-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno"],
        verbose=verbose,
    )
    _load.cache_clear()
    return BUILD / f"{name}.so"


def main() -> int:
    """``python -m rnnkit.native``: build it, or say in one line why not (rnnkit then runs without it)."""
    try:
        path = build(verbose="--verbose" in sys.argv)
    except Exception as e:  # a compiler's many ways to fail all mean: not built
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        print(f"rnnkit.native: not built ({reason}); the loops run in Python instead", file=sys.stderr)
        return 1
    if load() is None:
        print(f"rnnkit.native: built {path} but it does not load; the loops run in Python", file=sys.stderr)
        return 1
    print(f"rnnkit.native: built {path}")
    return 0
