"""Per-row state: exact masks on a ten-token-ish vocabulary, and incremental advance == re-derivation."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neo.kernels import DONE, FREE, SPAN

from neo.decoding.state import DecodeState, constrain, pick_tokens, row_type_masks
from neo.decoding.trie import ItemTrie
from neo.sids.table import SIDTable
from neo.vocab import SIDVocab

# text 0..4; pad 5..31; open/close a = 32/33, b = 34/35; a: level 0 at 64 (3 codes), level 1 at 96 (2 codes);
# b: one level at 128 (2 codes)
TINY = SIDVocab(5, {"a": [3, 2], "b": [2]})
TINY_TRIE = ItemTrie.build(
    TINY,
    {
        "a": SIDTable("a", ["a01", "a20", "a21"], np.array([[0, 1], [2, 0], [2, 1]]), [3, 2]),
        "b": SIDTable("b", ["b1"], np.array([[1]]), [2]),
    },
)


def allowed_after(history: list[int], types: list[str], items_left: int | None = None) -> list[int]:
    ids = torch.tensor([history])
    left = None if items_left is None else torch.tensor([items_left])
    state = DecodeState.from_suffix(ids, TINY_TRIE, row_type_masks(TINY_TRIE, types, 1), left)
    logits = state.mask_(torch.zeros(1, TINY.total_size), TINY_TRIE)
    return torch.nonzero(logits[0] == 0).squeeze(1).tolist()


def test_exact_allowed_positions() -> None:
    assert allowed_after([1, 2], ["a", "b"]) == [0, 1, 2, 3, 4, 32, 34]
    assert allowed_after([1, 2], ["b"]) == [0, 1, 2, 3, 4, 34]
    assert allowed_after([1, 2], ["a", "b"], items_left=0) == [0, 1, 2, 3, 4]
    assert allowed_after([1, 32], ["b"]) == [64, 66]  # inside a span the type list no longer matters
    assert allowed_after([32, 66], ["a"]) == [96, 97]
    assert allowed_after([32, 64], ["a"]) == [97]
    assert allowed_after([32, 64, 97], ["a"]) == [33]  # complete: only the close token
    assert allowed_after([32, 64, 97, 33], ["a"]) == [0, 1, 2, 3, 4, 32]
    assert allowed_after([34, 129], ["a"]) == [35]
    assert allowed_after([1, 65], ["a"]) == [0, 1, 2, 3, 4, 32]  # code 1 of level 0 is no item: free text


def test_advance_and_reorder() -> None:
    state = DecodeState.free(TINY_TRIE, row_type_masks(TINY_TRIE, ["a"], 2), torch.tensor([1, 1]))
    state = state.advance(torch.tensor([32, 3]), TINY_TRIE)
    assert state.mode.tolist() == [SPAN, FREE] and state.items_left.tolist() == [0, 1]
    state = state.advance(torch.tensor([66, 32]), TINY_TRIE).advance(torch.tensor([97, 64]), TINY_TRIE)
    assert state.mode.tolist() == [DONE, SPAN] and state.level.tolist() == [2, 1]
    assert TINY_TRIE.resolve(int(state.node[0]))[1] == "a21"
    swapped = state.reorder(torch.tensor([1, 0, 0]))
    assert swapped.mode.tolist() == [SPAN, DONE, DONE]
    assert state.advance(torch.tensor([33, 97]), TINY_TRIE).mode.tolist() == [FREE, DONE]


def test_window_pick_equals_fully_masked_argmax() -> None:
    logits = torch.randn(4, TINY.total_size, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1, 2, 3], [1, 2, 32], [2, 32, 66], [32, 64, 97]])
    state = DecodeState.from_suffix(ids, TINY_TRIE, row_type_masks(TINY_TRIE, ["a", "b"], 4))
    expected = state.mask_(logits.clone(), TINY_TRIE).argmax(1)
    window_logits = logits.clone()
    picked = pick_tokens(window_logits, constrain(window_logits, state, TINY_TRIE), state, TINY_TRIE)
    assert picked.tolist() == expected.tolist()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 14))
def test_incremental_state_equals_rederived_state(seed: int, steps: int) -> None:
    """Walk random constrained paths; at every step `advance` agrees with `from_suffix` on the history."""
    generator = torch.Generator().manual_seed(seed)
    rows = 6
    types = row_type_masks(TINY_TRIE, ["a", "b"], rows)
    history = torch.randint(0, TINY.base_size, (rows, 1), generator=generator)
    state = DecodeState.from_suffix(history, TINY_TRIE, types)
    for _ in range(steps):
        logits = torch.randn(rows, TINY.total_size, generator=generator) * 4
        logits[:, 32:36] += 3  # open spans often
        tokens = state.mask_(logits, TINY_TRIE).argmax(1)
        history = torch.cat([history, tokens.unsqueeze(1)], 1)
        state = state.advance(tokens, TINY_TRIE)
        derived = DecodeState.from_suffix(history, TINY_TRIE, types)
        assert torch.equal(state.mode, derived.mode)
        in_span = state.mode != FREE
        for field in ("etype", "level", "node"):
            assert torch.equal(getattr(state, field)[in_span], getattr(derived, field)[in_span])
