"""Training speed of rnnkit's language-model trainer against a plain PyTorch script, in one run.

    python benchmarks/lm_speed.py            # PTB, Zaremba "small": 2 x 200 LSTM, batch 20, 20 steps, SGD, clip

Both sides train the same model (embedding -> 2-layer LSTM -> softmax over 10k words) on the same PTB
batches with the same optimizer and clipping: rnnkit through ``Trainer.fit`` (checkpoint, metrics log,
non-finite checks and all), the baseline as the classic loop of pytorch/examples' word_language_model with
``torch.nn.LSTM``. Rounds alternate; the median tokens/s of each is reported, and the overhead target is
at most 10%. Writes benchmarks/results/lm_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import machine, write_result
from torch import nn

from rnnkit.data import StreamBatches, Vocabulary, read_text, tokenize
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.train import TrainConfig, Trainer

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ptb" / "ptb.train.txt"


class PlainLM(nn.Module):
    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, 2)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        out, state = self.rnn(self.embedding(x), state)
        return self.decoder(out), state


def plain_round(batches: StreamBatches, vocab: int, hidden: int, steps: int) -> float:
    torch.manual_seed(0)
    model = PlainLM(vocab, hidden)
    opt = torch.optim.SGD(model.parameters(), lr=20.0)
    state = None
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
    return time.perf_counter() - start


def rnnkit_round(batches: StreamBatches, vocab: int, hidden: int, steps: int) -> float:
    torch.manual_seed(0)
    model = LanguageModel(vocab, LMConfig(hidden=hidden, layers=2))
    cfg = TrainConfig(epochs=1000, max_steps=steps, optimizer="sgd", lr=20.0, clip_norm=0.25, progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, batches, None, cfg, Path(run_dir))
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200)
    args = parser.parse_args()
    tokens = tokenize(read_text(DATA), "word")
    vocab = Vocabulary.build(tokens)
    batches = StreamBatches(torch.tensor(vocab.encode(tokens)), 20, 20)
    per_step = 20 * 20
    times: dict[str, list[float]] = {"rnnkit": [], "plain": []}
    for r in range(args.rounds):
        times["plain"].append(plain_round(batches, len(vocab), args.hidden, args.steps))
        times["rnnkit"].append(rnnkit_round(batches, len(vocab), args.hidden, args.steps))
        print(f"round {r + 1}: plain {times['plain'][-1]:.2f} s, rnnkit {times['rnnkit'][-1]:.2f} s", flush=True)
    tok = {k: args.steps * per_step / statistics.median(v) for k, v in times.items()}
    overhead = 1 - tok["rnnkit"] / tok["plain"]
    payload = {
        "setting": machine() | {"steps": args.steps, "rounds": args.rounds, "hidden": args.hidden},
        "plain_tok_s": round(tok["plain"]),
        "rnnkit_tok_s": round(tok["rnnkit"]),
        "overhead": round(overhead, 4),
    }
    path = write_result("lm_speed", payload)
    print(f"plain PyTorch {tok['plain']:.0f} tok/s, rnnkit lm train {tok['rnnkit']:.0f} tok/s: overhead {overhead:.1%}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
