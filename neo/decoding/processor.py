"""`SIDConstraintLogitsProcessor`: neo's constraint as a Hugging Face `LogitsProcessor` for `model.generate`.

HF reorders beams without telling processors, so this processor keeps no state between calls: each call
re-derives every row's state from the last `max_levels + 1` tokens of `input_ids` (vectorised, a few
gathers per level) and applies the fused mask kernel. Works with greedy search, sampling and beam search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from neo.decoding.state import DecodeState, row_type_masks
from neo.decoding.trie import ItemTrie


class SIDConstraintLogitsProcessor(LogitsProcessor):
    """Allow only catalog items, of `allowed_types`, in spans; SID tokens never appear outside a span.

    `allowed_types`: one list for every row, or one per prompt (rows are prompts x beams). `max_items`
    caps the spans opened after `prompt_length` tokens (both or neither must be given).
    """

    def __init__(
        self,
        trie: ItemTrie,
        allowed_types: Sequence[str] | Sequence[Sequence[str]],
        max_items: int | None = None,
        prompt_length: int | None = None,
        backend: str | None = None,
    ):
        if (max_items is None) != (prompt_length is None):
            raise ValueError(
                "max_items needs prompt_length (the input length before generation), and vice versa"
            )
        if max_items is not None and max_items < 0:
            raise ValueError(f"max_items must be non-negative, got {max_items}")
        if not allowed_types or isinstance(allowed_types[0], str):
            row_type_masks(trie, allowed_types, 1)  # unknown type names fail here, not mid-generation
        else:
            for types in allowed_types:
                row_type_masks(trie, types, 1)
        self.trie = trie
        self.allowed_types = allowed_types
        self.max_items = max_items
        self.prompt_length = prompt_length
        self.backend = backend

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = input_ids.shape[0]
        open_types = row_type_masks(self.trie, self.allowed_types, rows)
        items_left = None
        if self.max_items is not None:
            opened = torch.isin(input_ids[:, self.prompt_length :], self.trie.open_ids).sum(1)
            items_left = self.max_items - opened
        state = DecodeState.from_suffix(input_ids, self.trie, open_types, items_left)
        return state.mask_(scores, self.trie, backend=self.backend)
