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

The sequence tasks export the graph a deployment runs, ONNX only (:mod:`rnnkit.export_tasks` builds them, from
the unpacked layers and scans of :mod:`rnnkit.export_layers`). Inputs are batch-first, as the models are; batch
and time are dynamic dimensions (no fixed maximum length), ``lengths`` is (B,) int64 and nothing depends on what
sits in the padding::

    classify:  ids (B, T), lengths [, chars (B, T, C), char_lengths (B, T) with --char]
               -> probabilities (B, K) (softmax; sigmoids with --multi-label) [, attention (B, T)]
    tag:       words (B, T), lengths [, chars, char_lengths]
               -> emissions (B, T, K), tags (B, T) int64 (CRF Viterbi, else argmax; -1 after each length)
                  [, intent_probabilities (B, I) with --intent]
    translate: two files, OUT's suffix replaced by .encoder.onnx and .decoder.onnx:
               encoder: src (B, S), lengths -> memory (B, S, M), mask (B, S) bool [, keys], state0, state1, ...
               decoder: tokens (B,), memory, mask [, keys], state0, ... -> log_probs (B, V), new_state0, ...
                        [, attention (B, S)]; the caller's loop searches (greedy: argmax until eos)
    ctc:       features (B, T, F) (the run's normalised log-mel or MFCC frames), lengths
               -> log_probs (B, T', C) (blank = 0), out_lengths (B,) after subsampling

Taggers and classifiers export with ``ensemble`` (``--ensemble RUN2 ...``) as one graph of the same inputs and
outputs that answers as the runs do as one (:mod:`rnnkit.export_tasks`), over the union of their vocabularies.
The metadata (``rnnkit`` in ``metadata_props``) carries the vocabularies and labels, special ids, lowercasing,
input and output names with their shapes, and CTC's feature settings. TorchScript holds the step graphs only: a
sequence task's graph loops over time in a scan, which a trace would fix at the example's length; the command
says so. A model with an operator ONNX has no function for is one line naming the operator and the cell.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Sequence
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


def export_run(path: str | Path, fmt: str, out: str | Path, ensemble: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Export the run folder ``path`` as ``fmt`` (onnx or torchscript) to ``out``; returns the metadata written
    (a translation model writes two files, ``out`` with ``.encoder.onnx`` and ``.decoder.onnx`` for its suffix:
    the metadata's ``files`` names them). With ``ensemble`` (taggers and classifiers), one graph of ``path``'s
    run and those runs as one, as ``rnnkit tag|classify predict --ensemble`` answers."""
    from rnnkit.export_tasks import TASK_GRAPHS
    from rnnkit.tasks.registry import ensemble_loader, task_of

    if fmt not in FORMATS:
        raise RnnkitError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out = check_output_path(out)
    task = task_of(path).name
    if task not in STEP_TASKS and task not in TASK_GRAPHS:
        raise RnnkitError(
            f"{path} is a {task} run: rnnkit export writes lm, music, {', '.join(TASK_GRAPHS)} runs so far "
            f"({task} is not exported yet)"
        )
    if fmt == "torchscript" and task not in STEP_TASKS:
        raise RnnkitError(
            f"TorchScript cannot export a {task} run: its graph loops over time in a scan, which torch.jit.trace "
            "would fix at the traced example's length; use --format onnx"
        )
    run = ensemble_loader(path, ensemble, what="exports")()
    # a deployed graph computes no gradients (and TorchScript would keep them); an ensemble's: every run's model, and
    # the tagger ensemble's own (its mean CRF)
    for model in {run.model, *(member.model for member in getattr(run, "members", ()))}:
        model.eval().requires_grad_(False)
    cell = run.model_config.cell
    if task in TASK_GRAPHS:
        return _export_graphs(TASK_GRAPHS[task](run), task, cell, out)
    graph, example, meta = step_graph(run, task)
    meta["cell"] = cell
    if fmt == "onnx":
        batch = torch.export.Dim("batch", min=1)
        shapes = ({1: batch}, tuple({1: batch} for _ in example[1:]))  # forward(inputs, *leaves): one arg
        write_atomically(out, lambda tmp: _onnx(graph, example, meta["inputs"], meta["outputs"], shapes, meta, tmp))
    else:
        write_atomically(out, lambda tmp: _torchscript(graph, example, meta, tmp))
    return meta


def _export_graphs(graphs: list[Any], task: str, cell: str, out: Path) -> dict[str, Any]:
    """Write each graph of a sequence task to its ONNX file (``out``, or ``out`` with ``.<part>.onnx`` for its
    suffix when there are several) with the metadata, which names every file."""
    paths = {g.part: out if g.part is None else out.with_suffix(f".{g.part}.onnx") for g in graphs}
    files = {part: p.name for part, p in paths.items() if part is not None}
    for g in graphs:
        meta = g.meta | {"task": task, "cell": cell} | ({"part": g.part, "files": files} if g.part else {})
        shapes = _dynamic_shapes(g.module, g.dynamic)
        write_atomically(
            paths[g.part], lambda tmp, g=g, m=meta, s=shapes: _onnx(g.module, g.example, g.inputs, g.outputs, s, m, tmp)
        )
    return graphs[0].meta | {"task": task, "cell": cell, "files": [p.name for p in paths.values()]}


def _dynamic_shapes(module: nn.Module, dims: list[dict[int, str]]) -> tuple:
    """torch.export's dynamic_shapes for ``module.forward``'s signature (``*rest`` takes one tuple of its own);
    each named dimension one torch.export.Dim shared by every input that has it."""
    import inspect

    made: dict[str, Any] = {}
    shapes = [{k: made.setdefault(name, torch.export.Dim(name, min=1)) for k, name in d.items()} for d in dims]
    params = list(inspect.signature(module.forward).parameters.values())
    fixed = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    if len(shapes) > fixed:  # torch.export takes the inputs of ``*rest`` as one tuple
        return (*shapes[:fixed], tuple(shapes[fixed:]))
    return tuple(shapes)


def _onnx(
    graph: nn.Module,
    example: tuple[Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    shapes: tuple,
    meta: dict[str, Any],
    path: Path,
) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise RnnkitError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript") from None
    # torch's exporter logs a warning per torchvision operator it cannot register: noise for a recurrent model
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                graph, example, input_names=inputs, output_names=outputs, dynamic_shapes=shapes, dynamo=True,
                verbose=False,
            )  # fmt: skip
        except torch.onnx.OnnxExporterError as err:
            op = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'", str(err))
            if op:
                raise RnnkitError(
                    f"ONNX cannot express the {meta['task']} graph of this {meta['cell']} model: there is no ONNX "
                    f"function for {op[1]}.{op[2]}; export a model of another cell, or register the operator's "
                    "ONNX function with torch.onnx"
                ) from None
            raise RnnkitError(
                f"torch.onnx could not export the {meta['task']} graph of this {meta['cell']} model: {_reason(err)}"
            ) from None
    model = program.model_proto
    onnx.helper.set_model_props(model, {"rnnkit": json.dumps(meta)})
    onnx.save(model, str(path))


def _reason(err: Exception) -> str:
    """One line from torch.onnx's many: the first error of its summary, else its first line."""
    text = str(err)
    causes = re.findall(r"^<class '[\w.]+'>: (.+)$", text, flags=re.MULTILINE)
    return (causes[0] if causes else text.strip().splitlines()[0])[:300]


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
