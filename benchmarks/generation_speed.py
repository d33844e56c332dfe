"""Batch-1 generation speed: tokens/s of sampling one token at a time, rnnkit against torch.nn.LSTM, in one run.

    python benchmarks/generation_speed.py                 # 2 x 512, 10,000 words, 300 tokens, every cell
    python benchmarks/generation_speed.py --cells lstm --tokens 100

The baseline is the plainest PyTorch loop: torch.nn.Embedding -> torch.nn.LSTM(512, 512, 2) -> torch.nn.Linear,
called with one token at a time, softmax and torch.multinomial. rnnkit samples with ``rnnkit.tasks.sampling``
(what ``rnnkit lm sample`` and ``LMRun.sample`` run: banned ids, temperature, the float64 draw) through
``LanguageModel.stepper()`` (the default) and through ``LanguageModel.step`` (the model's forward, torch's fused
kernel for LSTM/GRU/RNN): the same model, the same tokens under a seed; and, for the LSTM, through the model's
step exported to ONNX and run by onnxruntime (what a deployment outside PyTorch gets), with the same sampling
code. Weights are random (speed does not depend on them) and nothing stops a sample early. Rounds are
interleaved and the median of each is reported, with the ratio to the baseline.
Writes benchmarks/results/generation_speed.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
from common import interleaved_medians, machine, write_result
from torch import nn

from rnnkit.cells import CELLS
from rnnkit.tasks import sampling
from rnnkit.tasks.lm import LanguageModel, LMConfig


def plain_lstm(vocab: int, hidden: int, layers: int, tokens: int):
    """torch.nn.LSTM stepped by hand: the baseline of the issue."""
    torch.manual_seed(0)
    embedding, rnn, decoder = nn.Embedding(vocab, hidden), nn.LSTM(hidden, hidden, layers), nn.Linear(hidden, vocab)

    @torch.no_grad()
    def run() -> None:
        g = torch.Generator().manual_seed(0)
        token, state = torch.tensor([[1]]), None
        for _ in range(tokens):
            out, state = rnn(embedding(token), state)
            probs = decoder(out[-1]).softmax(-1)
            token = torch.multinomial(probs, 1, generator=g)

    return run


def rnnkit_sampler(model: LanguageModel, fast: bool, tokens: int):
    def run() -> list[int]:
        step = model.stepper() if fast else model.step
        g = torch.Generator().manual_seed(0)
        return sampling.generate(step, [1], max_length=tokens, banned=[0], generator=g)

    return run


def onnxruntime_sampler(model: LanguageModel, tokens: int):
    """The model's step exported to ONNX (as ``rnnkit export`` writes it) and run by onnxruntime, sampling with
    the same code: what a deployment outside PyTorch gets. None without onnx/onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from torch.utils import _pytree as pytree

    from rnnkit.export import StepGraph

    ids = torch.tensor([[1]])
    with torch.no_grad():
        _, template = model.step(ids)
    graph = StepGraph(model, template, lambda m, x, s: m.step(x, s)).eval()
    leaves = pytree.tree_flatten(template)[0]
    names = [f"state{i}" for i in range(len(leaves))]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = f"{tmp}/step.onnx"
        torch.onnx.export(graph, (ids, *leaves), path, input_names=["input", *names], dynamo=True, verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run() -> list[int]:
        g = torch.Generator().manual_seed(0)
        feed = {"input": ids.numpy()} | {n: torch.zeros_like(t).numpy() for n, t in zip(names, leaves, strict=True)}
        out = []
        for _ in range(tokens):
            logits, *state = session.run(None, feed)
            token = sampling.sample_next(torch.from_numpy(logits[-1]), banned=[0], generator=g)
            out.append(int(token))
            feed = {"input": token.view(1, 1).numpy()} | dict(zip(names, state, strict=True))
        return out

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-onnxruntime", dest="onnxruntime", action="store_false", help="skip the ONNX row")
    args = parser.parse_args()
    fns = {"torch.nn.LSTM": plain_lstm(args.vocab, args.hidden, args.layers, args.tokens)}
    same = {}
    for cell in args.cells:
        torch.manual_seed(0)
        model = LanguageModel(args.vocab, LMConfig(cell=cell, hidden=args.hidden, layers=args.layers)).eval()
        fast, ref = rnnkit_sampler(model, True, args.tokens), rnnkit_sampler(model, False, args.tokens)
        same[cell] = fast() == ref()
        fns[f"{cell} stepper"], fns[f"{cell} model.step"] = fast, ref
        if cell == "lstm" and args.onnxruntime:
            ort_run = onnxruntime_sampler(model, args.tokens)
            if ort_run is not None:
                fns["lstm onnxruntime"] = ort_run
    seconds = interleaved_medians(fns, args.repeats, warmup=1)
    base = args.tokens / seconds["torch.nn.LSTM"]
    rows = {}
    for name, s in seconds.items():
        rate = args.tokens / s
        rows[name] = {"tokens_per_s": round(rate, 1), "vs_torch_lstm": round(rate / base, 2)}
        print(f"{name:24s} {rate:8.1f} tokens/s  {rate / base:5.2f}x torch.nn.LSTM", flush=True)
    payload = {"setting": machine() | vars(args), "rows": rows, "same_tokens_both_paths": same}
    path = write_result("generation_speed", payload)
    print(json.dumps(same), f"\nwritten {path}")


if __name__ == "__main__":
    main()
