"""Reference (and CPU) implementation of the fused state -> `-inf` mask; the oracle for the Triton kernel.

Reads only per-row state and the trie's child bitmaps, and writes `-inf` into `logits` where a token is not
allowed. Whole-row fills use a [rows, 1] mask, so no (rows x vocab) mask is ever built.
"""

from __future__ import annotations

import torch

from .modes import DONE, FREE, SPAN


def sid_mask_torch_(
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
    vocab = logits.shape[1]
    device = logits.device
    free = (mode == FREE).unsqueeze(1)
    in_span = (mode == SPAN).unsqueeze(1)
    done = (mode == DONE).unsqueeze(1)

    # Save what survives whole-row fills: the row's candidate window, its open tokens, its close token.
    width = bits.shape[1] * 32
    start = window_start.clamp(max=vocab - 1).unsqueeze(1)
    window = window_start.unsqueeze(1) + torch.arange(width, device=device)
    outside = window >= vocab
    window = torch.where(outside, start, window)
    shifts = torch.arange(32, device=device)
    window_allowed = ((bits[bit_row].long().unsqueeze(2) >> shifts) & 1).view(-1, width).bool() & ~outside
    saved_window = logits.gather(1, window)
    type_ids = torch.arange(n_types, device=device)
    opens = span_start + 2 * type_ids
    open_allowed = ((openable.unsqueeze(1) >> type_ids) & 1).bool()
    saved_opens = logits[:, opens]
    saved_close = logits.gather(1, start)

    logits.masked_fill_(in_span | done, float("-inf"))
    logits[:, base_size:].masked_fill_(free, float("-inf"))
    logits[:, opens] = torch.where(free & open_allowed, saved_opens, logits[:, opens])
    restored = torch.where(in_span & window_allowed, saved_window, logits.gather(1, window))
    # slots past the vocabulary were redirected to the window's first slot: give them its value so that
    # duplicate scatter targets agree
    restored = torch.where(outside, restored[:, :1], restored)
    logits.scatter_(1, window, restored)
    logits.scatter_(1, start, torch.where(done, saved_close, logits.gather(1, start)))
    return logits
