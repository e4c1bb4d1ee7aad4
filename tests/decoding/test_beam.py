"""Item beam search: exact scores against brute force (both score modes), bans, filters, batching."""

from __future__ import annotations

import math

import pytest
import torch

from neo.decoding.beam import beam_search_items
from neo.decoding.filters import ItemFilters
from neo.decoding.synthetic import random_sid_tables, tiny_llama
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab

from .conftest import BigramLM


def brute_force(bigram, vocab, table, previous: int, mode: str) -> dict[str, float]:
    """Score of every item of the table: full-vocabulary or allowed-set normalisation, by enumeration."""
    block = vocab.block(table.entity_type)
    scores = {}
    for item, codes in zip(table.item_ids, table.codes.tolist(), strict=True):
        total, prev = 0.0, previous
        for level, code in enumerate(codes):
            token = vocab.code_id(table.entity_type, level, code)
            if mode == "full":
                total += bigram.log_prob(prev, token)
            else:
                siblings = {c[level] for c in table.codes.tolist() if c[:level] == codes[:level]}
                allowed = torch.tensor([block.level_starts[level] + c for c in sorted(siblings)])
                row = bigram.table[prev]
                total += float(row[token] - torch.logsumexp(row[allowed], 0))
            prev = token
        scores[item] = total
    return scores


@pytest.mark.parametrize("mode", ["full", "allowed"])
def test_scores_equal_brute_force(bigram, vocab, tables, trie, mode: str) -> None:
    prompts = torch.tensor([[1, 2], [3, 4]])
    hits = beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60, score_mode=mode)
    for request, entity_type in enumerate(["a", "b"]):
        expected = brute_force(bigram, vocab, tables[entity_type], vocab.open_id(entity_type), mode)
        best = sorted(expected, key=expected.get, reverse=True)[:5]
        assert [h.item_id for h in hits[request]] == best
        for hit in hits[request]:
            assert hit.entity_type == entity_type
            assert math.isclose(hit.score, expected[hit.item_id], abs_tol=1e-4)
            assert tables[entity_type].code_of(hit.item_id) == hit.codes
    if mode == "allowed":  # a distribution over the type's items
        everything = beam_search_items(
            bigram, prompts[:1], None, trie, ["a"], k=17, beam_width=60, score_mode=mode
        )
        assert math.isclose(sum(math.exp(h.score) for h in everything[0]), 1.0, rel_tol=1e-4)


def test_no_forward_pass_for_the_close_token(bigram, trie) -> None:
    bigram.calls = 0
    beam_search_items(bigram, torch.tensor([[1]]), None, trie, ["b"], k=3, beam_width=5)
    assert bigram.calls == 3  # prompt + open, then levels 1 and 2; none after the last level


def test_exclusions_and_filters(bigram, tables, trie) -> None:
    # beams wider than any trie level make the search exhaustive, so the expected lists are exact
    plain = beam_search_items(bigram, torch.tensor([[1]]), None, trie, ["b"], k=13, beam_width=60)[0]
    banned = [h.item_id for h in plain[:3]]
    allow = [h.item_id for h in plain[2:8]]
    hits = beam_search_items(
        bigram,
        torch.tensor([[1], [1]]),
        None,
        trie,
        ["b", "b"],
        k=10,
        beam_width=60,
        exclude=[banned, []],
        filters=[None, ItemFilters(allow=allow, deny=[allow[0]])],
    )
    assert hits[0] == plain[3:]
    assert not set(banned) & {h.item_id for h in hits[0]}
    assert [h.item_id for h in hits[1]] == allow[1:]  # fewer than k: only five items remain


def test_batch_of_types_with_different_depths_matches_single_requests(bigram, trie) -> None:
    together = beam_search_items(bigram, torch.tensor([[1], [2], [3]]), None, trie, ["b", "a", "b"], k=4)
    for row, entity_type in enumerate(["b", "a", "b"]):
        alone = beam_search_items(bigram, torch.tensor([[row + 1]]), None, trie, [entity_type], k=4)
        assert together[row] == alone[0]


def test_tiny_llama_with_left_padding_and_kv_cache(vocab) -> None:
    model = tiny_llama(vocab.total_size)
    tables = random_sid_tables(vocab, {"a": 30, "b": 84}, seed=2)
    trie = ItemTrie.build(vocab, tables)
    prompts = torch.tensor([[0, 0, 7, 8], [5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    hits = beam_search_items(model, prompts, mask, trie, ["b", "b"], k=10, beam_width=12)
    alone = beam_search_items(model, torch.tensor([[7, 8]]), None, trie, ["b"], k=10, beam_width=12)
    assert [h.item_id for h in hits[0]] == [h.item_id for h in alone[0]]
    for request in hits:
        assert len({h.item_id for h in request}) == 10
        assert all(tables["b"].contains(h.item_id) for h in request)
        assert [h.score for h in request] == sorted((h.score for h in request), reverse=True)


def test_argument_errors(bigram, trie) -> None:
    with pytest.raises(ValueError, match="beam_width"):
        beam_search_items(bigram, torch.tensor([[1]]), None, trie, ["a"], k=31)
    with pytest.raises(ValueError, match="left-padded"):
        beam_search_items(bigram, torch.tensor([[1, 0]]), torch.tensor([[1, 0]]), trie, ["a"], k=3)
    with pytest.raises(KeyError, match="unknown entity type"):
        beam_search_items(bigram, torch.tensor([[1]]), None, trie, ["zzz"], k=3)


def test_mixed_depths_when_items_outnumber_trie_nodes() -> None:
    """A request past its last level holds a leaf id, which can exceed the node count: no lookup with it."""
    vocab = SIDVocab(8, {"a": [40, 40], "b": [3, 3, 3]})
    tables = random_sid_tables(vocab, {"a": 900, "b": 20}, seed=4)
    trie = ItemTrie.build(vocab, tables)
    assert len(tables["a"]) > trie.n_nodes
    model = BigramLM(vocab.total_size, seed=5)
    together = beam_search_items(model, torch.tensor([[1], [2], [3]]), None, trie, ["a", "b", "a"], k=4)
    for row, entity_type in enumerate(["a", "b", "a"]):
        alone = beam_search_items(model, torch.tensor([[row + 1]]), None, trie, [entity_type], k=4)
        assert together[row] == alone[0]
