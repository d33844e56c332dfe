"""The neural cache and dynamic evaluation: each reduces to the static model at zero strength, equals a
hand-written reference, helps on text that repeats itself, and leaves the model as it was."""

import json
import math

import pytest
import torch

from rnnkit.data import StreamBatches
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.lm_adaptive import (
    cache_distribution,
    cache_evaluate,
    decay_rates,
    dynamic_evaluate,
    gradient_statistics,
)

V = 12


def _model(seed=0):
    torch.manual_seed(seed)
    # wide initial weights: an untrained LSTM whose states tell the positions of a repeated text apart
    config = LMConfig(cell="lstm", hidden=32, embed=16, layers=1, dropout=0.0, init_range=1.0)
    return LanguageModel(V, config).eval()


def _repeated(length=40, times=3, seed=1, batch=2, bptt=7):
    g = torch.Generator().manual_seed(seed)
    piece = torch.randint(4, V, (length,), generator=g)
    return StreamBatches(piece.repeat(times * batch), batch, bptt)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_zero_strength_is_the_static_model():
    model, batches = _model(), _repeated()
    static = model.evaluate(batches)
    cached = cache_evaluate(model, batches, window=50, theta=1.0, lam=0.0)
    assert cached["loss"] == pytest.approx(static["loss"], rel=1e-5) and cached["count"] == static["count"]
    frozen = dynamic_evaluate(model, batches, lr=0.0, decay=0.0)
    assert frozen["loss"] == pytest.approx(static["loss"], rel=1e-5)


def test_cache_equals_a_reference_written_token_by_token():
    """Each column by itself: p = (1 - lam) p_model + lam * softmax over the window of theta h.h_i, on x_{i+1}."""
    model, batches = _model(), _repeated(length=9, times=2, bptt=4)
    window, theta, lam = 5, 2.0, 0.3
    got = cache_evaluate(model, batches, window=window, theta=theta, lam=lam)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(batches.data.shape[1]):
            column = batches.data[:, b]
            logits, _, raw, _ = model._run(column[:-1].unsqueeze(1), None)
            history = []
            for t in range(len(column) - 1):
                p = torch.softmax(logits[t, 0], -1)
                if history:
                    sims = torch.tensor([theta * float(raw[t, 0] @ h) for h, _ in history[-window:]])
                    w = torch.softmax(sims, 0)
                    p_cache = torch.zeros(V)
                    for weight, (_, token) in zip(w, history[-window:], strict=True):
                        p_cache[token] += weight
                    p = (1 - lam) * p + lam * p_cache
                total -= math.log(float(p[column[t + 1]]))
                count += 1
                history.append((raw[t, 0], int(column[t + 1])))
    assert got["count"] == count and got["loss"] == pytest.approx(total / count, rel=1e-5)


def test_cache_distribution_by_hand():
    keys = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])  # three cached states, one column
    p = cache_distribution(torch.tensor([[2.0, 0.0]]), keys, torch.tensor([[5], [6], [5]]), 1.0, 8)
    e2, e0 = math.exp(2.0), 1.0
    assert p[0, 5].item() == pytest.approx(2 * e2 / (2 * e2 + e0)) and p[0, 6].item() == pytest.approx(
        e0 / (2 * e2 + e0)
    )
    assert p.sum().item() == pytest.approx(1.0)


def test_both_help_on_text_that_repeats_and_leave_the_model_alone():
    model, batches = _model(), _repeated()
    before = _weights(model)
    static = model.evaluate(batches)["loss"]
    cached = cache_evaluate(model, batches, window=100, theta=5.0, lam=0.5)["loss"]
    adapted = dynamic_evaluate(model, batches, lr=1.0, decay=0.0)["loss"]
    assert cached < static - 0.3 and adapted < static - 0.3, (static, cached, adapted)
    after = _weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before) and not model.training


def test_rms_statistics_and_the_global_prior():
    model, batches = _model(), _repeated()
    stats = gradient_statistics(model, batches, max_batches=3)
    assert len(stats) == len(list(model.parameters())) and all((s >= 0).all() for s in stats)
    assert sum(float(s.sum()) for s in stats) > 0
    static = model.evaluate(batches)["loss"]
    adapted = dynamic_evaluate(model, batches, lr=1e-3, decay=0.01, stats=stats)["loss"]
    assert adapted < static


def test_decay_rates_are_capped_so_a_loud_weight_cannot_diverge():
    # one weight's mean squared gradient is 10^6 times the others': uncapped, its pull 0.02 * sqrt(MS)/mean
    # would be ~20, so every step would overshoot theta_0 19-fold (the softmax bias of a PTB model went to inf)
    stats = [torch.full((1000,), 1e-12), torch.tensor([1.0])]
    rates = decay_rates(stats, 0.02)
    assert float(rates[1]) == 1.0 and float(rates[0][0]) == pytest.approx(0.02 * 1e-6 / (1e-6 * 1000 + 1) * 1001)
    model, batches = _model(), _repeated()
    stats = [torch.full_like(s, 1e-12) for s in gradient_statistics(model, batches, max_batches=1)]
    stats[-1] = torch.ones_like(stats[-1])  # the decoder's bias
    adapted = dynamic_evaluate(model, batches, lr=1e-4, decay=0.02, stats=stats)
    assert math.isfinite(adapted["loss"]) and adapted["loss"] < model.evaluate(batches)["loss"] + 0.05


def test_bad_settings_are_one_line_errors():
    model, batches = _model(), _repeated()
    with pytest.raises(RnnkitError, match="--cache-window >= 1"):
        cache_evaluate(model, batches, window=0, theta=1.0, lam=0.1)
    with pytest.raises(RnnkitError, match=r"--cache-lambda in \[0, 1\]"):
        cache_evaluate(model, batches, window=5, theta=1.0, lam=1.5)
    with pytest.raises(RnnkitError, match="--dynamic-lr and --dynamic-decay must be >= 0"):
        dynamic_evaluate(model, batches, lr=-1.0, decay=0.0)
    with pytest.raises(RnnkitError, match="--dynamic-lr and --dynamic-decay must be >= 0"):
        dynamic_evaluate(model, batches, lr=float("nan"), decay=0.0)
    with pytest.raises(RnnkitError, match="--cache-theta >= 0"):
        cache_evaluate(model, batches, window=5, theta=float("nan"), lam=0.1)


def test_lm_eval_reports_cache_and_dynamic_apart(tmp_path, cli):
    text = " ".join(["the cat sat on the mat and the dog ran"] * 30)
    (tmp_path / "train.txt").write_text(text)
    argv = [
        "lm",
        "train",
        "--train",
        tmp_path / "train.txt",
        "--level",
        "word",
        "--out",
        tmp_path / "run",
        "--hidden",
        "16",
    ]
    assert cli(*argv, "--epochs", "1", "--batch-size", "4", "--bptt", "8", "--no-progress")[0] == 0
    flags = ["--cache-window", "50", "--dynamic-lr", "0.01", "--dynamic-stats", "2"]
    code, out, _ = cli("lm", "eval", tmp_path / "run", "--data", tmp_path / "train.txt", "--json", *flags)
    result = json.loads(out)
    assert code == 0 and {"ppl", "cache", "dynamic"} <= set(result)
    assert result["cache"]["window"] == 50 and "ppl" in result["cache"] and result["dynamic"]["stats"] == 2
    code, out, _ = cli("lm", "eval", tmp_path / "run", "--data", tmp_path / "train.txt", *flags)
    assert code == 0 and "\n  cache: " in out and "\n  dynamic: " in out
    # --dynamic-bptt: the updates come every 3 tokens per stream, as dynamic_evaluate reads a bptt-3 stream
    code, out, _ = cli(
        "lm", "eval", tmp_path / "run", "--data", tmp_path / "train.txt", "--json", *flags[2:], "--dynamic-bptt", "3"
    )
    short = json.loads(out)["dynamic"]
    from rnnkit.tasks.lm_run import encode_file, load_run

    lm = load_run(tmp_path / "run")
    ids = encode_file(str(tmp_path / "train.txt"), lm.vocab, "word", "strict")
    stats = lm._gradient_statistics(2, "strict")
    expected = dynamic_evaluate(lm.model, StreamBatches(ids, 10, 3), lr=0.01, decay=0.02, stats=stats)
    assert code == 0 and short["bptt"] == 3 and short["ppl"] == pytest.approx(expected["ppl"], rel=1e-5)
    assert short["ppl"] != pytest.approx(result["dynamic"]["ppl"], rel=1e-6)
    for bad, message in [(["--dynamic-bptt", "0", "--dynamic-lr", "1"], "--dynamic-bptt must be at least 1"),
                         (["--dynamic-bptt", "3"], "give --dynamic-lr too")]:  # fmt: skip
        code, _, err = cli("lm", "eval", tmp_path / "run", "--data", tmp_path / "train.txt", *bad)
        assert code == 2 and message in err and err.count("\n") == 1
    (tmp_path / "train.txt").unlink()
    (tmp_path / "valid.txt").write_text(text)
    code, _, err = cli("lm", "eval", tmp_path / "run", "--data", tmp_path / "valid.txt", *flags)
    assert code == 2 and "--dynamic-stats reads the run's training text" in err


def test_adaptive_scores_read_the_sentences_in_order():
    from rnnkit.tasks.lm_adaptive import adaptive_logprobs

    model = _model()
    g = torch.Generator().manual_seed(5)
    sentence = torch.randint(4, V, (25,), generator=g).tolist()
    other = torch.randint(4, V, (25,), generator=g).tolist()
    sentences = [sentence, other, sentence]
    static = [r["logprob"] for r in model.score(sentences, 3)]
    off = adaptive_logprobs(model, sentences, 3, cache={"window": 100, "theta": 5.0, "lam": 0.0})
    frozen = adaptive_logprobs(model, sentences, 3, dynamic={"lr": 0.0, "decay": 0.0})
    assert off == pytest.approx(static, rel=1e-5) and frozen == pytest.approx(static, rel=1e-5)
    before = _weights(model)
    cached = adaptive_logprobs(model, sentences, 3, cache={"window": 100, "theta": 5.0, "lam": 0.5})
    adapted = adaptive_logprobs(model, sentences, 3, dynamic={"lr": 1.0, "decay": 0.0})
    assert cached[2] > static[2] + 5 and adapted[2] > static[2] + 5  # the repeat is predicted from the first
    assert all(torch.equal(v, _weights(model)[k]) for k, v in before.items())


def test_lm_score_adds_the_adapted_log_probabilities(tmp_path, cli):
    text = " ".join(["the cat sat on the mat and the dog ran"] * 30)
    (tmp_path / "train.txt").write_text(text)
    argv = ["lm", "train", "--train", tmp_path / "train.txt", "--level", "word", "--out", tmp_path / "run"]
    assert cli(*argv, "--hidden", "16", "--epochs", "1", "--batch-size", "4", "--bptt", "8", "--no-progress")[0] == 0
    flags = ["--cache-window", "20", "--dynamic-lr", "0.01"]
    code, out, _ = cli("lm", "score", tmp_path / "run", "the cat sat", "the dog ran", "--json", *flags)
    rows = json.loads(out)
    assert code == 0 and all({"logprob", "cache_logprob", "dynamic_logprob", "rank"} <= set(r) for r in rows)
    code, out, _ = cli("lm", "score", tmp_path / "run", "the cat sat", *flags)
    assert code == 0 and "cache_logprob" in out and "dynamic_logprob" in out
