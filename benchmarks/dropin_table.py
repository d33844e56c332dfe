"""The README's drop-in tables: torch's tools tried on torch.nn.LSTM and on rnnkit.LSTM, and what PyTorch's
own RNN tests check, as tests/test_torch_dropin.py runs them on both libraries.

    python benchmarks/dropin_table.py            # about a minute on 2 cores

Part 1 calls each tool (torch.compile, fullgraph, torch.jit.trace, torch.export.export, weight_norm,
parametrizations, replacing a named weight) on each module and records "ok" with the largest difference
from the eager output, or the error's first line. Part 2 runs the test file with pytest and counts, for
each test, the cases that pass with torch.nn's classes, rnnkit's (fused kernel where it applies) and
rnnkit's reference loop. Writes results/dropin_table.json and prints both tables in markdown.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import machine, write_result
from torch import nn
from torch.nn.utils import parametrizations

import rnnkit

ROOT = Path(__file__).resolve().parent.parent


def modules() -> dict[str, Callable[[], nn.Module]]:
    return {
        "torch.nn.LSTM": lambda: nn.LSTM(8, 16, 2),
        "rnnkit.LSTM": lambda: rnnkit.LSTM(8, 16, 2),
        "rnnkit.LSTM(fused=False)": lambda: rnnkit.LSTM(8, 16, 2, fused=False),
    }


def _weight_drop(m: nn.Module) -> nn.Module:
    raw = m._parameters.pop("weight_hh_l0")
    m.register_parameter("weight_hh_l0_raw", nn.Parameter(raw.data))
    m.register_forward_pre_hook(lambda mod, args: setattr(mod, "weight_hh_l0", F.dropout(mod.weight_hh_l0_raw, 0.5)))
    return m


def tools() -> dict[str, Callable[[nn.Module, torch.Tensor], Callable[[torch.Tensor], object]]]:
    """Each tool: (module, example input) -> a callable to compare with the module's eager output."""

    def reparam(apply):
        def use(m, x):
            apply(m)
            return m

        return use

    return {
        "torch.compile(m)": lambda m, x: torch.compile(m),
        "torch.compile(m, fullgraph=True)": lambda m, x: torch.compile(m, fullgraph=True),
        "torch.jit.trace": lambda m, x: torch.jit.trace(m, (x,), check_trace=False),
        "torch.export.export": lambda m, x: torch.export.export(m, (x,)).module(),
        "weight_norm(m, 'weight_hh_l0')": reparam(lambda m: torch.nn.utils.weight_norm(m, "weight_hh_l0")),
        "parametrizations.orthogonal(m, 'weight_hh_l1')": reparam(
            lambda m: parametrizations.orthogonal(m, "weight_hh_l1")
        ),
        "parametrizations.spectral_norm(m, 'weight_ih_l0')": reparam(
            lambda m: parametrizations.spectral_norm(m, "weight_ih_l0")
        ),
        "weight drop: replace _parameters['weight_hh_l0']": reparam(_weight_drop),
        "named_parameters() names": lambda m, x: lambda _: [n for n, _ in m.named_parameters()],
    }


def try_tools() -> list[dict]:
    rows, x = [], torch.randn(5, 3, 8)
    for tool, use in tools().items():
        row = {"tool": tool}
        for name, make in modules().items():
            torch._dynamo.reset()
            torch.manual_seed(0)
            m = make().eval()
            expected = m(x)[0]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    got = use(m, x)(x)
                if isinstance(got, list):
                    row[name] = ", ".join(got[:4]) + ", ..."
                elif "parametriz" in tool or "weight" in tool:  # the weights changed: it must run and stay finite
                    row[name] = "ok" if torch.isfinite(got[0]).all() else "non-finite output"
                else:
                    row[name] = f"ok, max diff {float((got[0] - expected).abs().max()):.1e}"
            except Exception as err:  # the table records what each tool says
                row[name] = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:90]}"
            print(f"{tool:50s} {name:26s} {row[name]}")
        rows.append(row)
    return rows


def run_tests() -> list[dict]:
    """pytest on tests/test_torch_dropin.py; per test function, passed/total for each library."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests/test_torch_dropin.py", "-q", "-p", "no:cacheprovider"]
        subprocess.run([*cmd, f"--junitxml={xml}"], cwd=ROOT, check=False)
        cases = ET.parse(xml).getroot().iter("testcase")
        counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        docs: dict[str, str] = {}
        for case in cases:
            name = case.get("name", "")
            base, _, params = name.partition("[")
            parts = params.rstrip("]").split("-")
            lib = "rnnkit-loop" if "rnnkit-loop" in params else next((p for p in parts if p in ("torch", "rnnkit")), "")
            ok = not any(child.tag in ("failure", "error") for child in case)
            skipped = any(child.tag == "skipped" for child in case)
            if skipped:
                continue
            counts[base][lib or "rnnkit only"][0] += ok
            counts[base][lib or "rnnkit only"][1] += 1
            docs.setdefault(base, base.removeprefix("test_").replace("_", " "))
    rows = []
    for base, by_lib in counts.items():
        row = {"test": base, "behaviour": docs[base]}
        for lib, (ok, total) in by_lib.items():
            row[lib] = f"{ok}/{total}"
        rows.append(row)
    return rows


def main() -> None:
    tool_rows = try_tools()
    test_rows = run_tests()
    write_result("dropin_table", {"setting": machine(), "tools": tool_rows, "tests": test_rows})
    names = list(modules())
    print("\n| tool | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in tool_rows:
        print(f"| {r['tool']} | " + " | ".join(r[n] for n in names) + " |")
    libs = ["torch", "rnnkit", "rnnkit-loop", "rnnkit only"]
    print(
        "\n| behaviour (tests/test_torch_dropin.py) | torch.nn | rnnkit | rnnkit loop | rnnkit vs torch.nn, or alone |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in test_rows:
        print(f"| {r['behaviour']} | " + " | ".join(r.get(lib, "") for lib in libs) + " |")


if __name__ == "__main__":
    main()
