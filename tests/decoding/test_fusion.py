"""Sparse prior masses: equal to the dense subtree sums they replace, and combined per request."""

from __future__ import annotations

import torch

from neo.decoding.fusion import combine
from neo.decoding.lexical import LexicalPrior, LexicalSettings
from neo.decoding.prior import FusionSettings

from .test_lexical import item_text
from .test_prior import hand_prior


def _dense_transition(prior, trie, histories, entity_types, settings, fresh) -> torch.Tensor:
    """The dense table the beam search used to read: subtree sums of the leaf masses, neutral leaves
    reading their parent."""
    mass = trie.subtree_mass(prior.leaf_mass(trie, histories, entity_types, settings, fresh))
    parent = trie.parent[trie.n_nodes:]
    fresh_leaves = [leaf for t in entity_types for item, leaf in
                    zip(trie.item_ids[t], trie.leaves_of(t, trie.item_ids[t]), strict=True) if item in fresh]
    neutral = torch.isin(parent, parent[torch.tensor(fresh_leaves, dtype=torch.int64)]).nonzero().squeeze(1)
    mass[:, trie.n_nodes + neutral] = mass[:, parent[neutral]]
    return mass


def test_sparse_masses_equal_the_dense_subtree_sums_on_each_requests_type(tables, trie) -> None:
    prior = hand_prior(tables)
    fresh = frozenset({tables["a"].item_ids[2]})
    histories, types = [["last"], ["last"], ["unseen"]], ["a", "b", "a"]
    settings = FusionSettings(smoothing=0.2)
    fusion = prior.fusion(trie, histories, types, settings, fresh=fresh)
    dense = _dense_transition(prior, trie, histories, types, settings, fresh)
    for request, entity_type in enumerate(types):
        # a request only ever reads its own type's subtree: positions of other types may differ
        own = trie.subtree_mass(trie.leaf_type_mask([entity_type]))[0] > 0
        torch.testing.assert_close(fusion.dense()[request, own], dense[request, own])
    assert fusion.keys.numel() < 3 * (trie.n_nodes + trie.n_leaves)  # only the singled-out paths are stored

    lexical = LexicalPrior({t: {i: item_text(n) for n, i in enumerate(table.item_ids)} for t, table in tables.items()})
    queries, types = ["amber own3", "nothing matches", "ember"], ["a", "a", "b"]
    searched = lexical.fusion(trie, queries, types, LexicalSettings(top=4))
    dense = trie.subtree_mass(lexical.leaf_mass(trie, queries, types, LexicalSettings(top=4)))
    for request, entity_type in enumerate(types):
        own = trie.subtree_mass(trie.leaf_type_mask([entity_type]))[0] > 0
        torch.testing.assert_close(searched.dense()[request, own], dense[request, own])


def test_combined_batches_keep_each_requests_prior_and_leave_the_rest_alone(tables, trie) -> None:
    prior = hand_prior(tables)
    fresh = frozenset({tables["a"].item_ids[2]})
    recommended = prior.fusion(trie, [["last"]], ["a"], FusionSettings(weight=0.5), fresh=fresh)
    lexical = LexicalPrior({t: {i: item_text(n) for n, i in enumerate(table.item_ids)} for t, table in tables.items()})
    searched = lexical.fusion(trie, ["amber", "cobalt"], ["a", "b"], LexicalSettings(weight=7.0))
    both = combine(4, [([2], recommended), ([0, 3], searched)])
    dense = both.dense()
    torch.testing.assert_close(dense[2], recommended.dense()[0])  # neutral leaves read their parent here
    torch.testing.assert_close(dense[0], searched.dense()[0])  # ... and not on search rows
    torch.testing.assert_close(dense[3], searched.dense()[1])
    assert both.weight.tolist() == [7.0, 0.0, 0.5, 7.0]  # request 1 has no prior: the model alone
    assert bool((dense[1] == 0).all())
