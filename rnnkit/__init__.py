"""rnnkit: recurrent neural networks end to end on PyTorch.

The public API, as one explicit list: cells (one step's equations), the layer that runs any cell over
time, and drop-in replacements for torch.nn.RNN / LSTM / GRU (and, in ``rnnkit.torch_cells``, for
torch.nn.RNNCell / LSTMCell / GRUCell, whose names rnnkit's own cells already hold).
"""

from rnnkit import bptt, state, torch_cells
from rnnkit.cells import (
    CELLS,
    Cell,
    ClockworkCell,
    ClockworkState,
    ElmanCell,
    ElmanState,
    GRUCell,
    GRUState,
    IRNNCell,
    JordanCell,
    JordanState,
    LSTMCell,
    LSTMState,
    MinGRUCell,
    MinLSTMCell,
    MinState,
    SCRNCell,
    SCRNState,
)
from rnnkit.compat import GRU, IRNN, LSTM, RNN
from rnnkit.layers import SCRN, Clockwork, Jordan, MinGRU, MinLSTM, Recurrent, flip_padded
from rnnkit.tasks.char_encoder import CharEncoder
from rnnkit.tasks.crf import CRF, bio_constraints
from rnnkit.tasks.pooling import AttentionPooling, Pooling
from rnnkit.tasks.seq2seq.attention import AdditiveAttention, DotAttention, GeneralAttention
from rnnkit.tasks.seq2seq.model import Seq2Seq, Seq2SeqConfig
from rnnkit.tasks.seq2seq.search import Hypothesis, beam_search, greedy_search

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "CRF",
    "GRU",
    "IRNN",
    "LSTM",
    "RNN",
    "SCRN",
    "AdditiveAttention",
    "AttentionPooling",
    "Cell",
    "CharEncoder",
    "Clockwork",
    "ClockworkCell",
    "ClockworkState",
    "DotAttention",
    "ElmanCell",
    "ElmanState",
    "GRUCell",
    "GRUState",
    "GeneralAttention",
    "Hypothesis",
    "IRNNCell",
    "Jordan",
    "JordanCell",
    "JordanState",
    "LSTMCell",
    "LSTMState",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "MinState",
    "Pooling",
    "Recurrent",
    "SCRNCell",
    "SCRNState",
    "Seq2Seq",
    "Seq2SeqConfig",
    "beam_search",
    "bio_constraints",
    "bptt",
    "flip_padded",
    "greedy_search",
    "state",
    "torch_cells",
]
