"""Packed token bitmasks in the xgrammar / vLLM layout (int32 words, 32 tokens per word, bit = 1 allowed,
LSB first): building one from the decoder state, and the reference apply."""

from __future__ import annotations

import torch

from .modes import DONE, FREE, SPAN, UNCONSTRAINED


def apply_token_bitmask_torch_(
    logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None
) -> torch.Tensor:
    """Write `-inf` into `logits` [rows, vocab] wherever the row's bit is 0 (only `indices` rows if given)."""
    vocab = logits.shape[1]
    shifts = torch.arange(32, device=logits.device)
    rows = bitmask if indices is None else bitmask[indices]
    allowed = ((rows.long().unsqueeze(2) >> shifts) & 1).view(rows.shape[0], -1)[:, :vocab].bool()
    if indices is None:
        logits.masked_fill_(~allowed, float("-inf"))
    else:
        logits[indices] = logits[indices].masked_fill(~allowed, float("-inf"))
    return logits


def sid_bitmask_torch(
    mode: torch.Tensor,
    window_start: torch.Tensor,
    bit_row: torch.Tensor,
    openable: torch.Tensor,
    bits: torch.Tensor,
    base_size: int,
    span_start: int,
    n_types: int,
    vocab: int,
) -> torch.Tensor:
    """The packed allowed-token bitmask [rows, ceil(vocab / 32)] of each row's state.

    Inside a span the row's words are a straight copy of its node's child bitmap, because every code
    block starts at a multiple of 32: no per-token work at all.
    """
    words = bits.shape[1]
    n_words = -(-vocab // 32)
    device = mode.device
    word_ids = torch.arange(n_words + words, device=device)
    # text words: full below base_size, a partial word at the boundary
    text = ((1 << (base_size - 32 * word_ids).clamp(0, 32)) - 1).unsqueeze(0)
    packed = torch.where((mode == FREE).unsqueeze(1), text, 0)
    packed = torch.where((mode == UNCONSTRAINED).unsqueeze(1), (1 << 32) - 1, packed)
    for type_index in range(n_types):
        token = span_start + 2 * type_index
        may_open = (mode == FREE) & (((openable >> type_index) & 1) == 1)
        packed[:, token // 32] |= may_open.long() << (token % 32)
    close = window_start
    packed.scatter_add_(1, (close // 32).unsqueeze(1), ((mode == DONE).long() << (close % 32)).unsqueeze(1))
    span_words = window_start.div(32, rounding_mode="floor").unsqueeze(1) + torch.arange(words, device=device)
    node_words = bits[bit_row].long() & 0xFFFFFFFF
    packed.scatter_add_(1, span_words, torch.where((mode == SPAN).unsqueeze(1), node_words, 0))
    tail = vocab - 32 * (n_words - 1)  # clear bits past the vocabulary in the last word
    packed[:, n_words - 1] &= (1 << tail) - 1
    return packed[:, :n_words].to(torch.int32)
