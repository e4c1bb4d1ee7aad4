"""Triton version of the fused state -> `-inf` mask: one program per (row, block of tokens).

Never reads the logits: each program derives the allowed set of its tokens from the row's state (mode,
window start, bitmap row, openable types) and stores `-inf` where a token is not allowed, so the cost is
one masked store per element and a few scalar loads per program. Imported only when a CUDA tensor (or a
test under TRITON_INTERPRET=1) needs it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .modes import DONE, FREE, SPAN, UNCONSTRAINED

BLOCK = 1024


@triton.jit
def _sid_mask_kernel(
    logits_ptr,
    stride_row,
    stride_col,
    vocab,
    mode_ptr,
    start_ptr,
    bit_row_ptr,
    openable_ptr,
    bits_ptr,
    words,
    base_size,
    span_start,
    n_types,
    FREE_MODE: tl.constexpr,
    SPAN_MODE: tl.constexpr,
    DONE_MODE: tl.constexpr,
    UNCONSTRAINED_MODE: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0)
    tokens = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_vocab = tokens < vocab
    mode = tl.load(mode_ptr + row)
    start = tl.load(start_ptr + row)
    bit_row = tl.load(bit_row_ptr + row)
    openable = tl.load(openable_ptr + row)

    rel_open = tokens - span_start
    is_open = (rel_open >= 0) & (rel_open < 2 * n_types) & ((rel_open & 1) == 0)
    open_ok = ((openable >> (tl.maximum(rel_open, 0) >> 1)) & 1) == 1
    free_allowed = (tokens < base_size) | (is_open & open_ok)

    rel = tokens - start
    in_window = (rel >= 0) & (rel < words * 32)
    # `bit_row` is a valid row for every mode (0 outside spans), so only the window bounds guard the load
    word = tl.load(bits_ptr + bit_row * words + (rel >> 5), mask=in_window, other=0)
    span_allowed = in_window & (((word >> (rel & 31)) & 1) == 1)

    # one int32 flag per token (the interpreter rejects masks built from scalar-vs-block selects)
    allowed = tl.where(mode == FREE_MODE, free_allowed.to(tl.int32), 0)
    allowed = tl.where(mode == SPAN_MODE, span_allowed.to(tl.int32), allowed)
    allowed = tl.where(mode == DONE_MODE, (tokens == start).to(tl.int32), allowed)
    allowed = tl.where(mode == UNCONSTRAINED_MODE, 1, allowed)
    neg = tl.full([BLOCK_SIZE], float("-inf"), logits_ptr.dtype.element_ty)
    # 64-bit offsets: rows x vocabulary passes 2^31 elements at e.g. 15k beam rows x 150k tokens
    offsets = row.to(tl.int64) * stride_row + tokens.to(tl.int64) * stride_col
    tl.store(logits_ptr + offsets, neg, mask=in_vocab & (allowed == 0))


def sid_mask_triton_(
    logits: torch.Tensor,
    mode: torch.Tensor,
    window_start: torch.Tensor,
    bit_row: torch.Tensor,
    openable: torch.Tensor,
    bits: torch.Tensor,
    base_size: int,
    span_start: int,
    n_types: int,
) -> torch.Tensor:
    """Mask `logits` [rows, vocab] in place from each row's state (see `neo.kernels.sid_mask_`)."""
    rows, vocab = logits.shape
    if rows == 0:
        return logits
    grid = (rows, triton.cdiv(vocab, BLOCK))
    _sid_mask_kernel[grid](
        logits,
        logits.stride(0),
        logits.stride(1),
        vocab,
        mode.to(torch.int32).contiguous(),
        window_start.to(torch.int64).contiguous(),
        bit_row.to(torch.int64).contiguous(),
        openable.to(torch.int32).contiguous(),
        bits.contiguous(),
        bits.shape[1],
        base_size,
        span_start,
        n_types,
        FREE_MODE=FREE,
        SPAN_MODE=SPAN,
        DONE_MODE=DONE,
        UNCONSTRAINED_MODE=UNCONSTRAINED,
        BLOCK_SIZE=BLOCK,
    )
    return logits
