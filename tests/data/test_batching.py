"""StreamBatches (the PTB layout by hand, shards), bucket_batches and pad_batch."""

import pytest
import torch

from rnnkit.data import StreamBatches, bucket_batches, pad_batch
from rnnkit.errors import RnnkitError


def test_ptb_layout_by_hand():
    batches = StreamBatches(torch.arange(26), batch_size=4, bptt=3)
    # 26 tokens -> 24 (a multiple of 4) -> 4 columns of 6: column b holds 6b .. 6b+5
    assert batches.data.tolist() == [[t + 6 * b for b in range(4)] for t in range(6)]
    assert batches.batch_size == 4 and len(batches) == 2  # rows [0, 3) and [3, 5)
    x, y = batches[0]
    assert x.tolist() == [[0, 6, 12, 18], [1, 7, 13, 19], [2, 8, 14, 20]]
    assert y.tolist() == [[1, 7, 13, 19], [2, 8, 14, 20], [3, 9, 15, 21]]
    x, y = batches[-1]
    assert x.tolist() == [[3, 9, 15, 21], [4, 10, 16, 22]]
    assert y.tolist() == [[4, 10, 16, 22], [5, 11, 17, 23]]
    assert x.dtype == y.dtype == torch.long
    assert [tuple(x.shape) for x, _ in batches] == [(3, 4), (2, 4)]
    with pytest.raises(IndexError):
        batches[2]


def test_every_target_is_the_next_token():
    ids = torch.randint(0, 50, (1003,), dtype=torch.int32)
    batches = StreamBatches(ids, batch_size=5, bptt=7)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    columns = ids[:1000].long().view(5, 200)
    assert torch.equal(xs, columns[:, :-1].t()) and torch.equal(ys, columns[:, 1:].t())


def test_exact_minimum_corpus():
    batches = StreamBatches(torch.arange(8), batch_size=4, bptt=35)
    assert len(batches) == 1
    x, y = batches[0]
    assert x.tolist() == [[0, 2, 4, 6]] and y.tolist() == [[1, 3, 5, 7]]


def test_shards_concatenate_to_the_full_batch():
    full = StreamBatches(torch.arange(100), batch_size=6, bptt=4)
    shards = [full.shard(rank, 3) for rank in range(3)]
    assert all(len(s) == len(full) and s.batch_size == 2 for s in shards)
    for i in range(len(full)):
        x, y = full[i]
        assert torch.equal(torch.cat([s[i][0] for s in shards], dim=1), x)
        assert torch.equal(torch.cat([s[i][1] for s in shards], dim=1), y)
    assert shards[1][0][0].is_contiguous()
    assert torch.equal(full.shard(0, 1).data, full.data)


def test_stream_errors():
    with pytest.raises(RnnkitError, match=r"^7 tokens are too few for batch_size 4: one chunk needs at least 8"):
        StreamBatches(torch.arange(7), batch_size=4, bptt=3)
    with pytest.raises(RnnkitError, match=r"batch_size must be at least 1, got 0"):
        StreamBatches(torch.arange(10), batch_size=0, bptt=3)
    with pytest.raises(RnnkitError, match=r"bptt must be at least 1, got 0"):
        StreamBatches(torch.arange(10), batch_size=2, bptt=0)
    with pytest.raises(RnnkitError, match=r"ids must be a 1-D tensor of integer token ids, got shape \(2, 5\)"):
        StreamBatches(torch.zeros(2, 5, dtype=torch.long), batch_size=2, bptt=3)
    with pytest.raises(RnnkitError, match=r"dtype torch.float32"):
        StreamBatches(torch.zeros(10), batch_size=2, bptt=3)
    batches = StreamBatches(torch.arange(30), batch_size=6, bptt=3)
    with pytest.raises(RnnkitError, match=r"batch_size 6 does not divide by the world size 4: use a batch size that"):
        batches.shard(0, 4)
    with pytest.raises(RnnkitError, match=r"rank 2 of world size 2 is invalid"):
        batches.shard(2, 2)


def _padding(lengths, batches):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_bucket_batches_cover_every_index_deterministically():
    lengths = torch.randint(1, 60, (1037,), generator=torch.Generator().manual_seed(1)).tolist()
    batches = bucket_batches(lengths, 16, shuffle=True, seed=3, epoch=0, window=4)
    assert sorted(i for b in batches for i in b) == list(range(1037))
    assert sum(len(b) < 16 for b in batches) == 1 and all(len(b) <= 16 for b in batches)
    assert all(lengths[b[0]] == max(lengths[i] for i in b) for b in batches)
    assert batches == bucket_batches(lengths, 16, shuffle=True, seed=3, epoch=0, window=4)
    assert batches != bucket_batches(lengths, 16, shuffle=True, seed=3, epoch=1, window=4)
    assert batches != bucket_batches(lengths, 16, shuffle=True, seed=4, epoch=0, window=4)
    # buckets pad far less than random batches of the same size
    shuffled = torch.randperm(1037, generator=torch.Generator().manual_seed(2)).tolist()
    random_batches = [shuffled[k : k + 16] for k in range(0, 1037, 16)]
    assert _padding(lengths, batches) < 0.5 * _padding(lengths, random_batches)


def test_bucket_batches_without_shuffle_sort_by_length():
    lengths = [3, 9, 1, 9, 4, 2, 7]
    assert bucket_batches(lengths, 3, shuffle=False) == [[1, 3, 6], [4, 0, 5], [2]]
    assert bucket_batches([], 3, shuffle=True, seed=0, epoch=0) == []


def test_bucket_batches_errors():
    with pytest.raises(RnnkitError, match=r"batch_size and window must be at least 1, got 0 and 50"):
        bucket_batches([1, 2], 0, shuffle=True, seed=0, epoch=0)
    with pytest.raises(RnnkitError, match=r"seed and epoch must be non-negative, got -1 and 0"):
        bucket_batches([1, 2], 2, shuffle=True, seed=-1, epoch=0)


def test_pad_batch_time_major_and_batch_first():
    seqs = [torch.tensor([5, 6, 7]), torch.tensor([8]), torch.tensor([], dtype=torch.long)]
    padded, lengths = pad_batch(seqs, pad_id=0)
    assert padded.tolist() == [[5, 8, 0], [6, 0, 0], [7, 0, 0]]
    assert lengths.tolist() == [3, 1, 0] and lengths.dtype == torch.long
    padded, _ = pad_batch(seqs, pad_id=9, batch_first=True)
    assert padded.tolist() == [[5, 6, 7], [8, 9, 9], [9, 9, 9]]
    features, lengths = pad_batch([torch.ones(2, 3), torch.ones(4, 3)], pad_id=0)
    assert features.shape == (4, 2, 3) and features[2:, 0].abs().sum() == 0 and lengths.tolist() == [2, 4]
    assert pad_batch([[1, 2], [3]], pad_id=0)[0].tolist() == [[1, 3], [2, 0]]


def test_pad_batch_errors():
    with pytest.raises(RnnkitError, match=r"pad_batch needs at least one sequence"):
        pad_batch([], pad_id=0)
    with pytest.raises(RnnkitError, match=r"same trailing shape in every sequence, got \[\(2,\), \(3,\)\]"):
        pad_batch([torch.ones(2, 3), torch.ones(2, 2)], pad_id=0)
    with pytest.raises(RnnkitError, match=r"got a 0-d tensor"):
        pad_batch([torch.tensor(1)], pad_id=0)


def test_variable_stream_covers_every_token_once_in_order():
    from rnnkit.data.batching import VariableStream

    base = StreamBatches(torch.arange(1000), batch_size=4, bptt=12)
    stream = VariableStream(base, seed=3)
    for epoch in range(3):
        chunks = stream.for_epoch(epoch)
        assert torch.equal(torch.cat([c.x for c in chunks]), base.data[:-1])
        assert torch.equal(torch.cat([c.y for c in chunks]), base.data[1:])
        lengths = [c.x.shape[0] for c in chunks]
        assert all(5 <= n <= 24 for n in lengths[:-1]) and lengths == stream.lengths(epoch)
        assert [c.lr_scale for c in chunks] == [n / 12 for n in lengths]
    assert stream.lengths(0) != stream.lengths(1)  # a new cut every epoch
    assert stream.lengths(1) == VariableStream(base, seed=3).lengths(1)  # from (seed, epoch) alone
    halves = [stream.shard(r, 2).for_epoch(0) for r in range(2)]
    for a, b, whole in zip(*halves, stream.for_epoch(0), strict=True):
        assert torch.equal(torch.cat([a.x, b.x], dim=1), whole.x) and a.lr_scale == whole.lr_scale
