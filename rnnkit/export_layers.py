"""The pieces of rnnkit's models rewritten for export: no PackedSequence, no Python loop over time, no checks
that read a tensor's values. ``rnnkit.export_tasks`` builds each task's graph from them.

Why not call the models as they are: a recurrent layer given ``lengths`` packs the batch for torch's fused
kernels (``pack_padded_sequence``), whose ``batch_sizes`` depend on the lengths' values, so torch.export cannot
trace it and torch's ONNX export of packed sequences is a known trap; pooling, the character encoder and the
CRF check their inputs with ``int(lengths.min())``, a data-dependent branch the exporter refuses; and the
reference loop and the CRF's Viterbi are Python loops, which a trace would unroll at the example's length.
So here:

- **Padding without packing.** Each layer and direction runs on the padded batch. For the forward direction
  the steps after a sequence's end cannot change its real steps; the backward direction reads each sequence
  reversed in place (:func:`rnnkit.layers.flip_padded`, before and after), so it too starts at the sequence's
  own last token. Outputs at padded steps are zeroed with a mask made from ``lengths``, as the layers do.
- **Dynamic time.** Every layer and direction runs as its cell's ``step`` in ``torch._higher_order_ops.scan``,
  which torch's exporter writes as ONNX's ``Scan``: one graph for any length, with the (T, B) mask carrying
  the state through padding as the reference loop does, so the final state is each sequence's own (what an
  encoder's bridge needs). Measured with torch 2.13 and onnxruntime 1.23 before choosing it: the fused kernels
  are no way out. Called directly, aten.lstm/aten.gru decompose into a Python loop that fixes the time axis;
  outside dynamo's view (as ``rnnkit.compat`` calls them under compilation) they become ONNX ``LSTM``/``GRU``
  ops, but followed by a Reshape that holds the traced length, so onnxruntime fails on any other; and
  ``rnn_tanh`` unrolls. The custom cells (Jordan, SCRN, Clockwork, minGRU) take the same scan: their fast
  ``sequence`` paths (a parallel scan, ticking modules) are tested equal to this reference loop. Viterbi is
  two scans (the max-plus recursion with backpointers, then the backtrack). So no fixed maximum length is
  needed and the command asks for none: a loop unrolled at a ``--max-length`` would have made each graph, and
  its export time, grow with that length, and every input be padded to it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan

from rnnkit import state as S
from rnnkit.layers import Recurrent, flip_padded


def time_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) bool, true at t < lengths[b]."""
    return torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)


def run_layer(layer: Recurrent, x: Tensor, lengths: Tensor, *, final: bool = False) -> tuple[Tensor, Any]:
    """``layer(x, lengths=lengths)`` (eval mode) without packing: the outputs, zero at padding, in the layer's
    layout; with ``final``, also the final state as the layer's NamedTuple of (L*D, B, ...) fields (each
    sequence's state at its own last step), else None."""
    xs = x.transpose(0, 1) if layer.batch_first else x  # (T, B, F)
    mask = time_mask(lengths, xs.shape[0])
    D, cells, finals = layer.num_directions, layer.bound_cells(), []
    for depth in range(layer.num_layers):
        outs = []
        for d in range(D):
            y, last = scan_cell(cells[depth * D + d], xs if d == 0 else flip_padded(xs, lengths), mask)
            outs.append(y if d == 0 else flip_padded(y, lengths))
            finals.append(last)
        y = (outs[0] if D == 1 else torch.cat(outs, dim=-1)).masked_fill(~mask.unsqueeze(-1), 0.0)
        xs = y + xs if layer.residual and depth > 0 else y
    out = xs.transpose(0, 1) if layer.batch_first else xs
    return out, S.stack(finals) if final else None


def scan_cell(cell: Any, xs: Tensor, mask: Tensor) -> tuple[Tensor, Any]:
    """The cell's reference loop (:meth:`rnnkit.cells.Cell.sequence`) as one scan over (T, B, I) inputs: the
    outputs (T, B, O) (anything at padding) and the final state, carried unchanged through padding."""
    state = cell.initial_state(xs.shape[1], device=xs.device, dtype=xs.dtype)
    kind = type(state)

    def body(carry: tuple, step: tuple) -> tuple[tuple, Tensor]:
        x_t, real = step
        y, new = cell.step(x_t, kind(*carry))
        return tuple(S.where(real, new, kind(*carry))), y.clone()  # scan's outputs may not alias its carry

    last, ys = scan(body, tuple(state), (cell.project_inputs(xs), mask))
    return ys, kind(*last)


def viterbi(crf: Any, emissions: Tensor, lengths: Tensor, pad: int = -1) -> Tensor:
    """``crf.decode(emissions, lengths=lengths).tags`` as two scans: (B, T, K) -> (B, T) tag ids, ``pad`` after
    each length. Ties go to the lowest tag index, as there (argmax's first maximum, here and in ONNX). Both scans
    run over all T steps, the first step told apart by a flag: onnxruntime's Scan fails on zero iterations, which
    a scan over steps 1..T-1 would be for one-word sentences."""
    A, start, end = crf._potentials(float("-inf"))
    e = emissions.transpose(0, 1)  # (T, B, K)
    T = e.shape[0]
    mask, steps = time_mask(lengths, T), torch.arange(T, device=e.device)

    def forward(delta: Tensor, step: tuple) -> tuple[Tensor, Tensor]:
        e_t, real, t = step
        best, back = (delta.unsqueeze(2) + A).max(1)  # over the previous tag i of delta(i) + A_ij: (B, K) each
        new = torch.where(t == 0, start, best) + e_t
        return torch.where(real.unsqueeze(1), new, delta), back

    delta, backs = scan(forward, torch.zeros_like(e[0]), (e, mask, steps))  # backs (T, B, K): best previous tags
    last = (delta + end).argmax(1)  # (B,) the tag at each sequence's own last step

    def backward(y: Tensor, step: tuple) -> tuple[Tensor, Tensor]:
        back_t, t = step  # y is y_t here (each sequence's last tag at and after its end)
        prev = back_t.gather(1, y.unsqueeze(1)).squeeze(1)
        return torch.where((t < lengths) & (t > 0), prev, y), y.clone()

    _, path = scan(backward, last, (backs.flip(0), steps.flip(0)))  # y_{T-1} .. y_0
    return path.flip(0).t().masked_fill(~mask.t(), pad)  # (B, T)


def pool(pooling: Any, h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
    """:class:`rnnkit.tasks.pooling.Pooling` of batch-first ``h`` (B, T, H) without its value checks."""
    valid = time_mask(lengths, h.shape[1]).t()  # (B, T)
    if pooling.attention is not None:
        att = pooling.attention
        scores = att.score(torch.tanh(att.proj(h))).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), h.masked_fill(~valid.unsqueeze(-1), 0.0)).squeeze(1), weights
    if pooling.kind == "mean":
        return h.masked_fill(~valid.unsqueeze(-1), 0.0).sum(1) / lengths.unsqueeze(1).to(h.dtype), None
    if pooling.kind == "max":
        return h.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1), None
    last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]
    if not pooling.bidirectional:
        return last, None
    half = h.shape[-1] // 2
    return torch.cat([last[:, :half], h[:, 0, half:]], dim=-1), None


def char_features(encoder: Any, chars: Tensor, char_lengths: Tensor, lengths: Tensor) -> Tensor:
    """:meth:`rnnkit.tasks.char_encoder.CharEncoder.per_token` from each token's characters laid out (B, T, C)
    with their lengths (B, T) (anything at padded tokens): (B, T, 2H), zero at padded tokens."""
    B, T, C = chars.shape
    flat, n = chars.reshape(B * T, C), char_lengths.reshape(B * T).clamp(1, C)  # a padded token reads one char
    out, _ = run_layer(encoder.rnn, encoder.embedding(flat), n)  # (B*T, C, 2O), batch-first
    half = out.shape[-1] // 2
    last = out[torch.arange(B * T, device=out.device), n - 1, :half]  # forward pass at the word's last char
    feature = torch.cat([last, out[:, 0, half:]], dim=-1).reshape(B, T, -1)  # backward pass at its first
    return feature.masked_fill(~time_mask(lengths, T).t().unsqueeze(-1), 0.0)


def lm_string_features(features: Any, chars: Tensor, char_lengths: Tensor, lengths: Tensor) -> Tensor:
    """:class:`rnnkit.tasks.string_features.StringFeatures` from each word's characters laid out (B, T, C) with
    their lengths (B, T) (anything at padded words): (B, T, D), zero at padded words.

    The module builds each sentence's string at its own length; here every row is laid out in T * (C + 1) + 1
    columns, a bound known from the shapes alone, by scattering each real character (and the space after each
    word but the last) to its column, and the rest to one column cut off after. The LM runs over the padded
    strings (what follows a sentence cannot change its states), reversed in place for the backward LM."""
    B, T, C = chars.shape
    L = T * (C + 1) + 1
    steps = torch.arange(T, device=chars.device)
    real = steps < lengths.unsqueeze(1)  # (B, T)
    n = char_lengths.clamp(1, C).masked_fill(~real, 0)
    spaced = real & (steps < (lengths - 1).unsqueeze(1))  # a space after all words but the last
    width = n + spaced.long()
    start = 1 + torch.cumsum(width, 1) - width  # (B, T): each word's first character's column
    total = width.sum(1, keepdim=True)  # (B, 1): the sentence's characters and spaces
    columns = start.unsqueeze(2) + torch.arange(C, device=chars.device)  # (B, T, C)
    in_word = torch.arange(C, device=chars.device) < n.unsqueeze(2)
    out = []
    for d in features.directions:
        lm = features.lms[f"{d}_lm"]
        space, boundary = getattr(features, f"marks_{d}").unbind(0)
        ids = getattr(features, f"map_{d}")[chars]  # (B, T, C), the LM's ids
        flip = d != "forward"
        at_char = (total.unsqueeze(2) + 1 - columns) if flip else columns
        at_space = (total + 1 - (start + n)) if flip else start + n
        strings = torch.zeros(B, L + 1, dtype=ids.dtype, device=ids.device)  # column L: what is cut off
        strings = strings.scatter(1, torch.where(in_word, at_char, L).reshape(B, -1), ids.reshape(B, -1))
        strings = strings.scatter(1, torch.where(spaced, at_space, L), space.expand(B, T))
        strings = torch.cat([boundary.expand(B, 1), strings[:, 1:L]], dim=1)  # (B, L)
        h = lm.embedding(strings.t())  # (L, B, E)
        for layer in lm.layers:
            h, _ = run_layer(layer, h, total.squeeze(1) + 1)
        h = h.transpose(0, 1)  # (B, L, H)
        at = (total + 1 - start) if flip else start + n - 1  # the word's first (last) character
        at = at.clamp(0, L - 1).unsqueeze(2).expand(B, T, h.shape[-1])
        out.append(torch.gather(h, 1, at))
    return torch.cat(out, dim=-1).masked_fill(~real.unsqueeze(-1), 0.0)
