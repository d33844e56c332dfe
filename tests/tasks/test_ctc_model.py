"""The CTC acoustic model: padding never changes an output (whatever the subsampling), and the blank-less model
the tutorials warn of (the blank's probability held at 0, gradients finite)."""

import pytest
import torch

from rnnkit.tasks.ctc import ConvSubsampler, CTCConfig, CTCModel, make_speech_batch


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_padding_changes_no_output(factor):
    torch.manual_seed(0)
    model = CTCModel(6, 5, CTCConfig(hidden=8, layers=2, channels=8, subsample=factor)).eval()
    short, long = torch.randn(9, 6), torch.randn(30, 6)
    batch, alone = make_speech_batch([long, short]), make_speech_batch([short])
    with torch.no_grad():
        together, lengths = model(batch.features, batch.lengths)
        single, length = model(alone.features, alone.lengths)
    assert lengths[1] == length[0] == -(-9 // factor)
    assert torch.allclose(together[1, : int(length[0])], single[0], atol=1e-6)


def test_subsampler_zeroes_each_layers_padding():
    torch.manual_seed(0)
    sub = ConvSubsampler(3, 4, 4)
    for conv in list(sub)[::2]:
        torch.nn.init.constant_(conv.bias, 1.0)  # ReLU(bias) > 0: padding would leak without the mask
    x, lengths = sub(torch.randn(2, 12, 3), torch.tensor([12, 5]))
    assert lengths.tolist() == [3, 2] and torch.all(x[1, 2:] == 0) and torch.all(x[0] != 0)


def test_without_the_blank_its_probability_is_zero_and_training_is_finite():
    torch.manual_seed(0)
    model = CTCModel(6, 4, CTCConfig(hidden=8, layers=1, channels=8, blank=False))
    batch = make_speech_batch([torch.randn(20, 6), torch.randn(11, 6)], [[1, 2, 1], [3]])
    out = model.loss(batch)
    out.loss.backward()
    log_probs, _ = model(batch.features, batch.lengths)
    assert torch.all(log_probs[..., 0].exp() == 0) and torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
