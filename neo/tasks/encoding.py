"""Prompt token ids exactly as training produced them: one source of truth for training and inference.

Training (`neo.tasks.pipeline`), evaluation (`neo.eval`) and serving (`neo.api`) all tokenise a
prompt the same way: no special tokens from the tokenizer except a leading BOS for tokenizers whose
own encoding starts with one (Llama-style), and answers stop at EOS or the chat end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neo.tasks.prompts import ChatFormat


def leading_bos(tokenizer: Any) -> int | None:
    """The BOS id if the tokenizer's own encoding starts with it, else None."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    probe = tokenizer("a")["input_ids"]
    return bos if probe and probe[0] == bos else None


class PromptEncoder:
    """Tokenises prompts and left-pads batches for the decoder; knows where answers stop."""

    def __init__(self, tokenizer: Any, chat: ChatFormat):
        self.tokenizer = tokenizer
        self.bos_id = leading_bos(tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        stops = {tokenizer.eos_token_id}
        if chat.end:
            end_ids = tokenizer(chat.end, add_special_tokens=False)["input_ids"]
            if len(end_ids) == 1:
                stops.add(end_ids[0])
        self.stop_ids = sorted(i for i in stops if i is not None)

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        rows = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        return [[self.bos_id, *row] for row in rows] if self.bos_id is not None else [list(r) for r in rows]

    def batch(self, token_lists: Sequence[Sequence[int]], device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and attention mask: every row's last position is its last prompt token."""
        width = max(len(tokens) for tokens in token_lists)
        ids = torch.full((len(token_lists), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(token_lists), width), dtype=torch.long)
        for row, tokens in enumerate(token_lists):
            ids[row, width - len(tokens):] = torch.tensor(list(tokens), dtype=torch.long)
            mask[row, width - len(tokens):] = 1
        return ids.to(device), mask.to(device)
