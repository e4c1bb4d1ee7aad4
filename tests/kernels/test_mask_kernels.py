"""The mask kernels against a brute-force oracle, and the Triton kernels (interpreted on CPU) against torch."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel module is imported: run kernels on CPU

import numpy as np
import pytest
import torch
from neo.kernels import DONE, FREE, SPAN, UNCONSTRAINED, apply_token_bitmask_, sid_mask_

from neo.decoding.state import DecodeState, row_type_masks
from neo.decoding.synthetic import random_sid_tables
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab

VOCAB = SIDVocab(37, {"a": [5, 3], "b": [40, 2, 7]})  # odd sizes, a 2-word level, types of different depth
TABLES = random_sid_tables(VOCAB, {"a": 12, "b": 60}, seed=3)
TRIE = ItemTrie.build(VOCAB, TABLES)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def random_rows(rng: np.random.Generator, rows: int) -> tuple[torch.Tensor, list[list[int]]]:
    """Token histories covering every mode, and the type list each row may open."""
    histories, allowed = [], []
    for _ in range(rows):
        entity_type = str(rng.choice(["a", "b"]))
        table = TABLES[entity_type]
        codes = table.codes[rng.integers(len(table))].tolist()
        level = int(rng.integers(0, len(codes) + 2))  # level == levels: complete; levels+1: closed
        span = VOCAB.span_ids(entity_type, codes)[: level + 1]
        histories.append([int(rng.integers(VOCAB.base_size))] * (6 - len(span)) + span)
        allowed.append(sorted(set(rng.choice(["a", "b"], size=int(rng.integers(0, 3))).tolist())))
    return torch.tensor(histories), allowed


def oracle_allowed(
    history: list[int], allowed_types: list[str], vocab_size: int, unconstrained: bool
) -> set[int]:
    """Allowed next tokens computed from the SID tables directly, independent of the trie."""
    if unconstrained:
        return set(range(vocab_size))
    for name, block in VOCAB.blocks.items():
        for depth in range(block.levels + 1):
            if len(history) < depth + 1 or history[-depth - 1] != block.open_id:
                continue
            codes = [VOCAB.describe(t) for t in history[len(history) - depth :]]
            if not all(c[0] == "code" and c[1] == name and c[2] == i for i, c in enumerate(codes)):
                continue
            prefix = [c[3] for c in codes]
            if depth == block.levels:
                return {block.close_id}
            matching = TABLES[name].codes[(TABLES[name].codes[:, :depth] == prefix).all(1)]
            return {VOCAB.code_id(name, depth, int(c)) for c in matching[:, depth]}
    return set(range(VOCAB.base_size)) | {VOCAB.open_id(t) for t in allowed_types}


def states(seed: int, rows: int = 24) -> tuple[DecodeState, torch.Tensor, list[list[int]], torch.Tensor]:
    rng = np.random.default_rng(seed)
    histories, allowed = random_rows(rng, rows)
    unconstrained = torch.from_numpy(rng.random(rows) < 0.15)
    state = DecodeState.from_suffix(histories, TRIE, row_type_masks(TRIE, allowed, rows)).unconstrain(
        unconstrained
    )
    return state, histories, allowed, unconstrained


def test_states_cover_every_mode() -> None:
    state, *_ = states(0)
    assert {FREE, SPAN, DONE, UNCONSTRAINED} <= set(state.mode.tolist())


@pytest.mark.parametrize("extra_columns", [0, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_torch_mask_matches_oracle(seed: int, extra_columns: int) -> None:
    state, histories, allowed, unconstrained = states(seed)
    vocab_size = VOCAB.total_size + extra_columns
    logits = torch.randn(len(histories), vocab_size)
    masked = state.mask_(logits.clone(), TRIE, backend="torch")
    for row, history in enumerate(histories.tolist()):
        expected = oracle_allowed(history, allowed[row], vocab_size, bool(unconstrained[row]))
        assert set(torch.nonzero(masked[row] > float("-inf")).squeeze(1).tolist()) == expected
        kept = sorted(expected)
        assert torch.equal(masked[row, kept], logits[row, kept])


def strided(rows: int, vocab_size: int, dtype: torch.dtype, layout: str) -> torch.Tensor:
    """Logits with the given memory layout: contiguous, a row-strided slice, or column-strided (transposed)."""
    if layout == "contiguous":
        return torch.randn(rows, vocab_size).to(dtype)
    if layout == "row_slice":
        return torch.randn(rows, 3, vocab_size + 11).to(dtype)[:, 1, 4 : 4 + vocab_size]
    return torch.randn(vocab_size, rows).to(dtype).t()


@pytest.mark.parametrize("layout", ["contiguous", "row_slice", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_sid_mask_matches_torch(dtype: torch.dtype, layout: str) -> None:
    state, histories, *_ = states(2)
    vocab_size = VOCAB.total_size + 3
    logits = strided(len(histories), vocab_size, dtype, layout)
    reference = state.mask_(logits.clone(), TRIE, backend="torch")
    state.mask_(logits, TRIE, backend="triton")
    assert torch.equal(logits, reference)


@pytest.mark.parametrize("indices", [None, [4, 0, 7]])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_bitmask_apply_matches_torch(
    dtype: torch.dtype, layout: str, indices: list[int] | None
) -> None:
    vocab_size, rows = 1000 + 37, 9
    generator = torch.Generator().manual_seed(0)
    bitmask = torch.randint(
        -(2**31), 2**31 - 1, (rows, -(-vocab_size // 32)), dtype=torch.int32, generator=generator
    )
    index = None if indices is None else torch.tensor(indices)
    logits = strided(rows, vocab_size, dtype, layout)
    reference = apply_token_bitmask_(logits.clone(), bitmask, index, backend="torch")
    apply_token_bitmask_(logits, bitmask, index, backend="triton")
    assert torch.equal(logits, reference)


def test_bitmask_layout_is_lsb_first() -> None:
    """Word w bit b governs token 32w + b (the xgrammar / vLLM convention)."""
    bitmask = torch.tensor([[0b101, -(2**31)], [-1, 0]], dtype=torch.int32)  # bit 31 of word 1: token 63
    for backend in ("torch", "triton"):
        logits = apply_token_bitmask_(torch.zeros(2, 64), bitmask, backend=backend)
        assert torch.nonzero(logits[0] == 0).squeeze(1).tolist() == [0, 2, 63]
        assert torch.nonzero(logits[1] == 0).squeeze(1).tolist() == list(range(32))


@pytest.mark.parametrize("seed", [0, 3])
def test_packed_bitmask_equals_fused_mask(seed: int) -> None:
    state, histories, *_ = states(seed)
    vocab_size = VOCAB.total_size + 9
    logits = torch.randn(len(histories), vocab_size)
    fused = state.mask_(logits.clone(), TRIE, backend="torch")
    packed = apply_token_bitmask_(logits.clone(), state.bitmask(TRIE, vocab_size), backend="torch")
    assert torch.equal(fused, packed)


def test_fused_mask_rejects_a_vocabulary_without_sid_tokens() -> None:
    state, histories, *_ = states(0)
    with pytest.raises(ValueError, match="fewer than the SID vocabulary"):
        sid_mask_(
            torch.zeros(len(histories), VOCAB.base_size),
            *state.kernel_args(TRIE),
            TRIE.alive_bits,
            VOCAB.base_size,
            VOCAB.span_start,
            2,
        )
