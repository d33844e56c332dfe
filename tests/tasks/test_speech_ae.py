"""The speech autoencoder's model (padding, reversal, the code as the decoder's only input, every cell) and the
retrieval metrics it is judged by (MAP, DTW), on hand-made numbers."""

import numpy as np
import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.ctc import make_speech_batch
from rnnkit.tasks.retrieval import cosine, dtw_similarities, mean_average_precision
from rnnkit.tasks.speech_ae import SpeechAEConfig, SpeechAutoencoder

CELLS = ["gru", "lstm", "elman", "jordan", "scrn", "clockwork", "mingru"]


def model(cell="gru", **kw) -> SpeechAutoencoder:
    torch.manual_seed(0)
    return SpeechAutoencoder(5, SpeechAEConfig(cell=cell, hidden=8, layers=2, code=4, dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("cell", CELLS)
def test_padding_changes_no_code_and_no_frame(cell):
    m = model(cell)
    short, long = torch.randn(3, 5), torch.randn(7, 5)
    batch = make_speech_batch([long, short])
    with torch.no_grad():
        codes, frames = m.encode(batch.features, batch.lengths), m(batch.features, batch.lengths)
        alone = make_speech_batch([short])
        assert torch.allclose(codes[1], m.encode(alone.features, alone.lengths)[0], atol=1e-6)
        assert torch.allclose(frames[1, :3], m(alone.features, alone.lengths)[0], atol=1e-6)


def test_reverse_writes_the_last_frame_first():
    m = model(reverse=True)
    x, lengths = torch.randn(2, 6, 5), torch.tensor([6, 4])
    with torch.no_grad():
        written = m.decode(m.encode(x, lengths), 6, lengths)  # in the decoder's order: last frame first
        out = m(x, lengths)
    assert torch.allclose(out[0], written[0].flip(0)) and torch.allclose(out[1, :4], written[1, :4].flip(0))
    plain = model(reverse=False)
    plain.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain(x, lengths), written)


def test_the_decoder_sees_only_the_code():
    """Two utterances with equal codes are written back identically, whatever their frames were."""
    m = model("lstm")
    x, lengths = torch.randn(2, 5, 5), torch.tensor([5, 5])
    with torch.no_grad():
        code = m.encode(x, lengths)
        same = m.decode(code[:1].expand(2, -1), 5, lengths)
    assert torch.equal(same[0], same[1])


def test_loss_is_the_squared_error_of_the_real_frames():
    m = model()
    batch = make_speech_batch([torch.randn(4, 5), torch.randn(2, 5)])
    out = m.loss(batch)
    with torch.no_grad():
        y = m(batch.features, batch.lengths)
    expected = (y[0] - batch.features[0]).square().sum() + (y[1, :2] - batch.features[1, :2]).square().sum()
    assert int(out.count) == 6 and torch.allclose(out.loss, expected)


def test_gradients_match_finite_differences():
    m = model("lstm").double().train()
    batch = make_speech_batch([torch.randn(3, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)])
    weight = m.to_code.weight

    def loss(w):
        return torch.func.functional_call(m, {"to_code.weight": w}, (batch.features, batch.lengths)).square().sum()

    assert torch.autograd.gradcheck(loss, (weight.detach().clone().requires_grad_(),))


def test_mean_average_precision_by_hand():
    # query 0 (a): ranks 1 (a), 2 (b), 3 (a): precisions 1/1 and 2/3 -> 5/6
    sims = np.array([[0, 0.9, 0.8, 0.7], [0.9, 0, 0.1, 0.2], [0.8, 0.1, 0, 0.3], [0.7, 0.2, 0.3, 0]])
    labels = ["a", "a", "b", "a"]
    score, queries = mean_average_precision(sims, labels)
    # query 1 (a): 0 (a) then 3 (a): 1; query 3 (a): 0 (a), 2 (b), 1 (a): (1 + 2/3) / 2; "b" has no other b
    assert queries == 3 and score == pytest.approx((5 / 6 + 1 + 5 / 6) / 3)
    with pytest.raises(RnnkitError, match="expected"):
        mean_average_precision(sims[:3], labels)
    with pytest.raises(RnnkitError, match="nothing to find"):
        mean_average_precision(np.zeros((2, 2)), ["a", "b"])


def test_dtw_ignores_tempo_and_cosine_ignores_scale():
    a = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    slow = np.repeat(a, 3, axis=0)  # the same frames, each held three times
    other = a[::-1].copy()
    sims = dtw_similarities([a, slow, other])
    assert sims[0, 1] == pytest.approx(0.0) and sims[0, 2] < -0.1 and np.allclose(sims, sims.T)
    assert cosine(a, 3 * a).diagonal() == pytest.approx([1.0, 1.0, 1.0])
