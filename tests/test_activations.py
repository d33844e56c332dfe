"""The activation vocabulary cells can name."""

import pytest
import torch

from rnnkit.activations import ACTIVATIONS, get_activation


def test_values():
    x = torch.tensor([-4.0, -1.0, 0.0, 2.0])
    assert torch.equal(get_activation("identity")(x), x)
    assert get_activation("linear") is get_activation("identity")
    assert get_activation("relu")(x).tolist() == [0.0, 0.0, 0.0, 2.0]
    assert get_activation("hard_sigmoid")(x).tolist() == [0.0, pytest.approx(2 / 6), 0.5, pytest.approx(5 / 6)]
    torch.testing.assert_close(get_activation("sigmoid")(x), torch.sigmoid(x))
    torch.testing.assert_close(get_activation("tanh")(x), torch.tanh(x))
    s = get_activation("softmax")(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert s.tolist() == [[0.5, 0.5], [0.5, 0.5]]


@pytest.mark.parametrize("name", ["Tanh", "gelu", None, 3])
def test_unknown(name):
    choices = ", ".join(sorted(ACTIVATIONS))
    with pytest.raises(ValueError, match=f"unknown activation {name!r}: choose one of {choices}$"):
        get_activation(name)
