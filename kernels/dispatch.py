"""Pick a kernel backend by device: Triton on CUDA, the torch reference elsewhere (Triton imported lazily)."""

from __future__ import annotations

import os

import torch

from .bitmask_torch import apply_token_bitmask_torch_
from .sid_mask_torch import sid_mask_torch_

BACKENDS = ("torch", "triton")


def _backend(tensor: torch.Tensor, backend: str | None) -> str:
    """`backend` if given; else NEO_KERNEL_BACKEND; else Triton for CUDA tensors and torch otherwise."""
    chosen = backend or os.environ.get("NEO_KERNEL_BACKEND") or ("triton" if tensor.is_cuda else "torch")
    if chosen not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {BACKENDS}, got {chosen!r}")
    return chosen


def sid_mask_(
    logits: torch.Tensor,
    mode: torch.Tensor,
    window_start: torch.Tensor,
    bit_row: torch.Tensor,
    openable: torch.Tensor,
    bits: torch.Tensor,
    base_size: int,
    span_start: int,
    n_types: int,
    backend: str | None = None,
) -> torch.Tensor:
    """Write `-inf` into `logits` [rows, vocab] (any strides) wherever a row's state forbids the token.

    Per row: `mode` (see `neo.kernels.modes`), `window_start` (token id of code 0 of the current level
    inside a span; the close token id when the span is complete), `bit_row` (row of `bits`, the
    [nodes, words] int32 child bitmaps, that holds the current node), `openable` (bit t set: the open
    token of type t is allowed in free text). Text is `[0, base_size)`; type t opens with
    `span_start + 2t`. Returns `logits`.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [rows, vocab], got shape {tuple(logits.shape)}")
    if logits.shape[1] < span_start + 2 * n_types:
        raise ValueError(
            f"logits have {logits.shape[1]} columns, fewer than the SID vocabulary needs "
            f"({span_start + 2 * n_types}+)"
        )
    if _backend(logits, backend) == "triton":
        from .sid_mask_triton import sid_mask_triton_

        return sid_mask_triton_(
            logits, mode, window_start, bit_row, openable, bits, base_size, span_start, n_types
        )
    return sid_mask_torch_(
        logits, mode, window_start, bit_row, openable, bits, base_size, span_start, n_types
    )


def apply_token_bitmask_(
    logits: torch.Tensor,
    bitmask: torch.Tensor,
    indices: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Write `-inf` where a packed bitmask [rows, ceil(vocab/32)] int32 has a 0 bit (xgrammar/vLLM layout)."""
    if bitmask.shape[-1] * 32 < logits.shape[-1]:
        raise ValueError(f"bitmask has {bitmask.shape[-1]} words, too few for {logits.shape[-1]} tokens")
    if _backend(logits, backend) == "triton":
        from .bitmask_triton import apply_token_bitmask_triton_

        return apply_token_bitmask_triton_(logits, bitmask, indices)
    return apply_token_bitmask_torch_(logits, bitmask, indices)
