"""``rnnkit export``: the step graphs of language models (every cell) and music models, run by onnxruntime and by
TorchScript, equal torch's steps within 1e-4 over chained steps at several batch sizes; and the errors."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree

from rnnkit.tasks.registry import load_run

CELLS = ["lstm", "gru", "elman", "jordan", "scrn", "clockwork", "mingru"]
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="needs onnx, onnxscript and onnxruntime (pip install -e '.[test]')",
)


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory, train_cli):
    tmp = tmp_path_factory.mktemp("export")
    (tmp / "train.txt").write_text("the cat sat on the mat\nthe dog sat on the log\n" * 10)
    runs = {}
    for cell in CELLS:
        runs[cell] = tmp / cell
        train_cli("lm", "train", "--train", tmp / "train.txt", "--level", "word", "--out", runs[cell], "--cell", cell,
                  "--hidden", "8", "--layers", "2", "--epochs", "1", "--batch-size", "2", "--bptt", "5",
                  "--no-progress")  # fmt: skip
    return runs


def torch_steps(run, ids):
    """The run's own steps over ids (T, B), from a zero state: each step's logits."""
    model, state, out = run.model.eval(), None, []
    with torch.no_grad():
        for t in range(ids.shape[0]):
            logits, state = model.step(ids[t : t + 1], state)
            out.append(logits.numpy())
    return out


def zero_state(meta, batch):
    dtypes = {"float32": np.float32, "int64": np.int64}
    return [np.zeros((1, batch, *s["shape"]), dtype=dtypes[s["dtype"]]) for s in meta["state"]]


@needs_onnx
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_steps_equal_torch(lm_runs, cell, tmp_path, cli):
    import onnx
    import onnxruntime as ort

    code, _, err = cli("export", lm_runs[cell], "--format", "onnx", "--out", tmp_path / "step.onnx")
    assert code == 0 and "lm step" in err
    model = onnx.load(str(tmp_path / "step.onnx"))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["rnnkit"])
    run = load_run(lm_runs[cell])
    assert meta["task"] == "lm" and meta["cell"] == cell and meta["vocab"] == list(run.vocab.tokens)
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 5):
        ids = torch.randint(0, len(run.vocab), (7, batch), generator=torch.Generator().manual_seed(batch))
        state = zero_state(meta, batch)
        for t, expected in enumerate(torch_steps(run, ids)):  # the state fed back: 7 chained steps
            logits, *state = session.run(
                None, {"input": ids[t : t + 1].numpy()} | dict(zip(meta["inputs"][1:], state, strict=True))
            )
            assert np.abs(logits - expected).max() < 1e-4, (cell, batch, t)


@pytest.mark.parametrize(
    ("cell", "reason"), [("clockwork", "a trace fixes the Python branches"), ("scrn", "custom autograd function")]
)
def test_torchscript_names_the_cells_it_cannot_hold(lm_runs, cell, reason, tmp_path, cli):
    code, _, err = cli("export", lm_runs[cell], "--format", "torchscript", "--out", tmp_path / "step.pt")
    assert code == 2 and f"TorchScript cannot export the {cell} cell" in err and reason in err
    assert "--format onnx" in err and not (tmp_path / "step.pt").exists()


@pytest.mark.parametrize("cell", ["lstm", "gru", "jordan"])
def test_torchscript_steps_equal_torch(lm_runs, cell, tmp_path, cli):
    assert cli("export", lm_runs[cell], "--format", "torchscript", "--out", tmp_path / "step.pt")[0] == 0
    files = {"rnnkit.json": ""}
    graph = torch.jit.load(str(tmp_path / "step.pt"), _extra_files=files)
    meta = json.loads(files["rnnkit.json"])
    run = load_run(lm_runs[cell])
    for batch in (1, 4):
        ids = torch.randint(0, len(run.vocab), (6, batch), generator=torch.Generator().manual_seed(batch))
        state = [torch.from_numpy(s) for s in zero_state(meta, batch)]
        for t, expected in enumerate(torch_steps(run, ids)):
            logits, *state = graph(ids[t : t + 1], *state)
            assert np.abs(logits.numpy() - expected).max() < 1e-4, (cell, batch, t)


@needs_onnx
def test_music_step_exports(tmp_path, cli, train_cli):
    import onnxruntime as ort

    rolls = [[[60, 64], [62], [], [60, 67]] * 3, [[48], [50, 55]] * 4]
    (tmp_path / "rolls.json").write_text(json.dumps(rolls))
    train_cli("music", "train", "--train", tmp_path / "rolls.json", "--out", tmp_path / "run", "--hidden", "8",
              "--epochs", "1", "--no-progress")  # fmt: skip
    assert cli("export", tmp_path / "run", "--format", "onnx", "--out", tmp_path / "m.onnx")[0] == 0
    run = load_run(tmp_path / "run")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    frames = (torch.rand(4, 2, 88, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    state, torch_state = None, None
    with torch.no_grad():
        for t in range(4):
            expected, torch_state = run.model(frames[t : t + 1], torch_state)
            leaves = [s.numpy() for s in pytree.tree_flatten(torch_state)[0]]
            names = [i.name for i in session.get_inputs()]
            feed = {"input": frames[t : t + 1].numpy()}
            feed |= dict(
                zip(names[1:], state if state is not None else [np.zeros_like(x) for x in leaves], strict=True)
            )
            logits, *state = session.run(None, feed)
            assert np.abs(logits - expected.numpy()).max() < 1e-4


def test_export_errors_are_one_line(lm_runs, tmp_path, cli, capsys):
    code, _, err = cli("export", tmp_path / "nothing", "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2 and "no such run folder" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli("export", lm_runs["lstm"], "--format", "tflite", "--out", tmp_path / "x")
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    (tmp_path / "dir.onnx").mkdir()
    code, _, err = cli("export", lm_runs["lstm"], "--format", "torchscript", "--out", tmp_path / "dir.onnx")
    assert code == 2 and "dir.onnx" in err and len(err.strip().splitlines()) == 1


def test_tasks_without_a_graph_yet_say_so(tmp_path, cli):
    run = tmp_path / "parser"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "parse", "data": {}, "model": {}, "train": {}}))
    code, _, err = cli("export", run, "--format", "onnx", "--out", tmp_path / "p.onnx")
    assert code == 2 and "is a parse run: rnnkit export writes lm, music, classify, tag, translate, ctc runs" in err
    assert len(err.strip().splitlines()) == 1
