"""Memory the machine has, memory a job will need, and a one-line refusal when it does not fit.

A setting that cannot fit (``--hidden 200000``: about 2 TB of LSTM weights) otherwise ends in an
allocator error with C++ frames, or in the kernel's OOM killer after swapping for minutes. The estimates
here are rough (within about 2x) and the threshold generous (80% of the available memory), so they refuse
only what certainly does not fit, before anything is allocated:

>>> recurrent_params("lstm", 10, 20, layers=1)       # 4 gates x 20 x (10 + 20 + 2), counted exactly
2560
>>> check_memory(10**6, "a tiny model", "nothing to do", available=10**9)      # fits: returns quietly
>>> check_memory(10**12, "a huge model", "lower --hidden", available=16 * 10**9)
Traceback (most recent call last):
rnnkit.errors.RnnkitError: a huge model needs about 1 TB; this machine has 16 GB available: lower --hidden
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rnnkit.compat import make_layer
from rnnkit.errors import RnnkitError

#: refuse a job whose estimate exceeds this share of the available memory
FRACTION = 0.8

#: float32 copies of each parameter in training: weights, gradients and Adam's two moments
TRAINING_COPIES = 4


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable (Linux), else the physical memory
    (``os.sysconf``), capped by a cgroup v2 memory limit and by the process's address-space limit
    (``ulimit -v``); None where none of them can be read."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    limits = [n for n in (found, _cgroup_room(), _address_space_room()) if n is not None]
    return min(limits) if limits else None


def check_memory(nbytes: float, what: str, fix: str, *, purpose: str = "", available: int | None = None) -> None:
    """Raise a one-line RnnkitError when ``nbytes`` exceed :data:`FRACTION` of the available memory.

    ``what`` names the job (``"a 2-layer lstm of hidden 200000"``), ``fix`` says what to lower
    (``"lower --hidden or --layers"``), ``purpose`` what the memory is for (``"for its weights"``);
    ``available`` defaults to :func:`available_memory`, and an unknown amount never refuses.
    """
    available = available_memory() if available is None else available
    if available is not None and nbytes > FRACTION * available:
        need = f"{what} needs about {format_bytes(nbytes)}" + (f" {purpose}" if purpose else "")
        raise RnnkitError(f"{need}; this machine has {format_bytes(available)} available: {fix}")


def check_model_memory(params: int, *, what: str, flag_hint: str, copies: int = TRAINING_COPIES) -> None:
    """Refuse to train a model of ``params`` float32 parameters that cannot fit with its gradients and
    optimizer state (``copies`` float32 values per parameter; 4 for Adam, 2 for plain SGD)."""
    purpose = "for its weights, gradients and optimizer state"
    check_memory(params * copies * 4, f"{what} ({params:,} parameters)", flag_hint, purpose=purpose)


def count_params(factory: Callable[[], nn.Module]) -> int:
    """The parameters of the module ``factory()`` builds, counted on the meta device: nothing is allocated,
    so a model far too big for the machine can be measured (and refused) before it is built."""
    with torch.device("meta"):
        module = factory()
    return sum(p.numel() for p in module.parameters())


def recurrent_params(cell: str, input_size: int, hidden: int, layers: int = 1, **cell_options) -> int:
    """Parameters of a stack of ``layers`` ``cell`` layers (rnnkit.compat.make_layer, each reading the
    previous one's output), counted exactly without allocating them, in constant time: every layer above
    the first is the second one again."""
    with torch.device("meta"):
        first = make_layer(cell, input_size, hidden, **cell_options)
        second = make_layer(cell, first.output_size, hidden, **cell_options) if layers > 1 else None
    count = sum(p.numel() for p in first.parameters())
    return count + (layers - 1) * sum(p.numel() for p in second.parameters()) if second else count


def format_bytes(n: float) -> str:
    """``1.2 TB``, ``20 GB``, ``512 MB``: powers of 1000, two significant digits below 10.

    >>> format_bytes(1.23e12), format_bytes(2.05e10), format_bytes(5.1e8), format_bytes(300)
    ('1.2 TB', '20 GB', '510 MB', '300 bytes')
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.2g} {unit}"
    return f"{int(n)} bytes"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_room() -> int | None:
    """What RLIMIT_AS (``ulimit -v``) still allows this process to map, if it is limited."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)  # kB
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What a cgroup v2 memory limit (a container's) still allows, if there is one."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None
