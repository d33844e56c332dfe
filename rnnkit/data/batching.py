"""Batches: language-model streams (the Penn Treebank column layout) and length-bucketed padded batches.

Shapes: T time steps, B batch entries, N rows of the stream layout (tokens per column).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from rnnkit.errors import RnnkitError


class StreamBatches:
    """A token stream cut into ``batch_size`` parallel columns and read ``bptt`` steps at a time.

    The classic layout of Zaremba et al. (2014) and pytorch/examples ``word_language_model``: the ids are
    trimmed to a multiple of ``batch_size`` and laid out as ``data = ids.view(B, N).t()`` (N, B), so column
    ``b`` is one contiguous stretch of the corpus and row ``t + 1`` continues row ``t``. Chunk ``i`` covers
    rows ``[i*bptt, min((i+1)*bptt, N-1))``: inputs ``x = data[start:end]`` and next-token targets
    ``y = data[start+1:end+1]``, both (T_i, B) long, time-major. The last chunk may be shorter. Carrying the
    recurrent state from one chunk to the next (detached) is truncated backpropagation through time.

    Args:
        ids: the corpus as a 1-D tensor of integer token ids; the batches live on its device.
        batch_size: parallel streams B.
        bptt: time steps per chunk.

    Raises:
        RnnkitError: ``ids`` is not a 1-D integer tensor, ``batch_size`` or ``bptt`` < 1, or the corpus
            has fewer than ``2 * batch_size`` tokens (each column needs an input and a target).

    >>> from rnnkit.data import StreamBatches
    >>> batches = StreamBatches(torch.arange(26), batch_size=4, bptt=3)
    >>> len(batches), batches.data.shape
    (2, torch.Size([6, 4]))
    >>> x, y = batches[0]
    >>> x
    tensor([[ 0,  6, 12, 18],
            [ 1,  7, 13, 19],
            [ 2,  8, 14, 20]])
    >>> y[0]
    tensor([ 1,  7, 13, 19])
    >>> batches.shard(1, 2)[0][0]
    tensor([[12, 18],
            [13, 19],
            [14, 20]])
    """

    def __init__(self, ids: Tensor, batch_size: int, bptt: int) -> None:
        if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point or ids.is_complex():
            got = f"shape {tuple(ids.shape)} and dtype {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
            raise RnnkitError(f"ids must be a 1-D tensor of integer token ids, got {got}")
        if batch_size < 1:
            raise RnnkitError(f"batch_size must be at least 1, got {batch_size}")
        if bptt < 1:
            raise RnnkitError(f"bptt must be at least 1, got {bptt}")
        rows = ids.numel() // batch_size
        if rows < 2:
            raise RnnkitError(
                f"{ids.numel()} tokens are too few for batch_size {batch_size}: one chunk needs at least "
                f"{2 * batch_size} (2 per stream); use a smaller batch size or more text"
            )
        data = ids[: rows * batch_size].long().view(batch_size, rows).t().contiguous()  # (N, B)
        self._init(data, bptt)

    def _init(self, data: Tensor, bptt: int) -> None:
        self.data = data  # (N, B)
        self.bptt = bptt

    @property
    def batch_size(self) -> int:
        """Parallel streams B (the columns of ``data``)."""
        return self.data.shape[1]

    def __len__(self) -> int:
        return -(-(self.data.shape[0] - 1) // self.bptt)  # ceil((N - 1) / bptt)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"chunk {i} is out of range for {n} chunks")
        start = (i % n) * self.bptt
        end = min(start + self.bptt, self.data.shape[0] - 1)
        return self.data[start:end], self.data[start + 1 : end + 1]  # (T_i, B), (T_i, B)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        rows, b = self.data.shape
        return f"StreamBatches({len(self)} chunks of bptt {self.bptt}, batch_size {b}, {rows} tokens per stream)"

    def shard(self, rank: int, world: int) -> StreamBatches:
        """The columns ``[rank*B/world, (rank+1)*B/world)`` of every chunk, for data-parallel training.

        Every shard has the same number of chunks, and concatenating the shards' ``x`` (or ``y``) along the
        batch dimension in rank order gives the full chunk. The shard holds a contiguous copy of its columns.

        Args:
            rank: this process, ``0 <= rank < world``.
            world: number of processes; must divide ``batch_size``.

        Returns:
            The shard, with batch size ``batch_size // world``.

        Raises:
            RnnkitError: ``world`` < 1, ``rank`` out of range, or ``batch_size`` not a multiple of ``world``.
        """
        b = self.batch_size
        if world < 1 or not 0 <= rank < world:
            raise RnnkitError(f"rank {rank} of world size {world} is invalid: need world >= 1 and 0 <= rank < world")
        if b % world:
            raise RnnkitError(
                f"batch_size {b} does not divide by the world size {world}: "
                f"use a batch size that is a multiple of {world}"
            )
        per = b // world
        shard = StreamBatches.__new__(StreamBatches)
        shard._init(self.data[:, rank * per : (rank + 1) * per].contiguous(), self.bptt)
        return shard


class Chunk(NamedTuple):
    """One chunk of a stream: inputs, next-token targets, and the learning-rate scale of its length."""

    x: Tensor  # (T, B)
    y: Tensor  # (T, B)
    lr_scale: float  # T / bptt: a longer window, a larger step (AWD-LSTM)


class VariableStream:
    """:class:`StreamBatches`' layout read in chunks of random length (Merity et al. 2018): each chunk is
    ``bptt`` long with probability 0.95 and ``bptt / 2`` otherwise, then drawn from N(that, 5), at least 5
    steps (and at most 2 * bptt), so that every token is at a chunk's start in some epoch. The lengths come
    from ``(seed, epoch)`` alone, so an epoch's chunks are the same after a resume, and on every process.

    >>> stream = VariableStream(StreamBatches(torch.arange(400), batch_size=2, bptt=20), seed=0)
    >>> chunks = stream.for_epoch(0)
    >>> sum(c.x.shape[0] for c in chunks), [round(c.lr_scale, 2) for c in chunks[:3]]
    (199, [1.0, 1.1, 1.25])
    """

    def __init__(self, stream: StreamBatches, *, seed: int) -> None:
        self.stream, self.seed = stream, seed

    def lengths(self, epoch: int) -> list[int]:
        rng, bptt, left, out = (
            np.random.default_rng([self.seed, epoch, 7]),
            self.stream.bptt,
            self.stream.data.shape[0] - 1,
            [],
        )
        while left > 0:
            base = bptt if rng.random() < 0.95 else bptt / 2
            n = min(max(5, int(rng.normal(base, 5))), 2 * bptt, left)
            out.append(n)
            left -= n
        return out

    def for_epoch(self, epoch: int) -> list[Chunk]:
        data, bptt, start, chunks = self.stream.data, self.stream.bptt, 0, []
        for n in self.lengths(epoch):
            chunks.append(Chunk(data[start : start + n], data[start + 1 : start + n + 1], n / bptt))
            start += n
        return chunks

    def shard(self, rank: int, world: int) -> VariableStream:
        return VariableStream(self.stream.shard(rank, world), seed=self.seed)


def bucket_batches(
    lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0, window: int = 50
) -> list[list[int]]:
    """Group example indices into batches of similar length, so that padding wastes little.

    With ``shuffle``, the indices are permuted (seeded by ``(seed, epoch)``), cut into windows of
    ``window * batch_size``, sorted by length within each window, cut into batches, and the batch order is
    permuted again. Without it, all indices are sorted by length and ``seed``/``epoch`` are unused (the
    tightest packing, for evaluation). Either way each batch lists its longest example first (ties in
    index order), every index appears exactly once, only one batch may be smaller than ``batch_size``,
    and the result depends only on the arguments.

    Args:
        lengths: the length of each example.
        batch_size: examples per batch.
        shuffle: permute examples and batches (training) or not (evaluation).
        seed: the run's seed (>= 0).
        epoch: the epoch (>= 0); each epoch gets a different order.
        window: batches per sorting window; larger packs tighter and shuffles less.

    Returns:
        The batches, as lists of indices into ``lengths``.

    Raises:
        RnnkitError: ``batch_size`` or ``window`` < 1, or a negative ``seed`` or ``epoch``.

    >>> bucket_batches([5, 1, 4, 2, 3], 2, shuffle=False)
    [[0, 2], [4, 3], [1]]
    """
    if batch_size < 1 or window < 1:
        raise RnnkitError(f"batch_size and window must be at least 1, got {batch_size} and {window}")
    if seed < 0 or epoch < 0:
        raise RnnkitError(f"seed and epoch must be non-negative, got {seed} and {epoch}")
    sizes = [int(n) for n in lengths]

    def by_length(indices: list[int]) -> list[list[int]]:
        ordered = sorted(indices, key=lambda i: -sizes[i])  # stable: ties stay in the order given
        return [ordered[k : k + batch_size] for k in range(0, len(ordered), batch_size)]

    if not shuffle:
        return by_length(list(range(len(sizes))))
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(sizes)).tolist()
    span = window * batch_size
    batches = [batch for k in range(0, len(order), span) for batch in by_length(order[k : k + span])]
    return [batches[j] for j in rng.permutation(len(batches)).tolist()]


def shard_rows(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Process ``rank``'s share of every batch under torchrun: rows rank, rank + world, ... of each.

    The W shares of a batch together are the batch, so with the loss summed and divided by the global count
    the averaged gradient is that of the whole batch. A batch with fewer rows than processes is left out on
    every process (all must take the same steps); with one process the batches are returned as they are.

    >>> shard_rows([[4, 1, 3], [0, 2], [5]], 1, 2)
    [[1], [2]]
    """
    if world == 1:
        return batches
    return [rows[rank::world] for rows in batches if len(rows) >= world]


def pad_ids(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Lists of ids as one (B, T) long tensor padded with ``pad_id``, and their lengths (B,): :func:`pad_batch`
    with ``batch_first`` for plain lists, built in one numpy array rather than one tensor per list (a batch's
    characters are thousands of short lists, and a tensor each cost more than the tagger's Viterbi).

    >>> pad_ids([[5, 6, 7], [8]], 0)
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([3, 1]))
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if len(sequences) == 0 or not lengths.all():
        raise RnnkitError("pad_ids needs at least one sequence, each of at least one id")
    padded = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    padded[np.arange(padded.shape[1]) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum())
    )
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def pad_unique(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`pad_ids` of the distinct sequences only, and where each sequence is among them: ``padded[index]``
    is every sequence's row. A batch's words repeat ("the", "to", "boston"), so a character encoder that reads
    each distinct word once does a fraction of the work, with the same result.

    >>> padded, lengths, index = pad_unique([[5, 6], [7], [5, 6]], 0)
    >>> padded.tolist(), lengths.tolist(), index.tolist()
    ([[5, 6], [7, 0]], [2, 1], [0, 1, 0])
    """
    rows: dict[tuple[int, ...], int] = {}
    index = [rows.setdefault(tuple(s), len(rows)) for s in sequences]
    padded, lengths = pad_ids(list(rows), pad_id)
    return padded, lengths, torch.tensor(index, dtype=torch.long)


def pad_batch(sequences: Sequence[Tensor], pad_id: int, *, batch_first: bool = False) -> tuple[Tensor, Tensor]:
    """Stack sequences of different lengths into one tensor, filling the tail of the shorter ones.

    Args:
        sequences: B tensors of shape (T_b, *) with the same trailing shape and dtype (lists of ids work too).
        pad_id: the value of padded positions (``Vocabulary.pad_id`` for ids).
        batch_first: return (B, T, *) instead of time-major (T, B, *).

    Returns:
        ``(padded, lengths)``: padded (T, B, *) or (B, T, *) with T = max T_b, and ``lengths`` (B,) long on
        the CPU (where ``pack_padded_sequence`` wants it).

    Raises:
        RnnkitError: no sequences, a 0-d tensor, or trailing shapes that differ.

    >>> padded, lengths = pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])], pad_id=0)
    >>> padded.T, lengths
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([3, 1]))
    """
    if len(sequences) == 0:
        raise RnnkitError("pad_batch needs at least one sequence")
    seqs = [torch.as_tensor(s) for s in sequences]
    if any(s.dim() == 0 for s in seqs):
        raise RnnkitError("pad_batch needs sequences of shape (T, *), got a 0-d tensor")
    trailing = {tuple(s.shape[1:]) for s in seqs}
    if len(trailing) > 1:
        raise RnnkitError(f"pad_batch needs the same trailing shape in every sequence, got {sorted(trailing)}")
    lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long)
    return pad_sequence(seqs, batch_first=batch_first, padding_value=pad_id), lengths
