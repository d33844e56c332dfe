"""Clockwork RNN paper, Table 2 (Koutnik et al. 2014): learn to emit a 320-sample waveform from no input.

    python benchmarks/clockwork_waveform.py                                             # the built-in chord
    python benchmarks/clockwork_waveform.py --wav /tmp/clockwork_voice.wav             # an espeak-ng recording
    python benchmarks/clockwork_waveform.py --wav /tmp/clockwork_voice.wav --seeds 1 2  # more seeds: medians

The task: one hidden layer, a linear read-out, and no input: the input is a 1-dimensional zero at every
step, so the network must produce the waveform from its own dynamics (its biases start it). Each
network is trained with Adam on the whole 320-step sequence (full BPTT, no truncation) for the same
number of iterations, and scored by the normalised MSE, MSE / variance of the target (the paper's
Table 2: simple RNN 0.46, LSTM 0.04, CW-RNN 0.007). The paper's optimiser and its waveform are not copied:
Adam, and the two targets below, stand in for them.

Learning rates: ``--lrs`` takes a grid; every seed trains at every rate, and each model and size reports
the rate whose median over the seeds is lowest (the task has nothing held out: the score is how well the
network reproduces the one waveform it trains on, as in the paper). Runs at each rate are kept, so a grid
run in several invocations adds up, and the table lists the rates tried.

Sizes: for each target parameter count (about 100, 250, 500, 1000 as in the paper) every model takes the
hidden size whose count is nearest. A Clockwork RNN's count is its effective one: the recurrent weights
its block-triangular mask removes are not counted (they never train). Its modules have periods
1, 2, 4, ..., 2^(g-1); g and the module size are chosen together to come nearest the target.

Targets: ``--wav`` reads a mono 16-bit WAV with the stdlib ``wave`` module, scales it to [-1, 1] and cuts
the loudest 320 samples (``--offset`` to choose). The recording used for the README figures was made with
espeak-ng 1.51 and sox:

    espeak-ng -v en-us -s 130 -w /tmp/cw_espeak.wav "the clockwork sings a long vowel"
    sox /tmp/cw_espeak.wav -r 16000 -b 16 -c 1 /tmp/clockwork_voice.wav

Without ``--wav`` the target is a deterministic synthesised chord (A minor, 8 kHz, with a slow swell), so
the script runs with nothing downloaded. Writes benchmarks/results/<name>.json (one section per target;
each trained network is added as it finishes, so seeds run in separate invocations add up) and <name>.png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
import wave
from pathlib import Path

import torch
from common import RESULTS, learning_rates, machine, results_lock, write_result
from torch import Tensor, nn

from rnnkit import Recurrent
from rnnkit.cells import ClockworkCell
from rnnkit.compat import make_layer

STEPS = 320
MODELS = ("rnn", "lstm", "clockwork")
PAPER_NMSE = {"rnn": 0.46, "lstm": 0.04, "clockwork": 0.007}


def chord(steps: int = STEPS, rate: int = 8000) -> Tensor:
    """A, C and E (220, 261.63, 329.63 Hz) at ``rate`` Hz under a slow swell, scaled to [-1, 1]."""
    t = torch.arange(steps, dtype=torch.float64) / rate
    notes = sum(torch.sin(2 * math.pi * f * t + k) for k, f in enumerate((220.0, 261.63, 329.63)))
    swell = 0.6 + 0.4 * torch.sin(math.pi * t / t[-1])  # one slow half-period over the cut
    y = notes * swell
    return (y / y.abs().max()).float()


def read_wav(path: str, steps: int = STEPS, offset: int | None = None) -> Tensor:
    """``steps`` samples of a mono 16-bit WAV, scaled to [-1, 1]; the loudest window unless ``offset``."""
    try:
        with wave.open(path, "rb") as f:
            if f.getsampwidth() != 2 or f.getnchannels() != 1:
                raise SystemExit(
                    f"{path}: expected mono 16-bit PCM, got {f.getnchannels()} channel(s) of "
                    f"{8 * f.getsampwidth()} bits; convert with: sox {path} -b 16 -c 1 out.wav"
                )
            raw = f.readframes(f.getnframes())
    except (OSError, wave.Error) as err:
        raise SystemExit(f"{path}: cannot read a WAV file ({err})") from None
    x = torch.frombuffer(bytearray(raw), dtype=torch.int16).float() / 32768.0
    if len(x) < steps:
        raise SystemExit(f"{path}: {len(x)} samples, need at least {steps}")
    if offset is None:
        energy = (x**2).unfold(0, steps, steps // 4).sum(-1)  # windows every steps/4 samples
        offset = int(energy.argmax()) * (steps // 4)
    y = x[offset : offset + steps]
    if len(y) < steps:
        raise SystemExit(f"{path}: --offset {offset} leaves {len(y)} samples, need {steps}")
    return y / y.abs().max()


class Generator(nn.Module):
    """zeros (T, 1, 1) -> one recurrent layer -> linear read-out -> (T,)."""

    def __init__(self, layer: Recurrent) -> None:
        super().__init__()
        self.layer, self.readout = layer, nn.Linear(layer.output_size, 1)

    def forward(self, steps: int) -> Tensor:
        x = torch.zeros(steps, 1, 1)
        h, _ = self.layer(x)
        return self.readout(h).view(steps)

    def num_params(self) -> int:
        """Trainable weights, less those a Clockwork mask holds at zero."""
        masked = sum(int((c.recurrent_mask == 0).sum()) for c in self.layer.cells if isinstance(c, ClockworkCell))
        return sum(p.numel() for p in self.parameters()) - masked


def make(model: str, hidden: int, modules: int = 1) -> Generator:
    if model == "clockwork":
        return Generator(Recurrent("clockwork", 1, hidden, periods=[2**i for i in range(modules)]))
    return Generator(make_layer(model, 1, hidden))  # torch's fused kernel: same numbers, faster


def sized(model: str, target: int) -> tuple[int, int]:
    """(hidden, modules) whose parameter count is nearest ``target`` (modules is 1 but for clockwork)."""
    if model != "clockwork":
        return min(((h, 1) for h in range(1, 64)), key=lambda s: abs(make(model, *s).num_params() - target))
    shapes = [(g * k, g) for g in range(3, 10) for k in range(1, 12)]  # g modules of k units; slowest period 2^(g-1)
    return min(shapes, key=lambda s: (abs(make(model, *s).num_params() - target), -s[1]))


def train(net: Generator, target: Tensor, iters: int, lr: float) -> tuple[float, Tensor]:
    """Adam on the full sequence; returns the final normalised MSE and the generated waveform."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    for _ in range(iters):
        loss = ((net(len(target)) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
    with torch.no_grad():
        y = net(len(target))
    return float(((y - target) ** 2).mean() / target.var(unbiased=False)), y


def plot(sections: dict[str, dict], path: Path) -> None:
    """One column per target, one row per model: the target and the median seed's waveform at the largest
    size, at the model's chosen learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(MODELS), len(sections), figsize=(6 * len(sections), 2.0 * len(MODELS)), squeeze=False)
    for col, section in enumerate(sections.values()):
        largest = max(r["target_params"] for r in section["runs"])
        chosen = {(r["model"], r["target_params"]): r["lr"] for r in section["table"]}
        for row, model in enumerate(MODELS):
            runs = sorted(
                (r for r in section["runs"] if (r["model"], r["target_params"]) == (model, largest)),
                key=lambda r: r["nmse"],
            )
            runs = [r for r in runs if r["lr"] == chosen.get((model, largest))]
            ax = axes[row, col]
            ax.plot(section["target"], color="0.6", lw=2.5, label="target")
            if runs:
                run = runs[len(runs) // 2]  # the median seed (the upper one of an even count)
                label = f"{model}, {run['params']} params, lr {run['lr']:g}, seed {run['seed']}: nmse {run['nmse']:.3g}"
                ax.plot(section["waveforms"][_wave_key(run)], color="C3", lw=1.0, label=label)
            ax.legend(loc="upper right", fontsize=7)
        axes[0, col].set_title(section["setting"]["target"], fontsize=9)
        axes[-1, col].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _wave_key(run: dict) -> str:
    return f"{run['model']}/{run['lr']:g}/{run['seed']}"


def summarise(section: dict) -> None:
    """The section's table: per model and size, the learning rate whose median normalised MSE over the seeds
    is lowest (among the rates with the most seeds run, so a rate is never chosen on fewer seeds)."""
    table = []
    for size in sorted({r["target_params"] for r in section["runs"]}):
        for model in MODELS:
            runs = [r for r in section["runs"] if r["model"] == model and r["target_params"] == size]
            if not runs:
                continue
            by_lr = {lr: [r for r in runs if r["lr"] == lr] for lr in sorted({r["lr"] for r in runs})}
            most = max(len(v) for v in by_lr.values())
            medians = {lr: statistics.median(r["nmse"] for r in v) for lr, v in by_lr.items() if len(v) == most}
            lr = min(medians, key=medians.get)
            row = {k: runs[0][k] for k in ("model", "target_params", "params", "hidden")}
            row |= {"lr": lr, "lrs_tried": sorted(by_lr), "nmse_median": round(medians[lr], 5)}
            table.append(row | {"seeds": sorted(r["seed"] for r in by_lr[lr])})
    section["table"] = table
    section["mean_nmse"] = {
        m: round(statistics.mean(r["nmse_median"] for r in table if r["model"] == m), 5)
        for m in MODELS
        if any(r["model"] == m for r in table)
    }


def record(name: str, key: str, setting: dict, target: Tensor, run: dict, y: Tensor | None) -> dict:
    """Add one trained network to results/<name>.json (replacing an earlier run of the same model, size,
    rate and seed), so that seeds and rates run in separate invocations add up and an interrupted run keeps
    what it did."""
    with results_lock(name):  # another target's sweep may be writing the same file
        return _record(name, key, setting, target, run, y)


def _record(name: str, key: str, setting: dict, target: Tensor, run: dict, y: Tensor | None) -> dict:
    path = RESULTS / f"{name}.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    sections = payload.get("targets", {})
    section = sections.get(key, {})
    if section.get("setting", {}).get("iters") != setting["iters"]:
        section = {"runs": [], "waveforms": {}}  # another budget: start the target afresh
    same = ("model", "target_params", "lr", "seed")
    section["runs"] = [r for r in section["runs"] if any(r[k] != run[k] for k in same)] + [run]
    section |= {"setting": setting, "target": [round(v, 4) for v in target.tolist()]}
    if y is not None:
        section["waveforms"][_wave_key(run)] = [round(v, 4) for v in y.tolist()]
    summarise(section)
    write_result(name, {"paper_nmse": PAPER_NMSE, "targets": sections | {key: section}})
    return sections | {key: section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wav", help="mono 16-bit WAV to cut the target from (default: the built-in chord)")
    parser.add_argument("--offset", type=int, default=None, help="first sample of the cut (default: loudest window)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 250, 500, 1000], help="target parameter counts")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--iters", type=int, default=3000, help="Adam iterations, the same for every model")
    parser.add_argument(
        "--lrs", type=learning_rates, default=[3e-2], help="Adam's learning rates (cosine decay to 0): 1e-2,3e-2"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; the table reports the median")
    parser.add_argument("--name", default="clockwork_waveform", help="results/<name>.json and .png")
    parser.add_argument("--report", action="store_true", help="only print the tables and draw the plot")
    args = parser.parse_args()
    if args.report:
        report(args.name)
        return
    torch.set_num_threads(1)
    target = read_wav(args.wav, offset=args.offset) if args.wav else chord()
    key = Path(args.wav).stem if args.wav else "chord"
    source = f"{Path(args.wav).name}: espeak-ng voice, 16 kHz" if args.wav else "built-in A minor chord, 8 kHz"
    command = "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/clockwork_waveform.py", *sys.argv[1:]])
    setting = machine() | {"machine": "2-core CPU", "target": source, "steps": STEPS, "iters": args.iters}
    setting |= {"optimizer": "Adam, cosine decay to 0, clip_grad_norm_ 1.0"}
    for seed, size, model, lr in itertools.product(args.seeds, args.sizes, args.models, args.lrs):
        hidden, modules = sized(model, size)
        torch.manual_seed(seed)
        net = make(model, hidden, modules)
        start = time.perf_counter()
        nmse, y = train(net, target, args.iters, lr)
        run = {"model": model, "target_params": size, "params": net.num_params(), "hidden": hidden}
        run |= {"periods": [2**i for i in range(modules)]} if model == "clockwork" else {}
        run |= {"lr": lr, "seed": seed, "nmse": round(nmse, 5), "seconds": round(time.perf_counter() - start, 1)}
        run |= {"date": time.strftime("%Y-%m-%d"), "command": command}
        kept = y if size == max(args.sizes) else None  # the plot shows the largest size
        sections = record(args.name, key, setting, target, run, kept)
        print(f"{model:9s} ~{size:4d}: {run['params']:4d} params, lr {lr:g}, seed {seed}: nmse {nmse:.4f}", flush=True)
    print(f"{key}: mean normalised MSE over sizes {sections[key]['mean_nmse']}; the paper's {PAPER_NMSE}")
    for section in sections.values():  # a target written by an older version has a table without rates
        summarise(section)
    plot(sections, RESULTS / f"{args.name}.png")
    print(f"written {RESULTS / args.name}.json and .png")


def report(name: str) -> None:
    """Each target's table (README): per model and size the chosen rate's median normalised MSE, the parameter
    count and the rate; the mean over sizes; the rates tried; the paper's figure."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        print(f"{path}: no results yet; run the benchmark first", file=sys.stderr)
        raise SystemExit(2)
    sections = json.loads(path.read_text())["targets"]
    for section in sections.values():
        summarise(section)
        print(markdown(section) + "\n")
    plot(sections, RESULTS / f"{name}.png")


def markdown(section: dict) -> str:
    sizes = sorted({r["target_params"] for r in section["table"]})
    lines = [
        f"| {section['setting']['target']} | " + " | ".join(f"~{s}" for s in sizes) + " | mean | rates tried | paper |",
        "|---|" + "---:|" * (len(sizes) + 1) + "---|---:|",
    ]
    for model in MODELS:
        rows = {r["target_params"]: r for r in section["table"] if r["model"] == model}
        if not rows:
            continue
        cells = [f"{rows[s]['nmse_median']:.3g} ({rows[s]['params']}, lr {rows[s]['lr']:g})" for s in sizes]
        tried = ", ".join(f"{v:g}" for v in sorted({lr for r in rows.values() for lr in r["lrs_tried"]}))
        cells += [f"**{section['mean_nmse'][model]:.3g}**", tried, f"{PAPER_NMSE[model]:g}"]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
