"""LanguageModel: shapes, tied weights through a save/load round trip, dropout masks, the loss and metrics."""

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from rnnkit.data import StreamBatches
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import bits, perplexity
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.train import checkpoint as ckpt

V = 11


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("layers", [1, 2])
def test_forward_shapes_and_state_carry(cell, layers):
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(cell=cell, hidden=12, layers=layers, embed=6)).eval()
    ids = torch.randint(0, V, (7, 3))
    logits, state = lm(ids)
    assert logits.shape == (7, 3, V) and len(state) == layers
    assert lm.embedding.weight.shape == (V, 6) and lm.decoder.weight.shape == (V, 12)
    # feeding the state on gives what one pass over the whole sequence gives
    first, mid = lm(ids[:4])
    second, _ = lm(ids[4:], mid)
    assert torch.allclose(torch.cat([first, second]), logits, atol=1e-6)
    assert not torch.allclose(lm(ids[4:])[0], second, atol=1e-4)  # and the state matters


def test_loss_is_summed_cross_entropy_without_padding():
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(hidden=8, layers=1), pad_id=0).eval()
    x = torch.randint(1, V, (5, 2))
    y = torch.randint(1, V, (5, 2))
    y[4, 1] = 0  # a padded target
    out = lm.loss((x, y))
    logits, _ = lm(x)
    keep = y.flatten() != 0
    expected = F.cross_entropy(logits.flatten(0, 1)[keep], y.flatten()[keep], reduction="sum")
    assert int(out.count) == 9 and torch.allclose(out.loss, expected)


def test_tied_weights_share_one_parameter_and_survive_a_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = LMConfig(hidden=8, layers=2, tie_weights=True)
    lm = LanguageModel(V, cfg)
    assert lm.decoder.weight is lm.embedding.weight
    assert len(list(lm.parameters())) == len({id(p) for p in lm.parameters()})
    untied = LanguageModel(V, LMConfig(hidden=8, layers=2))
    assert len(list(untied.parameters())) == len(list(lm.parameters())) + 1

    with torch.no_grad():
        lm.embedding.weight.add_(0.3)  # weights a fresh model does not have
    path = tmp_path / "best.safetensors"
    ckpt.save_weights(lm, path)
    assert len(load_file(str(path))) == len(list(lm.parameters()))  # the tied matrix is stored once

    torch.manual_seed(1)
    loaded = LanguageModel(V, cfg)
    ckpt.load_weights(loaded, path)
    assert loaded.decoder.weight is loaded.embedding.weight  # still tied after loading
    ids = torch.randint(0, V, (6, 2))
    assert torch.equal(lm.eval()(ids)[0], loaded.eval()(ids)[0])
    with torch.no_grad():
        loaded.embedding.weight[3].fill_(2.0)
    assert torch.equal(loaded.decoder.weight[3], torch.full((8,), 2.0))


def test_weights_of_another_shape_do_not_load(tmp_path):
    path = tmp_path / "w.safetensors"
    ckpt.save_weights(LanguageModel(V, LMConfig(hidden=8, layers=1)), path)
    with pytest.raises(RnnkitError, match=r"w\.safetensors"):
        ckpt.load_weights(LanguageModel(V, LMConfig(hidden=8, layers=2)), path)
    with pytest.raises(RnnkitError, match=r"w\.safetensors"):
        ckpt.load_weights(LanguageModel(V, LMConfig(hidden=9, layers=1)), path)


@pytest.mark.parametrize("cell", ["lstm", "gru", "scrn"])
@pytest.mark.parametrize("layers", [1, 2, 3, 5])
def test_tied_weights_with_another_embedding_size_give_the_last_layer_that_size(cell, layers):
    """AWD-LSTM's 400-1150-1150-400: --tie-weights with --embed unlike --hidden sizes the last layer to --embed;
    the parameter count made without building the model is exact."""
    config = LMConfig(cell=cell, hidden=8, embed=4, layers=layers, tie_weights=True)
    assert config.sizes() == [8] * (layers - 1) + [4]
    if cell == "scrn":  # SCRN's output is [h; s]: wider than the embedding, so it cannot be tied
        with pytest.raises(RnnkitError, match=r"--tie-weights needs the last layer's output size \(\d+\) to equal"):
            LanguageModel(V, config)
        return
    lm = LanguageModel(V, config)
    assert [layer.hidden_size for layer in lm.layers] == config.sizes() and lm.decoder.weight is lm.embedding.weight
    assert config.params(V) == sum(p.numel() for p in lm.parameters())
    assert lm(torch.randint(0, V, (5, 2)))[0].shape == (5, 2, V)


def _embedding_output_masks(variational: bool) -> torch.Tensor:
    """The dropout mask applied to the embedding's output, (T, B, E) booleans (True = kept)."""
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(hidden=16, layers=1, dropout=0.5, variational=variational)).train()
    seen = []
    lm.layers[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    ids = torch.randint(0, V, (9, 4))
    lm(ids)
    emb = lm.embedding(ids)
    assert (emb != 0).all()
    kept = seen[0] != 0
    assert torch.allclose(seen[0][kept], 2 * emb[kept])  # inverted dropout: kept values scaled by 1/(1-p)
    return kept


def test_variational_dropout_uses_one_mask_for_all_time_steps():
    kept = _embedding_output_masks(variational=True)
    assert (kept == kept[0]).all()  # the same positions at every t
    assert 0.2 < kept[0].float().mean() < 0.8  # and it does drop


def test_standard_dropout_draws_a_new_mask_each_time_step():
    kept = _embedding_output_masks(variational=False)
    assert not (kept == kept[0]).all()
    assert 0.3 < kept.float().mean() < 0.7


def test_no_dropout_in_eval_mode():
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(hidden=8, layers=2, dropout=0.5, variational=True)).eval()
    ids = torch.randint(0, V, (5, 2))
    assert torch.equal(lm(ids)[0], lm(ids)[0])


def test_metrics_are_functions_of_the_mean_loss():
    m = 1.7
    word = LanguageModel(V, LMConfig(hidden=4, layers=1), level="word").metrics(m)
    char = LanguageModel(V, LMConfig(hidden=4, layers=1), level="char").metrics(m)
    assert word == {"loss": m, "ppl": pytest.approx(math.exp(m))}
    assert char == {"loss": m, "bpc": pytest.approx(m / math.log(2)), "ppl": pytest.approx(math.exp(m))}
    assert bits(math.log(2)) == pytest.approx(1.0) and perplexity(0.0) == 1.0
    assert perplexity(1e6) == math.exp(700)  # capped, not an overflow


def test_evaluate_is_the_mean_loss_over_every_token_with_the_state_carried():
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(hidden=8, layers=2, dropout=0.3), level="char").train()
    ids = torch.randint(1, V, (83,))
    batches = StreamBatches(ids, batch_size=3, bptt=4)
    result = lm.evaluate(batches)
    assert lm.training  # evaluate restores the mode

    lm.eval()
    data = batches.data  # (N, B): the whole stream in one pass is the chunks with the state carried
    with torch.no_grad():
        logits, _ = lm(data[:-1])
    mean = float(F.cross_entropy(logits.flatten(0, 1), data[1:].flatten()))
    assert result["count"] == data[1:].numel() == 78
    assert result["loss"] == pytest.approx(mean, rel=1e-5)
    assert result["ppl"] == pytest.approx(math.exp(mean), rel=1e-5)
    assert result["bpc"] == pytest.approx(mean / math.log(2), rel=1e-5)


def test_score_reads_between_boundaries():
    torch.manual_seed(0)
    lm = LanguageModel(V, LMConfig(hidden=8, layers=1)).eval()
    (r,) = lm.score([[5, 6, 7]], boundary_id=3)
    ids = torch.tensor([3, 5, 6, 7, 3])
    logits, _ = lm(ids[:-1].unsqueeze(1))
    logp = -float(F.cross_entropy(logits.squeeze(1), ids[1:], reduction="sum"))
    assert r["tokens"] == 4 and r["logprob"] == pytest.approx(logp, rel=1e-5)
    assert r["perplexity"] == pytest.approx(math.exp(-logp / 4), rel=1e-6)


def test_a_cell_whose_output_is_wider_than_hidden_feeds_the_next_layer_and_the_softmax():
    from rnnkit.errors import RnnkitError
    from rnnkit.tasks.lm import LanguageModel, LMConfig

    lm = LanguageModel(30, LMConfig(cell="scrn", hidden=8, layers=2))
    assert lm.layers[1].input_size == 8 + 40 and lm.decoder.in_features == 8 + 40
    logits, state = lm(torch.randint(0, 30, (5, 3)))
    assert logits.shape == (5, 3, 30) and state[1].s.shape == (1, 3, 40)
    with pytest.raises(RnnkitError, match="tie-weights needs the last layer's output size"):
        LanguageModel(30, LMConfig(cell="scrn", hidden=8, layers=1, tie_weights=True))
