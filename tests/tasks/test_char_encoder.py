"""CharEncoder: the final forward and backward states of a character BiLSTM per word (Lample et al. 2016)."""

import pytest
import torch

from rnnkit.tasks.char_encoder import CharEncoder


def words_as_chars(words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Words as (N, C) ids (a=1, b=2, ...; 0 pads) and their lengths."""
    C = max(map(len, words))
    ids = torch.tensor([[ord(c) - 96 for c in w] + [0] * (C - len(w)) for w in words])
    return ids, torch.tensor([len(w) for w in words])


def test_output_is_the_final_forward_and_backward_lstm_states():
    torch.manual_seed(0)
    encoder = CharEncoder(27, embed=6, hidden=5)
    reference = torch.nn.LSTM(6, 5, bidirectional=True, batch_first=True)
    reference.load_state_dict(encoder.rnn.state_dict())  # the same torch names and shapes
    words = ["cat", "a", "tagging"]
    chars, lengths = words_as_chars(words)
    features = encoder(chars, lengths)
    assert features.shape == (3, 10)
    for i, word in enumerate(words):  # each word alone, unpadded: h_n is (2 directions, 1, H)
        _, (h_n, _) = reference(encoder.embedding(chars[i : i + 1, : len(word)]))
        torch.testing.assert_close(features[i], torch.cat([h_n[0, 0], h_n[1, 0]]))


def test_padding_never_changes_a_word():
    torch.manual_seed(1)
    encoder = CharEncoder(27, embed=4, hidden=3)
    alone = encoder(*words_as_chars(["ox"]))
    chars, lengths = words_as_chars(["ox", "elephant"])
    chars[0, 2:] = 7  # whatever fills the padding
    torch.testing.assert_close(encoder(chars, lengths)[0], alone[0])


def test_any_cell_gradients_and_no_words():
    encoder = CharEncoder(27, embed=4, hidden=3, cell="gru")
    chars, lengths = words_as_chars(["run", "ran"])
    encoder(chars, lengths).sum().backward()
    assert encoder.embedding.weight.grad[0].abs().sum() == 0  # the pad id is never trained
    assert encoder(torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape == (0, 6)


def test_bad_lengths_are_refused():
    encoder = CharEncoder(27, embed=4, hidden=3)
    chars, _ = words_as_chars(["ab", "c"])
    with pytest.raises(ValueError, match=r"every word length in 1\.\.C=2"):
        encoder(chars, torch.tensor([2, 0]))
    with pytest.raises(ValueError, match=r"chars \(N, C\) and lengths \(N,\)"):
        encoder(chars, torch.tensor([2]))
