"""MusicModel: the loss by hand (BCE summed over keys, per predicted step), padding, generation, config."""

import math

import pytest
import torch

from rnnkit.cells import CELLS
from rnnkit.data.music import KEYS, padded_batches
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm import time_dropout
from rnnkit.tasks.music import MusicConfig, MusicModel


def tiny(cell="gru", **kw):
    torch.manual_seed(0)
    return MusicModel(MusicConfig(cell=cell, hidden=8, **kw)).eval()


def rolls(*lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, KEYS, generator=g) < 0.1).float() for n in lengths]


@torch.no_grad()
def test_loss_by_hand_is_bce_summed_over_keys_and_steps_divided_by_predicted_steps():
    model = tiny()
    (roll,) = rolls(4)
    logits, _ = model(roll[:-1].unsqueeze(1))  # predictions of steps 2..4 from steps 1..3
    p = torch.sigmoid(logits[:, 0]).detach().tolist()
    by_hand = 0.0
    for t in range(3):
        for k in range(KEYS):
            y = float(roll[t + 1, k])
            by_hand -= y * math.log(p[t][k]) + (1 - y) * math.log(1 - p[t][k])
    out = model.loss((roll.unsqueeze(1), torch.tensor([4])))
    assert int(out.count) == 3
    assert float(out.loss) == pytest.approx(by_hand, rel=1e-5)
    assert model.evaluate([(roll.unsqueeze(1), torch.tensor([4]))])["nll"] == pytest.approx(by_hand / 3, rel=1e-5)


def test_an_untrained_output_of_one_half_costs_88_log_2_per_step():
    model = tiny()
    torch.nn.init.zeros_(model.output.weight)
    torch.nn.init.zeros_(model.output.bias)
    batch = padded_batches(rolls(5, 3), 2)[0]
    assert model.evaluate([batch])["nll"] == pytest.approx(KEYS * math.log(2), rel=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "scrn", "jordan"])
@torch.no_grad()
def test_padding_does_not_count(cell):
    """A batch of padded sequences gives the sum of each sequence's own loss and count."""
    model = tiny(cell)
    seqs = rolls(7, 3, 5, seed=1)
    x, lengths = padded_batches(seqs, 3)[0]
    x_noisy = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x_noisy[n:, b] = 1.0  # garbage in the padding must not change anything either
    one_by_one = [model.loss((s.unsqueeze(1), torch.tensor([len(s)]))) for s in seqs]
    for batch in ((x, lengths), (x_noisy, lengths)):
        out = model.loss(batch)
        assert int(out.count) == 6 + 2 + 4
        assert float(out.loss) == pytest.approx(sum(float(o.loss) for o in one_by_one), rel=1e-5)


def test_every_cell_builds_and_learns_a_step():
    for cell in CELLS:
        model = tiny(cell, layers=2, dropout=0.1, input_dropout=0.1).train()
        batch = padded_batches(rolls(4, 6), 2)[0]
        out = model.loss(batch)
        (out.loss / out.count).backward()
        assert all(p.grad is not None for p in model.parameters()), cell


def test_generate_continues_the_seed_and_is_reproducible():
    model = tiny()
    seed = torch.zeros(2, KEYS)
    seed[:, [39, 43, 46]] = 1.0
    a = model.generate(seed, 5, generator=torch.Generator().manual_seed(1))
    b = model.generate(seed, 5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (7, KEYS) and torch.equal(a, b) and torch.equal(a[:2], seed)
    assert set(a.unique().tolist()) <= {0.0, 1.0}


def test_generate_carries_the_state_like_one_forward_pass():
    """At temperature 0 each step takes the keys with p > 1/2 of a forward pass over everything before it."""
    model = tiny()
    with torch.no_grad():
        model.output.bias.fill_(0.3)  # some keys on, so that the fed-back steps matter
    roll = model.generate(torch.eye(KEYS)[:3] * 1.0, 6, temperature=0)
    logits, _ = model(roll[:-1].unsqueeze(1))
    assert torch.equal((logits[2:, 0] > 0).float(), roll[3:])


def test_generate_and_config_errors():
    model = tiny()
    with pytest.raises(RnnkitError, match="--temperature must be at least 0"):
        model.generate(torch.zeros(1, KEYS), 2, temperature=-1)
    with pytest.raises(RnnkitError, match=r"seed must be a piano roll of shape \(S >= 1, 88\), got \(1, 12\)"):
        model.generate(torch.zeros(1, 12), 2)
    with pytest.raises(RnnkitError, match=r"--dropout must lie in \[0, 1\)"):
        MusicConfig(dropout=1.0)
    with pytest.raises(RnnkitError, match=r"--hidden must lie in \[1, 1048576\], got 0"):
        MusicConfig(hidden=0)


def test_variational_dropout_keeps_one_mask_per_sequence():
    torch.manual_seed(0)
    x = torch.ones(6, 3, KEYS)
    same = time_dropout(x, 0.5, True, variational=True)
    assert torch.equal(same, same[:1].expand_as(same)) and set(same.unique().tolist()) == {0.0, 2.0}
    fresh = time_dropout(x, 0.5, True)
    assert not torch.equal(fresh, fresh[:1].expand_as(fresh))
    assert torch.equal(time_dropout(x, 0.5, False, variational=True), x)
    model = tiny(variational=True, input_dropout=0.2, dropout=0.2).train()
    out = model.loss(padded_batches(rolls(5, 4), 2)[0])
    assert torch.isfinite(out.loss)


def test_weight_drop_drops_recurrent_weights_in_training_only():
    model = tiny("lstm", weight_drop=0.5)
    batch = padded_batches(rolls(6, 4), 2)[0]
    with torch.no_grad():
        ref = model.loss(batch).loss  # eval: no dropping
        model.train()
        torch.manual_seed(1)
        dropped = model.loss(batch).loss
        model.layers[0].bound_cells()[0].weight_hh.zero_()  # with no recurrent weights, dropping them changes nothing
        zero_train = model.loss(batch).loss
        model.eval()
        zero_eval = model.loss(batch).loss
    assert not torch.allclose(ref, dropped) and torch.allclose(zero_train, zero_eval)
    with pytest.raises(RnnkitError, match="--weight-drop needs a cell with weight_hh"):
        tiny("mingru", weight_drop=0.1)
