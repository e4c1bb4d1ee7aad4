"""The device trie: exact layout on a hand-made catalog, and reachability invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neo.decoding.filters import ItemFilters, request_bits, with_availability
from neo.decoding.synthetic import random_sid_tables
from neo.decoding.trie import ItemTrie
from neo.sids.table import SIDTable
from neo.vocab import SIDVocab


def reachable(trie: ItemTrie, entity_type: str, bits: torch.Tensor | None = None) -> set[str]:
    """Items reachable through `bits` by walking every allowed code (depth-first, host side)."""
    block = trie.vocab.block(entity_type)
    found, frontier = set(), [(int(trie.type_root[block.index]), 0)]
    while frontier:
        node, level = frontier.pop()
        for code in range(block.codebook_sizes[level]):
            if trie.has_child(torch.tensor(node), torch.tensor(code), bits):
                child = int(trie.child(torch.tensor(node), torch.tensor(code)))
                if level + 1 == block.levels:
                    found.add(trie.resolve(child)[1])
                else:
                    frontier.append((child, level + 1))
    return found


def test_hand_made_trie_layout() -> None:
    vocab = SIDVocab(10, {"a": [4, 40]})
    table = SIDTable("a", ["x", "y", "z", "w"], np.array([[1, 33], [1, 0], [3, 2], [1, 2]]), [4, 40])
    trie = ItemTrie.build(vocab, {"a": table})
    # root: children 1, 3; node(1): codes 0, 2, 33 (word 1 bit 1); node(3): code 2
    assert trie.bits.tolist() == [[0b1010, 0], [0b101, 0b10], [0b100, 0]]
    assert trie.first_child.tolist() == [1, 0, 3]  # leaves in code order: y(1,0) w(1,2) x(1,33) z(3,2)
    assert trie.rank.tolist() == [[0, 2], [0, 2], [0, 1]]  # set bits in earlier words
    assert [trie.resolve(leaf)[1] for leaf in range(4)] == ["y", "w", "x", "z"]
    assert int(trie.child(torch.tensor(1), torch.tensor(33))) == 2
    assert trie.window == 64


def test_rejects_duplicate_codes_and_mismatched_codebooks() -> None:
    vocab = SIDVocab(10, {"a": [4, 4]})
    with pytest.raises(ValueError, match="more than one item"):
        ItemTrie.build(vocab, {"a": SIDTable("a", ["x", "y"], np.array([[1, 2], [1, 2]]), [4, 4])})
    with pytest.raises(ValueError, match="codebook sizes"):
        ItemTrie.build(vocab, {"a": SIDTable("a", ["x"], np.array([[1, 2]]), [4, 5])})
    with pytest.raises(KeyError, match="unknown entity type"):
        ItemTrie.build(vocab, {"c": SIDTable("c", ["x"], np.array([[1, 2]]), [4, 4])})


def test_type_without_table_is_empty() -> None:
    vocab = SIDVocab(10, {"a": [4, 4], "b": [3]})
    trie = ItemTrie.build(vocab, random_sid_tables(vocab, {"a": 5}))
    assert trie.type_nonempty.tolist() == [True, False]
    assert reachable(trie, "b") == set()


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    fill=st.floats(0.05, 1.0),
    seed=st.integers(0, 99),
)
def test_every_item_reachable_and_nothing_else(sizes: list[int], fill: float, seed: int) -> None:
    vocab = SIDVocab(7, {"t": sizes, "u": [5, 2]})
    count = max(1, int(fill * min(int(np.prod(sizes)), 300)))
    tables = random_sid_tables(vocab, {"t": count, "u": 6}, seed=seed)
    trie = ItemTrie.build(vocab, tables)
    assert reachable(trie, "t") == set(tables["t"].item_ids)
    assert reachable(trie, "u") == set(tables["u"].item_ids)
    # memory bounded by the codebook shape: at most min(prefixes, items) nodes per level
    nodes_t = sum(min(int(np.prod(sizes[:level])), count) for level in range(len(sizes)))
    nodes_u = 1 + min(5, 6)
    assert trie.n_nodes <= nodes_t + nodes_u


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 999))
def test_filters_keep_exactly_the_allowed_items(seed: int) -> None:
    vocab = SIDVocab(7, {"t": [4, 3, 3]})
    tables = random_sid_tables(vocab, {"t": 30}, seed=seed)
    trie = ItemTrie.build(vocab, tables)
    rng = np.random.default_rng(seed)
    items = tables["t"].item_ids
    available = rng.random(len(items)) < 0.7
    allow = set(rng.choice(items, size=12, replace=False).tolist())
    deny = set(rng.choice(items, size=5, replace=False).tolist())
    restricted = with_availability(trie, {"t": available})
    alive = {item for item, ok in zip(items, available, strict=True) if ok}
    assert reachable(restricted, "t") == alive
    assert reachable(restricted, "t", request_bits(restricted, "t", ItemFilters(deny=deny))) == alive - deny
    bits = request_bits(restricted, "t", ItemFilters(allow=allow), exclude=deny)
    assert reachable(restricted, "t", bits) == (alive & allow) - deny
    assert request_bits(restricted, "t", None) is None


def test_banning_every_leaf_of_a_subtree_clears_its_ancestors() -> None:
    vocab = SIDVocab(7, {"t": [2, 2, 2]})
    table = SIDTable("t", ["p", "q", "r"], np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1]]), [2, 2, 2])
    trie = ItemTrie.build(vocab, {"t": table})
    bits = request_bits(trie, "t", None, exclude=["p", "q"])
    root = int(trie.type_root[0])
    assert bits[root].tolist() == [0b10]  # the whole code-0 subtree is gone, not only its leaves
