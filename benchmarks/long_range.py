"""Long-range memory: the adding problem and the copy-memory task, every cell under one budget.

    OMP_NUM_THREADS=1 python benchmarks/long_range.py --measure --T 100,200,400     # updates/s per cell
    OMP_NUM_THREADS=1 python benchmarks/long_range.py --task adding --T 100         # all cells, T = 100
    OMP_NUM_THREADS=1 python benchmarks/long_range.py --task copy --T 50 --cells gru,lstm
    python benchmarks/long_range.py --report                   # markdown table + long_range.png

Each model is one rnnkit layer (``make_layer``: torch's fused kernels for rnn, irnn, gru and lstm, the
generic loop or scan for the others) and a linear readout: at the last step for the adding problem, at
every step for copy memory (whose loss is the cross-entropy over all T + 20 steps, as in Arjovsky et al.
2016). Every cell gets the same budget: the same hidden size, batch, number of updates, Adam learning rate
and gradient clipping, the same training batches (one seed) and the same test set. The test metric is
evaluated every ``--eval-every`` updates; "steps to solve" is the first evaluation with test MSE < 0.01
(adding) or recall accuracy >= 0.99 (copy). Runs of one task and length are separate invocations that
merge their rows into benchmarks/results/long_range.json, so a partial run still gives results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from common import RESULTS, machine, write_result
from torch import Tensor, nn

from rnnkit.compat import make_layer
from rnnkit.data.synthetic import adding_problem, copy_memory, copy_memory_baseline

CELLS = ("rnn", "irnn", "gru", "lstm", "scrn", "clockwork", "mingru")
NAME = "long_range"


def cell_options(cell: str, hidden: int) -> dict:
    """Each cell's own settings, the same at every length: the published defaults where there are any."""
    return {
        "lstm": {"forget_bias": 1.0},  # Jozefowicz et al. 2015
        "scrn": {"context_size": hidden // 4},  # Mikolov et al. 2014 used 40 context units beside 100 hidden
        "clockwork": {"num_modules": 8},  # periods 1, 2, 4, ..., 128 (Koutnik et al. 2014: exponential)
    }.get(cell, {})


class Model(nn.Module):
    """One recurrent layer and a linear readout of its last ``readout_steps`` outputs."""

    def __init__(self, cell: str, input_size: int, hidden: int, output_size: int) -> None:
        super().__init__()
        self.rnn = make_layer(cell, input_size, hidden, **cell_options(cell, hidden))
        self.readout = nn.Linear(self.rnn.output_size, output_size)

    def forward(self, x: Tensor, readout_steps: int) -> Tensor:  # x: (T, B, F)
        out, _ = self.rnn(x)
        return self.readout(out[-readout_steps:])  # (readout_steps, B, output_size)


@dataclass
class Task:
    """How to draw a batch, score predictions and call it solved."""

    input_size: int
    output_size: int
    readout_steps: Callable[[int], int]  # T -> outputs read
    batch: Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]  # (T, B, gen) -> x (T', B, F), y
    loss: Callable[[Tensor, Tensor], Tensor]
    metrics: Callable[[Tensor, Tensor], dict[str, float]]
    solved: Callable[[dict[str, float]], bool]
    metric: str  # the headline metric in the table


def _copy_batch(T: int, B: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    x, y = copy_memory(T, B, generator=gen)
    return F.one_hot(x, 10).float(), y


def _copy_loss(pred: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(pred.flatten(0, 1), y.flatten())


def _copy_metrics(pred: Tensor, y: Tensor) -> dict[str, float]:
    recall = pred[-10:].argmax(-1) == y[-10:]
    return {"ce": float(_copy_loss(pred, y)), "accuracy": float(recall.float().mean())}


TASKS = {
    "adding": Task(
        input_size=2,
        output_size=1,
        readout_steps=lambda T: 1,
        batch=lambda T, B, gen: adding_problem(T, B, generator=gen),
        loss=lambda pred, y: F.mse_loss(pred.view(-1), y),
        metrics=lambda pred, y: {"mse": float(F.mse_loss(pred.view(-1), y))},
        solved=lambda m: m["mse"] < 0.01,
        metric="mse",
    ),
    "copy": Task(
        input_size=10,
        output_size=9,  # blank and the 8 data symbols; the delimiter is never a target
        readout_steps=lambda T: T + 20,
        batch=_copy_batch,
        loss=_copy_loss,
        metrics=_copy_metrics,
        solved=lambda m: m["accuracy"] >= 0.99,
        metric="accuracy",
    ),
}


def test_set(task_name: str, T: int, size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The fixed test set of a run, drawn apart from the training batches."""
    return TASKS[task_name].batch(T, size, torch.Generator().manual_seed(10_000 + seed))


def memoryless(task_name: str, T: int, test_size: int = 500) -> float:
    """The memoryless answer's test score: MSE of always answering 1 on the run's test set (adding), or
    the cross-entropy of blanks, then uniform data symbols (copy)."""
    if task_name == "copy":
        return copy_memory_baseline(T)
    _, y = test_set(task_name, T, test_size)
    return float(F.mse_loss(torch.ones_like(y), y))


def train(
    task_name: str,
    T: int,
    cell: str,
    *,
    hidden: int,
    batch: int,
    updates: int,
    lr: float,
    clip: float,
    eval_every: int,
    test_size: int,
    seed: int = 0,
) -> dict:
    """Train one cell on one task; return the curve, the final test metrics and the updates to solve."""
    task = TASKS[task_name]
    torch.manual_seed(seed)
    model = Model(cell, task.input_size, hidden, task.output_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    test_x, test_y = test_set(task_name, T, test_size, seed)
    gen = torch.Generator().manual_seed(seed)  # the same training batches for every cell
    steps = task.readout_steps(T)

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            metrics = task.metrics(model(test_x, steps), test_y)
        model.train()
        return metrics

    curve, solved_at, start = [{"step": 0, **evaluate()}], None, time.perf_counter()
    for step in range(1, updates + 1):
        x, y = task.batch(T, batch, gen)
        loss = task.loss(model(x, steps), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if step % eval_every == 0 or step == updates:
            curve.append({"step": step, **evaluate()})
            if solved_at is None and task.solved(curve[-1]):
                solved_at = step
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "final": {k: round(v, 5) for k, v in curve[-1].items() if k != "step"},
        "steps_to_solve": solved_at,
        "wall_s": round(time.perf_counter() - start, 1),
        "curve": [{k: round(v, 5) if isinstance(v, float) else v for k, v in p.items()} for p in curve],
    }


def measure(task_name: str, T: int, cell: str, hidden: int, batch: int, repeats: int = 5) -> float:
    """Training updates per second: (time of 2 + repeats updates - time of 2 updates) / repeats, so that
    set-up and the first, slower updates cancel out."""

    def timed(updates: int) -> float:
        start = time.perf_counter()
        train(task_name, T, cell, hidden=hidden, batch=batch, updates=updates, lr=1e-3, clip=1.0,
              eval_every=10**9, test_size=8)  # fmt: skip
        return time.perf_counter() - start

    return repeats / (timed(2 + repeats) - timed(2))


def load() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.exists() else {"rows": [], "speed": []}


def merge(payload: dict, key: str, new: dict, fields: tuple[str, ...]) -> None:
    """Replace the entry of ``payload[key]`` that agrees with ``new`` on ``fields``, or append it."""
    rows = [r for r in payload[key] if any(r[f] != new[f] for f in fields)]
    payload[key] = [*rows, new]


def best(rows: list[dict], task: str, T: int, cell: str) -> dict | None:
    """The cell's run with the learning rate (of the grid) that solved soonest, else ended best."""
    runs = [r for r in rows if (r["task"], r["T"], r["cell"]) == (task, T, cell)]
    sign = 1 if task == "adding" else -1  # MSE: lower is better; recall accuracy: higher is better

    def key(r: dict) -> tuple[float, float]:
        return (r["steps_to_solve"] or float("inf"), sign * r["final"][TASKS[task].metric])

    return min(runs, key=key, default=None)


def markdown(payload: dict) -> str:
    """The README table: one row per task, length and learning rate, one column per cell; * marks each
    cell's best learning rate when there are several. "memoryless" is the score of answering without
    memory on the test set (the adding problem's 1/6 varies with the 500 test sequences drawn). Entries:
    test MSE (adding) or recall accuracy / cross-entropy per step (copy), and the updates to solve."""
    rows = payload["rows"]
    cells = [c for c in CELLS if any(r["cell"] == c for r in rows)]
    lines = [
        "| task | T | memoryless | lr | " + " | ".join(cells) + " |",
        "|---|---|---|---|" + "---|" * len(cells),
    ]
    for task, T, lr in sorted({(r["task"], r["T"], r["lr"]) for r in rows}):
        several = len({r["lr"] for r in rows if (r["task"], r["T"]) == (task, T)}) > 1
        entries = []
        for cell in cells:
            r = next(
                (r for r in rows if (r["task"], r["T"], r["lr"], r["cell"]) == (task, T, lr, cell)),
                None,
            )
            if r is None:
                entries.append("")
                continue
            final = r["final"]
            value = f"{final['accuracy']:.3f} / {final['ce']:.3f}" if task == "copy" else f"{final['mse']:.4f}"
            solved = f"solved at {r['steps_to_solve']}" if r["steps_to_solve"] else "not solved"
            star = "*" if several and r is best(rows, task, T, cell) else ""
            entries.append(f"{value}{star} ({solved})")
        metric = f"0.125 / {memoryless(task, T):.3f}" if task == "copy" else f"{memoryless(task, T):.4f}"
        lines.append(f"| {task} | {T} | {metric} | {lr:g} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def plot(payload: dict) -> None:
    """Test metric against updates, one panel per task and length, one curve per cell (its best lr)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    tasks = sorted({r["task"] for r in rows})  # one row of panels per task, one panel per length
    lengths = {task: sorted({r["T"] for r in rows if r["task"] == task}) for task in tasks}
    ncols = max(len(ts) for ts in lengths.values())
    fig, axes = plt.subplots(len(tasks), ncols, figsize=(4.2 * ncols, 3.4 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for ax in axes[row][len(lengths[task]) :]:
            ax.axis("off")
    panels = [(axes[i][j], task, T) for i, task in enumerate(tasks) for j, T in enumerate(lengths[task])]
    for ax, task, T in panels:
        metric, baseline = ("mse" if task == "adding" else "ce"), memoryless(task, T)
        for cell in CELLS:
            r = best(rows, task, T, cell)
            if r is not None:
                steps, values = (
                    [p["step"] for p in r["curve"]],
                    [p[metric] for p in r["curve"]],
                )
                ax.plot(steps, values, label=f"{cell} (lr {r['lr']:g})", linewidth=1.2)
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label="memoryless")
        if task == "adding":
            ax.axhline(0.01, color="black", linestyle=":", linewidth=1, label="solved (0.01)")
        ax.set(
            yscale="log",
            title=f"{task}, T = {T}",
            xlabel="updates",
            ylabel=f"test {metric}",
        )
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="adding")
    parser.add_argument("--T", default="100", help="one length, or several for --measure: 100,200,400")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument(
        "--measure",
        action="store_true",
        help="only time updates/s of each cell at each T",
    )
    parser.add_argument("--report", action="store_true", help="only print the table and draw the plot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    payload, cells = load(), args.cells.split(",")
    command = "python benchmarks/long_range.py " + " ".join(sys.argv[1:])
    if args.measure:  # the process's first updates are slow whatever the cell: keep that out of the figures
        measure(args.task, 10, cells[0], args.hidden, args.batch)
    if not args.report:
        for T in (int(t) for t in args.T.split(",")):
            for cell in cells:
                if args.measure:
                    rate = measure(args.task, T, cell, args.hidden, args.batch)
                    row = {
                        "task": args.task,
                        "T": T,
                        "cell": cell,
                        "hidden": args.hidden,
                        "batch": args.batch,
                    }
                    merge(
                        payload,
                        "speed",
                        row | {"updates_per_s": round(rate, 2)},
                        tuple(row),
                    )
                    print(f"{args.task} T={T} {cell}: {rate:.2f} updates/s", flush=True)
                else:
                    settings = {k: getattr(args, k) for k in ("hidden", "batch", "updates", "lr", "clip")}
                    result = train(args.task, T, cell, eval_every=args.eval_every, test_size=args.test_size,
                                   **settings)  # fmt: skip
                    row = {
                        "task": args.task,
                        "T": T,
                        "cell": cell,
                        **settings,
                        **result,
                        "command": command,
                    }
                    merge(payload, "rows", row, ("task", "T", "cell", "lr"))
                    print(f"{args.task} T={T} {cell}: {result['final']}, solved at {result['steps_to_solve']}, "
                          f"{result['wall_s']} s", flush=True)  # fmt: skip
                payload["setting"] = machine() | {
                    "machine": "2-core CPU, shared",
                    "threads": 1,
                }
                write_result(NAME, payload)
    print(markdown(payload))
    if payload["rows"]:
        plot(payload)
        print(f"written {RESULTS / NAME}.json and {NAME}.png")


if __name__ == "__main__":
    main()
