"""Triton apply of a packed token bitmask (xgrammar / vLLM layout): `-inf` where the row's bit is 0.

One program per (row, block of tokens); each loads BLOCK/32 words and stores only the banned elements.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _apply_bitmask_kernel(
    logits_ptr,
    stride_row,
    stride_col,
    vocab,
    bitmask_ptr,
    bitmask_stride,
    index_ptr,
    HAS_INDEX: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    program_row = tl.program_id(0)
    row = tl.load(index_ptr + program_row) if HAS_INDEX else program_row
    tokens = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_vocab = tokens < vocab
    # 64-bit offsets: rows x vocabulary can pass 2^31 elements
    row = row.to(tl.int64)
    word = tl.load(bitmask_ptr + row * bitmask_stride + (tokens >> 5), mask=in_vocab, other=0)
    banned = ((word >> (tokens & 31)) & 1) == 0
    neg = tl.full([BLOCK_SIZE], float("-inf"), logits_ptr.dtype.element_ty)
    tl.store(logits_ptr + row * stride_row + tokens.to(tl.int64) * stride_col, neg, mask=in_vocab & banned)


def apply_token_bitmask_triton_(
    logits: torch.Tensor, bitmask: torch.Tensor, indices: torch.Tensor | None = None
) -> torch.Tensor:
    """Write `-inf` into `logits` [rows, vocab] wherever the row's bit is 0 (only `indices` rows if given)."""
    rows, vocab = logits.shape
    launch_rows = rows if indices is None else indices.shape[0]
    if launch_rows == 0:
        return logits
    bitmask = bitmask.to(torch.int32)
    index = indices.to(torch.int64).contiguous() if indices is not None else bitmask  # unused when no index
    grid = (launch_rows, triton.cdiv(vocab, BLOCK))
    _apply_bitmask_kernel[grid](
        logits,
        logits.stride(0),
        logits.stride(1),
        vocab,
        bitmask,
        bitmask.stride(0),
        index,
        HAS_INDEX=indices is not None,
        BLOCK_SIZE=BLOCK,
    )
    return logits
