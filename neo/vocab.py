"""The typed Semantic-ID vocabulary: where every SID token lives in the token-id space.

Layout (all block starts are multiples of 32, so a row's allowed set inside a span is a fixed window
of whole int32 bitmask words at a known offset; see docs/decoding.md):

    [0, base)                      text tokens of the base tokenizer
    [span_start, span_start+2T)    open/close span tokens, two per entity type, padded to 32
    per type, per level            a block of `codebook_size` code tokens, padded to 32

Every question about a token (is it text, which type/level/code, which span tokens belong to a type)
is answered by arithmetic on ids, never by string matching.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from neo.io import write_json

ALIGN = 32
VOCAB_FILE = "neo_vocab.json"


def round_up(n: int, multiple: int = ALIGN) -> int:
    return (n + multiple - 1) // multiple * multiple


@dataclass(frozen=True)
class TypeBlock:
    """Token ids of one entity type."""

    name: str
    index: int
    open_id: int
    close_id: int
    level_starts: tuple[int, ...]
    codebook_sizes: tuple[int, ...]

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)


class SIDVocab:
    """Typed SID token layout on top of a base vocabulary of `base_size` text tokens."""

    def __init__(self, base_size: int, types: Mapping[str, Sequence[int]]):
        if base_size <= 0:
            raise ValueError(f"base_size must be positive, got {base_size}")
        if not types:
            raise ValueError("at least one entity type is needed")
        self.base_size = int(base_size)
        self.span_start = round_up(self.base_size)
        next_id = self.span_start + round_up(2 * len(types))
        blocks = []
        for index, (name, sizes) in enumerate(types.items()):
            sizes = tuple(int(s) for s in sizes)
            if not sizes or any(s <= 0 for s in sizes):
                raise ValueError(f"type {name!r}: codebook sizes must be positive, got {sizes}")
            starts = []
            for size in sizes:
                starts.append(next_id)
                next_id += round_up(size)
            open_id = self.span_start + 2 * index
            blocks.append(TypeBlock(name, index, open_id, open_id + 1, tuple(starts), sizes))
        self.blocks: dict[str, TypeBlock] = {b.name: b for b in blocks}
        self.total_size = next_id

    # ----- identity -------------------------------------------------------------------------
    @property
    def type_names(self) -> list[str]:
        return list(self.blocks)

    @property
    def max_levels(self) -> int:
        return max(b.levels for b in self.blocks.values())

    def block(self, entity_type: str) -> TypeBlock:
        try:
            return self.blocks[entity_type]
        except KeyError:
            raise KeyError(f"unknown entity type {entity_type!r}; known: {self.type_names}") from None

    def to_dict(self) -> dict:
        return {"base_size": self.base_size,
                "types": {n: list(b.codebook_sizes) for n, b in self.blocks.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping) -> SIDVocab:
        return cls(int(raw["base_size"]), {k: list(v) for k, v in raw["types"].items()})

    def save(self, directory: str | os.PathLike) -> None:
        write_json(Path(directory) / VOCAB_FILE, self.to_dict())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SIDVocab:
        path = Path(directory) / VOCAB_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no SID vocabulary here (is this a neo checkpoint?)") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SIDVocab) and self.to_dict() == other.to_dict()

    # ----- ids ------------------------------------------------------------------------------
    def open_id(self, entity_type: str) -> int:
        return self.block(entity_type).open_id

    def close_id(self, entity_type: str) -> int:
        return self.block(entity_type).close_id

    def code_id(self, entity_type: str, level: int, code: int) -> int:
        block = self.block(entity_type)
        if not 0 <= level < block.levels or not 0 <= code < block.codebook_sizes[level]:
            raise ValueError(f"type {entity_type!r}: level {level} code {code} is outside {block.codebook_sizes}")
        return block.level_starts[level] + code

    def span_ids(self, entity_type: str, codes: Sequence[int]) -> list[int]:
        """Token ids of a whole item reference: open, one code per level, close."""
        block = self.block(entity_type)
        if len(codes) != block.levels:
            raise ValueError(f"type {entity_type!r} has {block.levels} levels, got code {tuple(codes)}")
        return [block.open_id, *(self.code_id(entity_type, lv, int(c)) for lv, c in enumerate(codes)),
                block.close_id]

    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.base_size

    def describe(self, token_id: int) -> tuple:
        """('text',), ('open', type), ('close', type), ('code', type, level, code) or ('pad',)."""
        if token_id < self.base_size:
            return ("text",)
        for block in self.blocks.values():
            if token_id == block.open_id:
                return ("open", block.name)
            if token_id == block.close_id:
                return ("close", block.name)
            for level, (start, size) in enumerate(zip(block.level_starts, block.codebook_sizes, strict=True)):
                if start <= token_id < start + size:
                    return ("code", block.name, level, token_id - start)
        return ("pad",)

    # ----- strings --------------------------------------------------------------------------
    @staticmethod
    def open_token(entity_type: str) -> str:
        return f"<|sid:{entity_type}|>"

    @staticmethod
    def close_token(entity_type: str) -> str:
        return f"<|/sid:{entity_type}|>"

    @staticmethod
    def code_token(entity_type: str, level: int, code: int) -> str:
        return f"<|{entity_type}:{level}:{code}|>"

    def span_text(self, entity_type: str, codes: Sequence[int]) -> str:
        """The string form of an item reference; the tokenizer maps it to exactly `span_ids`."""
        inner = "".join(self.code_token(entity_type, lv, int(c)) for lv, c in enumerate(codes))
        return f"{self.open_token(entity_type)}{inner}{self.close_token(entity_type)}"

    def added_tokens(self) -> list[str]:
        """Strings for ids base_size .. total_size-1, in id order (unused slots are pad tokens)."""
        tokens = [f"<|neo_pad:{i}|>" for i in range(self.base_size, self.total_size)]
        for block in self.blocks.values():
            tokens[block.open_id - self.base_size] = self.open_token(block.name)
            tokens[block.close_id - self.base_size] = self.close_token(block.name)
            for level, (start, size) in enumerate(zip(block.level_starts, block.codebook_sizes, strict=True)):
                for code in range(size):
                    tokens[start + code - self.base_size] = self.code_token(block.name, level, code)
        return tokens

    # ----- tensors for the decoder -----------------------------------------------------------
    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Per-type layout as small int tensors: the decoder's state machine indexes these."""
        n, levels = len(self.blocks), self.max_levels
        level_start = torch.zeros(n, levels, dtype=torch.int64)
        codebook = torch.zeros(n, levels, dtype=torch.int64)
        for block in self.blocks.values():
            level_start[block.index, : block.levels] = torch.tensor(block.level_starts)
            codebook[block.index, : block.levels] = torch.tensor(block.codebook_sizes)
        blocks = list(self.blocks.values())
        return {
            "open_ids": torch.tensor([b.open_id for b in blocks], device=device),
            "close_ids": torch.tensor([b.close_id for b in blocks], device=device),
            "n_levels": torch.tensor([b.levels for b in blocks], device=device),
            "level_start": level_start.to(device),
            "codebook_size": codebook.to(device),
        }


def attach_to_tokenizer(tokenizer, vocab: SIDVocab) -> None:
    """Add the SID tokens to a Hugging Face tokenizer (fast or sentencepiece-based) at the planned ids.

    They are added as special tokens, so they never merge with neighbouring text, and are saved and
    reloaded with the tokenizer. Idempotent: a tokenizer that already carries them is only checked.
    """
    tokens = vocab.added_tokens()
    if len(tokenizer) == vocab.total_size:
        pass
    elif len(tokenizer) == vocab.base_size:
        tokenizer.add_tokens(tokens, special_tokens=True)
    else:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens; expected the base vocabulary ({vocab.base_size}) "
            f"or the base plus SID tokens ({vocab.total_size})"
        )
    for probe in (0, len(tokens) // 2, len(tokens) - 1):
        got = tokenizer.convert_tokens_to_ids(tokens[probe])
        if got != vocab.base_size + probe:
            raise ValueError(f"SID token {tokens[probe]!r} got id {got}, expected {vocab.base_size + probe}")
