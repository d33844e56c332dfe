"""Long-memory claims, with the learning rate chosen on validation and three seeds (issue 15's protocol).

    # the adding problem as Le, Jaitly and Hinton (2015) set it up: hidden 100, batch 16, plain SGD, clipping
    OMP_NUM_THREADS=1 python benchmarks/long_memory.py --task adding --T 150 --optimizer sgd \\
        --lrs 1e-2,1e-3,1e-4 --clip 1 --hidden 100 --batch 16 --updates 20000 \\
        --variants irnn rnn rnn:init=identity lstm:forget_bias=1
    # copy memory: an LSTM with torch's default biases, forget bias 1, and chrono (Tallec and Ollivier 2018)
    OMP_NUM_THREADS=1 python benchmarks/long_memory.py --task copy --T 100 --optimizer adam --lrs 1e-3,3e-3 \\
        --variants lstm lstm:forget_bias=1 lstm:forget_bias=chrono,t_max=120 --updates 10000
    # copy at T = 200, one process per seed (three side by side), the rate annealed over the last third
    for seed in 0 1 2; do OMP_NUM_THREADS=1 python benchmarks/long_memory.py --task copy --T 200 \\
        --optimizer adam --lrs 3e-3 --anneal 0.333 --hidden 128 --batch 32 --updates 60000 --eval-every 1000 \\
        --eval-size 500 --variants lstm:forget_bias=chrono,t_max=220 --seeds $seed & done; wait
    python benchmarks/long_memory.py --report

A variant is a cell name with options (``NAME[:key=value,...]``, as ``rnnkit diagnose --cell`` takes them);
``--variants`` takes several, separated by spaces.
For each variant, seed 0 trains once per learning rate; the learning rate with the best *validation* score
at the end (lowest MSE for adding, highest recall accuracy then lowest cross-entropy for copy) is kept, and
seeds 1 and 2 train with it. ``--seeds`` splits one sweep over processes: a process without seed 0 takes
the rate from ``--lrs`` when it names one, or else from seed 0's runs already recorded.
Validation and test sets are drawn apart from each other and from the training
batches; the test set is scored along the way (for the curves) but never used to choose. A run that reaches
a non-finite loss stops and counts as failed. Runs merge into results/long_memory.json as they finish, so
an interrupted sweep keeps what it measured; ``--report`` prints the table and draws the curves.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import torch
from common import RESULTS, learning_rates, machine, results_lock, write_result
from long_range import TASKS, memoryless
from torch import Tensor, nn

from rnnkit.compat import make_layer
from rnnkit.diagnose import parse_cell_spec

NAME = "long_memory"
SEEDS = (0, 1, 2)


class Model(nn.Module):
    """One recurrent layer (any variant) and a linear readout of its last ``readout_steps`` outputs."""

    def __init__(self, spec: str, input_size: int, hidden: int, output_size: int) -> None:
        super().__init__()
        cell, options = parse_cell_spec(spec)
        self.rnn = make_layer(cell, input_size, hidden, **options)
        self.readout = nn.Linear(self.rnn.output_size, output_size)

    def forward(self, x: Tensor, readout_steps: int) -> Tensor:
        return self.readout(self.rnn(x)[0][-readout_steps:])


def held_out(task: str, T: int, size: int, which: str) -> tuple[Tensor, Tensor]:
    """The validation or test set, each from its own generator (training batches use seeds 0, 1, 2)."""
    return TASKS[task].batch(T, size, torch.Generator().manual_seed({"valid": 20_000, "test": 10_000}[which]))


def better(task: str, a: dict, b: dict | None) -> bool:
    """Is validation score ``a`` better than ``b``?"""
    if b is None:
        return True
    if task == "adding":
        return a["mse"] < b["mse"]
    return (a["accuracy"], -a["ce"]) > (b["accuracy"], -b["ce"])


def train(task_name: str, T: int, spec: str, lr: float, seed: int, args: argparse.Namespace) -> dict:
    task, steps = TASKS[task_name], TASKS[task_name].readout_steps(T)
    torch.manual_seed(seed)
    model = Model(spec, task.input_size, args.hidden, task.output_size)
    optimizer = torch.optim.SGD if args.optimizer == "sgd" else torch.optim.Adam
    opt = optimizer(model.parameters(), lr=lr)
    decay = schedule(args.updates, args.anneal)
    sets = {k: held_out(task_name, T, args.eval_size, k) for k in ("valid", "test")}
    gen = torch.Generator().manual_seed(seed)

    def evaluate(step: int) -> dict:
        model.eval()
        with torch.no_grad():
            row = {"step": step}
            for k, (x, y) in sets.items():
                row |= {f"{k}_{m}": round(v, 5) for m, v in task.metrics(model(x, steps), y).items()}
        model.train()
        return row

    curve, failed, start = [evaluate(0)], False, time.perf_counter()
    for step in range(1, args.updates + 1):
        x, y = task.batch(T, args.batch, gen)
        loss = task.loss(model(x, steps), y)
        if not torch.isfinite(loss):
            failed = True
            break
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        for group in opt.param_groups:
            group["lr"] = lr * decay(step)
        if step % args.eval_every == 0 or step == args.updates:
            curve.append(evaluate(step))
    metric = task.metric
    baseline = memoryless(task_name, T)
    return {
        "failed": failed,
        "final": {k: v for k, v in curve[-1].items() if k != "step"},
        "below_baseline_at": first_step(curve, lambda r: _beats(task_name, r, baseline)),
        "solved_at": first_step(curve, lambda r: task.solved({metric: r[f"test_{metric}"]})),
        "minutes": round((time.perf_counter() - start) / 60, 2),
        "curve": curve,
    }


def schedule(updates: int, anneal: float):
    """The rate's factor after ``step`` updates: 1, then falling linearly to 0 over the last ``anneal`` fraction
    of the updates (constant when ``anneal`` is 0)."""
    start = updates * (1 - anneal)

    def factor(step: int) -> float:
        return 1.0 if step <= start else max(0.0, (updates - step) / (updates - start))

    return factor


def _beats(task: str, row: dict, baseline: float) -> bool:
    """Test score past the memoryless answer's (MSE 0.1767 for adding; its cross-entropy for copy)."""
    return row["test_mse"] < baseline if task == "adding" else row["test_ce"] < baseline


def first_step(curve: list[dict], test) -> int | None:
    return next((r["step"] for r in curve if test(r)), None)


def load() -> dict:
    path = RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.exists() else {"runs": []}


def record(run: dict) -> None:
    """Merge one run into the results file, read again first under a lock: two sweeps (one per core) may
    share it."""
    with results_lock(NAME):
        payload, key = load(), ("task", "T", "variant", "lr", "seed", "optimizer", "updates")
        payload["runs"] = [r for r in payload["runs"] if tuple(r[k] for k in key) != tuple(run[k] for k in key)]
        payload["runs"].append(run)
        payload["setting"] = machine() | {"threads": torch.get_num_threads()}
        write_result(NAME, payload)


SETTINGS = ("optimizer", "updates", "hidden", "batch", "clip", "eval_size", "anneal")
DEFAULTS = {"anneal": 0.0}  # runs recorded before a setting existed ran with its default


def sweep(args: argparse.Namespace) -> None:
    settings = {k: getattr(args, k) for k in SETTINGS}
    command = "python benchmarks/long_memory.py " + " ".join(sys.argv[1:])

    def run(T: int, spec: str, lr: float, seed: int) -> dict:
        old = recorded(args.task, T, spec, lr, seed, settings) if args.reuse else None
        if old is not None:
            print(f"{args.task} T={T} {spec} lr={lr:g} seed={seed}: reused ({old['minutes']} min)", flush=True)
            return old
        new = _run(args, T, spec, lr, seed, settings, command)
        record(new)
        return new

    for T in (int(t) for t in args.T.split(",")):
        for spec in args.variants:
            lr = choose_rate(args, T, spec, settings, run)
            if lr is None:
                continue
            choose(args.task, T, spec, lr, settings)
            for seed in (s for s in args.seeds if s != 0):
                run(T, spec, lr, seed)
                choose(args.task, T, spec, lr, settings)


def choose_rate(args: argparse.Namespace, T: int, spec: str, settings: dict, run) -> float | None:
    """Seed 0's best rate on validation: trained here when this process has seed 0, else taken from ``--lrs``
    (one rate) or from seed 0's recorded runs."""
    if 0 not in args.seeds and len(args.lrs) == 1:
        return args.lrs[0]
    chosen, best_valid = None, None
    for lr in args.lrs:
        result = run(T, spec, lr, 0) if 0 in args.seeds else recorded(args.task, T, spec, lr, 0, settings)
        if result is None:
            sys.exit(f"long_memory.py: {spec} at T={T} lr={lr:g} has no seed-0 run recorded with these settings; "
                     "run seed 0 first, or give one rate with --lrs")  # fmt: skip
        valid = {k.removeprefix("valid_"): v for k, v in result["final"].items() if k.startswith("valid_")}
        if not result["failed"] and better(args.task, valid, best_valid):
            chosen, best_valid = result, valid
    if chosen is None:
        print(f"{spec}: every learning rate failed", flush=True)
        return None
    return chosen["lr"]


def _same(run: dict, task: str, T: int, spec: str, settings: dict) -> bool:
    return (run["task"], run["T"], run["variant"]) == (task, T, spec) and all(
        run.get(k, DEFAULTS.get(k)) == v for k, v in settings.items()
    )


def recorded(task: str, T: int, spec: str, lr: float, seed: int, settings: dict) -> dict | None:
    """The run already measured with these settings (``--reuse``), if any."""
    runs = [r for r in load()["runs"] if _same(r, task, T, spec, settings) and (r["lr"], r["seed"]) == (lr, seed)]
    return runs[0] if runs else None


def choose(task: str, T: int, spec: str, lr: float, settings: dict) -> None:
    """Mark the runs at ``lr`` as the chosen ones of their row, and unmark the row's other rates."""
    with results_lock(NAME):
        payload = load()
        for r in payload["runs"]:
            if _same(r, task, T, spec, settings):
                r["chosen"] = r["lr"] == lr
        write_result(NAME, payload)


def _run(args, T, spec, lr, seed, settings, command) -> dict:
    result = train(args.task, T, spec, lr, seed, args)
    final = {k: v for k, v in result["final"].items() if k.startswith("test_")}
    print(f"{args.task} T={T} {spec} lr={lr:g} seed={seed}: {final} failed={result['failed']} "
          f"below baseline at {result['below_baseline_at']}, solved at {result['solved_at']}, "
          f"{result['minutes']} min", flush=True)  # fmt: skip
    return {
        "task": args.task,
        "T": T,
        "variant": spec,
        "lr": lr,
        "seed": seed,
        **settings,
        **result,
        "command": command,
    }


def summary(payload: dict) -> list[dict]:
    """One row per (task, T, variant, budget) with its chosen learning rate's seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in payload["runs"]:
        if r.get("chosen"):
            groups.setdefault((r["task"], r["T"], r["variant"], budget(r)), []).append(r)
    rows = []
    for (task, T, variant, (optimizer, updates, anneal)), unordered in sorted(groups.items()):
        runs = sorted(unordered, key=lambda r: r["seed"])  # seeds run side by side finish in any order
        metric = TASKS[task].metric
        values = [r["final"][f"test_{metric}"] for r in runs if not r["failed"]]
        runs_all = _runs_of(payload, task, T, variant, (optimizer, updates, anneal))
        tried = sorted({r["lr"] for r in runs_all})
        rows.append(
            {
                "task": task,
                "T": T,
                "variant": variant,
                "optimizer": optimizer,
                "updates": updates,
                "anneal": anneal,
                "lrs_tried": tried,
                "lr": runs[0]["lr"],
                "seeds": len(runs),
                "failed": sum(r["failed"] for r in runs),
                f"test_{metric}_mean": statistics.mean(values) if values else math.nan,
                f"test_{metric}_sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "below_baseline_at": [r["below_baseline_at"] for r in runs],
                "solved_at": [r["solved_at"] for r in runs],
                "minutes": round(sum(r["minutes"] for r in runs_all), 1),
            }
        )
    return rows


def budget(run: dict) -> tuple[str, int, float]:
    """What a run was given to learn: optimizer, updates, and the fraction of them its rate was annealed over."""
    return run["optimizer"], run["updates"], run.get("anneal", DEFAULTS["anneal"])


def budget_text(optimizer: str, updates: int, anneal: float) -> str:
    return f"{optimizer}, {updates:,}" + (f", annealed over the last {anneal:.0%}" if anneal else "")


def _runs_of(payload: dict, task: str, T: int, variant: str, budget_: tuple) -> list[dict]:
    return [r for r in payload["runs"] if (r["task"], r["T"], r["variant"], budget(r)) == (task, T, variant, budget_)]


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | T | variant | optimizer, updates | lr (tried) | test metric, mean ± sd over seeds (n) | "
        "below the memoryless answer at | solved at | minutes (all runs) |",
        "|---|---:|---|---|---|---|---|---|---:|",
    ]
    for r in rows:
        metric = TASKS[r["task"]].metric
        mean, sd = r[f"test_{metric}_mean"], r[f"test_{metric}_sd"]
        tried = ", ".join(f"{v:g}" for v in r["lrs_tried"])
        fails = f" ({r['failed']} failed)" if r["failed"] else ""
        cells = [r["task"], str(r["T"]), f"`{r['variant']}`", budget_text(r["optimizer"], r["updates"], r["anneal"]),
                 f"{r['lr']:g} ({tried})", f"{metric} {mean:.4f} ± {sd:.4f} ({r['seeds']}){fails}",
                 _steps(r["below_baseline_at"]), _steps(r["solved_at"]), f"{r['minutes']}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _steps(values: list[int | None]) -> str:
    return ", ".join("never" if v is None else f"{v:,}" for v in values)


def plot(payload: dict) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(r["task"], r["T"]) for r in payload["runs"] if r.get("chosen")})
    cols = min(3, len(cases))
    rows = -(-len(cases) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.6 * rows), squeeze=False)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    for ax, (task, T) in zip(axes.flat, cases, strict=False):
        metric = TASKS[task].metric
        groups = sorted({(r["variant"], budget(r)) for r in payload["runs"] if (r["task"], r["T"]) == (task, T)})
        for variant, budget_ in groups:
            runs = [r for r in _runs_of(payload, task, T, variant, budget_) if r.get("chosen")]
            if not runs:
                continue
            steps = [p["step"] for p in min(runs, key=lambda r: len(r["curve"]))["curve"]]
            values = [[p[f"test_{metric}"] for p in r["curve"][: len(steps)]] for r in runs]
            mean = [statistics.mean(v) for v in zip(*values, strict=True)]
            line = ax.plot(steps, mean, label=f"{variant} (lr {runs[0]['lr']:g}, {budget_text(*budget_)})")[0]
            low, high = [min(v) for v in zip(*values, strict=True)], [max(v) for v in zip(*values, strict=True)]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        if task == "adding":
            ax.axhline(memoryless(task, T), color="grey", linestyle="--", label="memoryless answer")
            ax.set_yscale("log")
        ax.set(title=f"{task}, T = {T}", xlabel="updates", ylabel=f"test {metric} (mean; band: min-max of seeds)")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        ax.legend(fontsize=6.5, framealpha=0.7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{NAME}.png", dpi=120)


def fraction(text: str) -> float:
    """``--anneal`` as argparse's ``type``: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction of the updates between 0 and 1, e.g. 0.333")
    return value


def seed_list(text: str) -> list[int]:
    """``--seeds`` as argparse's ``type``: some of 0, 1, 2, separated by commas."""
    seeds = [int(v) for v in text.split(",") if v.strip().isdigit()]
    if not seeds or len(seeds) != len(text.split(",")) or not set(seeds) <= set(SEEDS):
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of the seeds 0,1,2 separated by commas")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="adding")
    parser.add_argument("--T", default="150", help="one length or several: 150,200")
    parser.add_argument("--variants", nargs="+", default=["irnn", "rnn", "rnn:init=identity", "lstm:forget_bias=1"])
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument(
        "--lrs", type=learning_rates, default=[1e-2, 1e-3, 1e-4], help="the learning rates seed 0 tries: 1e-3,3e-3"
    )
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument(
        "--anneal", type=fraction, default=0.0, help="fall linearly to lr 0 over this last fraction of the updates"
    )
    parser.add_argument("--seeds", type=seed_list, default=list(SEEDS), help="the seeds this process trains: 1,2")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true", help="take runs already measured with these settings")
    parser.add_argument("--report", action="store_true", help="only print the table and draw the curves")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.report:
        sweep(args)
    payload = load()
    print(markdown(summary(payload)))
    if any(r.get("chosen") for r in payload["runs"]):
        plot(payload)
        print(f"written {RESULTS / NAME}.json and {NAME}.png")


if __name__ == "__main__":
    main()
