"""Recurrent cells, one family per file, and ``CELLS``: the one registry of cells by name."""

from rnnkit.cells.base import Cell
from rnnkit.cells.clockwork import ClockworkCell, ClockworkState
from rnnkit.cells.elman import ElmanCell, ElmanState, IRNNCell
from rnnkit.cells.gru import GRUCell, GRUState
from rnnkit.cells.jordan import JordanCell, JordanState
from rnnkit.cells.lstm import LSTMCell, LSTMState
from rnnkit.cells.mingru import MinGRUCell, MinLSTMCell, MinState
from rnnkit.cells.scrn import SCRNCell, SCRNState

CELLS: dict[str, type[Cell]] = {
    "rnn": ElmanCell,
    "elman": ElmanCell,
    "irnn": IRNNCell,
    "jordan": JordanCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
    "scrn": SCRNCell,
    "clockwork": ClockworkCell,
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
}

__all__ = [
    "CELLS",
    "Cell",
    "ClockworkCell",
    "ClockworkState",
    "ElmanCell",
    "ElmanState",
    "GRUCell",
    "GRUState",
    "IRNNCell",
    "JordanCell",
    "JordanState",
    "LSTMCell",
    "LSTMState",
    "MinGRUCell",
    "MinLSTMCell",
    "MinState",
    "SCRNCell",
    "SCRNState",
]
