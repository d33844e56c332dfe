"""Export a trained run as the graph a deployment needs: ONNX (for onnxruntime and every other ONNX runtime) or
TorchScript (``torch.jit.trace``; loads with ``torch.jit.load``, no rnnkit needed).

Generative tasks (``lm``, ``music``) export one **step** with the recurrent state as explicit inputs and outputs,
so the caller's loop does the sampling::

    inputs:  input (1, B) token ids [lm] or (1, B, 88) key frame [music];  state0, state1, ... (each (1, B, ...))
    outputs: logits (1, B, V) or (1, B, 88);                                new_state0, new_state1, ...

The state's tensors are the run's own, flattened in order (an LSTM layer's h then c, layer by layer; a Clockwork
layer's step counter is an int64). The batch is a dynamic dimension; feed zeros (a zero counter) for the first
step, as rnnkit does. Every cell exports this way, the custom ones (Jordan, SCRN, Clockwork, minGRU) too: a step
is plain tensor algebra, and no PackedSequence ever enters the graph. What the caller needs besides the graph
(task, vocabulary, the id that starts a text, state names and shapes) is in the file: ONNX ``metadata_props``
key ``rnnkit``, or TorchScript's extra file ``rnnkit.json``, as JSON.

Other tasks (classifiers, taggers, encoder-decoders, recognisers) are not exported yet: the command says so.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from rnnkit.errors import RnnkitError
from rnnkit.io import check_output_path, write_atomically

FORMATS = ("onnx", "torchscript")
STEP_TASKS = ("lm", "music")


class StepGraph(nn.Module):
    """One step of a generative model with its state flattened into tensors: ``(input, *state) -> (logits,
    *new_state)``; ``template`` is a state of the model's structure (its values are not used)."""

    def __init__(self, model: nn.Module, template: Any, step: Any) -> None:
        super().__init__()
        self.model, self.step = model, step
        self.spec = pytree.tree_flatten(template)[1]

    def forward(self, inputs: Tensor, *leaves: Tensor) -> tuple[Tensor, ...]:
        state = pytree.tree_unflatten(list(leaves), self.spec)
        logits, new = self.step(self.model, inputs, state)
        return (logits, *pytree.tree_flatten(new)[0])


def step_graph(run: Any, task: str, batch: int = 2) -> tuple[StepGraph, tuple[Tensor, ...], dict[str, Any]]:
    """The step graph of a loaded ``lm`` or ``music`` run, example inputs of ``batch`` rows (random ids or
    frames, random float states), and the metadata a caller needs."""
    model = run.model.eval()
    g = torch.Generator().manual_seed(0)
    if task == "lm":
        inputs = torch.randint(0, len(run.vocab), (1, batch), generator=g)
        step = _lm_step
        meta = {"vocab": list(run.vocab.tokens), "boundary_id": run.boundary_id, "level": run.data.level}
    else:
        inputs = (torch.rand(1, batch, 88, generator=g) < 0.1).float()
        step, meta = _music_step, {"keys": 88}
    with torch.no_grad():
        _, template = step(model, inputs, None)
    leaves = [
        torch.randn(t.shape, generator=g) if t.is_floating_point() else torch.zeros_like(t)
        for t in pytree.tree_flatten(template)[0]
    ]
    names = [f"state{i}" for i in range(len(leaves))]
    meta |= {
        "task": task,
        "inputs": ["input", *names],
        "outputs": ["logits", *[f"new_{n}" for n in names]],
        "state": [{"name": n, "shape": list(t.shape[2:]), "dtype": str(t.dtype).removeprefix("torch.")}
                  for n, t in zip(names, leaves, strict=True)],
    }  # fmt: skip
    return StepGraph(model, template, step).eval(), (inputs, *leaves), meta


def _lm_step(model: nn.Module, ids: Tensor, state: Any) -> tuple[Tensor, Any]:
    return model.step(ids, state)


def _music_step(model: nn.Module, frames: Tensor, state: Any) -> tuple[Tensor, Any]:
    return model(frames, state)


def export_run(path: str | Path, fmt: str, out: str | Path) -> dict[str, Any]:
    """Export the run folder ``path`` as ``fmt`` (onnx or torchscript) to ``out``; returns the metadata written."""
    from rnnkit.tasks.registry import load_run, task_of

    if fmt not in FORMATS:
        raise RnnkitError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out = check_output_path(out)
    task = task_of(path).name
    if task not in STEP_TASKS:
        raise RnnkitError(
            f"{path} is a {task} run: rnnkit export writes the step graphs of lm and music runs so far "
            f"(classifiers, taggers, encoder-decoders and recognisers come next)"
        )
    run = load_run(path)
    run.model.requires_grad_(False)  # a deployed graph computes no gradients (and TorchScript would keep them)
    graph, example, meta = step_graph(run, task)
    meta["cell"] = run.model_config.cell
    if fmt == "onnx":
        write_atomically(out, lambda tmp: _onnx(graph, example, meta, tmp))
    else:
        write_atomically(out, lambda tmp: _torchscript(graph, example, meta, tmp))
    return meta


def _onnx(graph: StepGraph, example: tuple[Tensor, ...], meta: dict[str, Any], path: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise RnnkitError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript") from None
    # torch's exporter logs a warning per torchvision operator it cannot register: noise for a recurrent model
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1)
    shapes = ({1: batch}, tuple({1: batch} for _ in example[1:]))  # forward(inputs, *leaves): leaves are one arg
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph, example, input_names=meta["inputs"], output_names=meta["outputs"], dynamic_shapes=shapes,
            dynamo=True, verbose=False,
        )  # fmt: skip
    model = program.model_proto
    onnx.helper.set_model_props(model, {"rnnkit": json.dumps(meta)})
    onnx.save(model, str(path))


def _torchscript(graph: StepGraph, example: tuple[Tensor, ...], meta: dict[str, Any], path: Path) -> None:
    """Trace the step, check the trace against the eager step over chained steps and batch sizes, save it. A cell
    TorchScript cannot hold is one line naming it and the reason (ONNX holds every cell)."""
    cell = meta["cell"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracing warns about Python branches on values; checked below
        traced = torch.jit.trace(graph, example, check_trace=False)
        for batch in (1, 3):
            inputs, leaves = _repeat(example, batch)
            eager = (inputs, *leaves)
            for _ in range(3):  # chained: a branch fixed at the traced step shows at the next ones
                want, got = graph(*eager), traced(*eager)
                if any((w - g).abs().max() > 1e-4 for w, g in zip(want, got, strict=True) if w.is_floating_point()):
                    raise RnnkitError(
                        f"TorchScript cannot export the {cell} cell: a trace fixes the Python branches of its step "
                        "at the traced values (which Clockwork modules tick, say); use --format onnx"
                    )
                eager = (inputs, *want[1:])
    try:
        torch.jit.save(traced, str(path), _extra_files={"rnnkit.json": json.dumps(meta)})
    except RuntimeError as err:
        if "Could not export Python function" not in str(err):
            raise
        raise RnnkitError(
            f"TorchScript cannot export the {cell} cell: its step calls a custom autograd function (rnnkit's "
            "scan), which TorchScript cannot save; use --format onnx"
        ) from None


def _repeat(example: tuple[Tensor, ...], batch: int) -> tuple[Tensor, list[Tensor]]:
    """The example inputs with ``batch`` rows (the first row repeated)."""
    inputs, *leaves = example
    grow = lambda t: t[:, :1].expand(t.shape[0], batch, *t.shape[2:]).contiguous()  # noqa: E731
    return grow(inputs), [grow(t) for t in leaves]
