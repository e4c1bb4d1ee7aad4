"""The transition prior: fused beam scores equal brute force, counting, files and settings."""

from __future__ import annotations

import json
import math

import pytest
import torch

from neo.decoding.beam import beam_search_items
from neo.decoding.prior import PRIOR_FILE, CountSettings, FusionSettings, ItemPrior, TypePrior

from .test_beam import brute_force


def hand_prior(tables) -> ItemPrior:
    """Type a: every item counted but a[2] and a[9] (added after training, see FRESH); type b: all counted."""
    a, b = tables["a"].item_ids, tables["b"].item_ids
    return ItemPrior(
        {
            "a": TypePrior({i: 1 + n % 3 for n, i in enumerate(a) if i not in (a[2], a[9])},
                           {"last": {a[4]: 3, a[7]: 1, a[2]: 1}}),
            "b": TypePrior({i: 1 for i in b} | {b[1]: 9}, {"last": {b[10]: 2, b[20]: 2, "not-in-the-trie": 4}}),
        }
    )


def expected_prior(table, popularity: dict, successors: dict, smoothing: float, fresh: frozenset = frozenset()
                   ) -> dict[str, float]:
    """q(item) by hand: (1 - s) * successor share + s * add-one popularity share; items that share their
    parent prefix with an item added after training all take the parent's total (no prior below it)."""
    ids = table.item_ids
    pop_total = sum(popularity.get(i, 0) + 1 for i in ids)
    known = {i: n for i, n in successors.items() if i in ids}
    chain_total = sum(known.values())
    q = {
        i: ((1 - smoothing) * known.get(i, 0) / chain_total if known else 0.0)
        + (smoothing if known else 1.0) * (popularity.get(i, 0) + 1) / pop_total
        for i in ids
    }
    family: dict[tuple, list[str]] = {}
    for item, codes in zip(ids, table.codes.tolist(), strict=True):
        family.setdefault(tuple(codes[:-1]), []).append(item)
    for members in family.values():
        if any(m in fresh for m in members):
            total = sum(q[m] for m in members)
            q.update({m: total for m in members})
    return q


@pytest.mark.parametrize("last", ["last", "never-seen"])
def test_fused_scores_equal_brute_force(bigram, vocab, tables, trie, last) -> None:
    prior = hand_prior(tables)
    settings = FusionSettings(weight=0.7, smoothing=0.2)
    prompts = torch.tensor([[1, 2], [3, 4]])
    fresh = frozenset({tables["a"].item_ids[2], tables["a"].item_ids[9]})
    fusion = prior.fusion(trie, [[last], [last]], ["a", "b"], settings, fresh=fresh)
    mass = fusion.dense()
    b_leaves = torch.tensor(trie.leaves_of("b", tables["b"].item_ids)) + trie.n_nodes
    torch.testing.assert_close(mass[1, b_leaves].sum(), torch.tensor(1.0))  # b: all counted
    hits = beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=15, beam_width=60, prior=fusion)
    for request, entity_type in enumerate(["a", "b"]):
        model = brute_force(bigram, vocab, tables[entity_type], vocab.open_id(entity_type), "full")
        body = prior.types[entity_type]
        q = expected_prior(tables[entity_type], body.popularity, body.successors.get(last, {}), 0.2, fresh)
        ids = tables[entity_type].item_ids
        leaves = torch.tensor(trie.leaves_of(entity_type, ids)) + trie.n_nodes
        torch.testing.assert_close(mass[request, leaves], torch.tensor([q[i] for i in ids]))
        expected = {i: model[i] + 0.7 * math.log(q[i]) for i in model}
        best = sorted(expected, key=expected.get, reverse=True)[:15]
        assert [h.item_id for h in hits[request]] == best
        for hit in hits[request]:
            assert math.isclose(hit.score, expected[hit.item_id], abs_tol=1e-4)


def test_recent_items_mix_their_successors_by_recency(trie, tables) -> None:
    """History [earlier, last, unseen]: `unseen` has no successors and drops out; last 1, earlier 0.5."""
    a = tables["a"].item_ids
    prior = ItemPrior({"a": TypePrior({}, {"earlier": {a[1]: 1, a[2]: 3}, "last": {a[2]: 2, a[5]: 2}})})
    settings = FusionSettings(smoothing=0.2, recent=3, decay=0.5)
    mass = prior.leaf_mass(trie, [["older", "earlier", "last", "unseen"]], ["a"], settings)[0]
    leaf = dict(zip(a, trie.leaves_of("a", a), strict=True))
    chain = {a[1]: 0.5 * 0.25, a[2]: 0.5 * 0.75 + 1 * 0.5, a[5]: 1 * 0.5}  # shares of each source, weighted
    for item in a:
        expected = 0.8 * chain.get(item, 0.0) / 1.5 + 0.2 / len(a)
        assert math.isclose(float(mass[leaf[item]]), expected, rel_tol=1e-5)
    only_first = prior.leaf_mass(trie, [["earlier", "last"]], ["a"], FusionSettings(smoothing=0.2, recent=1))[0]
    assert math.isclose(float(only_first[leaf[a[5]]]), 0.8 * 0.5 + 0.2 / len(a), rel_tol=1e-5)


def test_zero_weight_rows_keep_the_models_scores(bigram, tables, trie) -> None:
    prompts = torch.tensor([[1, 2], [3, 4]])
    fusion = hand_prior(tables).fusion(
        trie, [["last"], ["last"]], ["a", "b"], FusionSettings(), weights=[0.0, 1.0]
    )
    fused = beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60, prior=fusion)
    plain = beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60)
    assert fused[0] == plain[0] and fused[1] != plain[1]


def test_counts_follow_targets_of_the_next_interaction(tmp_path) -> None:
    show_of = {"e1": "s1", "e2": "s1", "e3": "s2"}

    def target_of(item: str, entity_type: str) -> str | None:
        return item if entity_type == "episode" else show_of[item]

    prior = ItemPrior.count([["e1", "e2", "e3"], ["e1", "e3"]], ["episode", "show"], target_of)
    assert prior.types["episode"].successors == {"e1": {"e2": 1, "e3": 1}, "e2": {"e3": 1}}
    assert prior.types["show"].successors == {"e1": {"s1": 1, "s2": 1}, "e2": {"s2": 1}}
    assert prior.types["show"].popularity == {"s1": 3, "s2": 2}
    path = tmp_path / PRIOR_FILE
    prior.save(path)
    again = ItemPrior.load(path)
    assert again.types == prior.types and again.max_successors == 64


def test_a_window_counts_later_pairs_decayed_and_backward_pairs_at_their_share(tmp_path) -> None:
    identity = lambda item, entity_type: item  # noqa: E731
    counting = CountSettings(window=3, gap_decay=0.5, backward=0.1, max_successors=2)
    prior = ItemPrior.count([["a", "b", "c", "d"]], ["x"], identity, counting)
    assert prior.types["x"].successors == {
        "a": {"b": 1.0, "c": 0.5},          # d (gap 3: 0.25) is the third heaviest: cut by max_successors
        "b": {"c": 1.0, "d": 0.5},          # a (backward, gap 1: 0.1) likewise
        "c": {"d": 1.0, "b": 0.1},
        "d": {"c": 0.1, "b": 0.05},
    }
    assert prior.max_successors == 2
    prior.save(tmp_path / PRIOR_FILE)
    assert ItemPrior.load(tmp_path / PRIOR_FILE).types == prior.types  # fractional weights survive the file
    with pytest.raises(ValueError, match="transitions.window and transitions.max_successors must be >= 1"):
        CountSettings.from_config({"window": 0})
    with pytest.raises(ValueError, match=r"transitions: unknown key\(s\) \['windw'\]"):
        CountSettings.from_config({"windw": 2})
    with pytest.raises(ValueError, match=r"transitions.gap_decay must lie in \(0, 1\]"):
        CountSettings(gap_decay=0)
    with pytest.raises(ValueError, match="transitions.window: expected int, got 'wide'"):
        CountSettings.from_config({"window": "wide"})


def test_bad_files_and_settings_are_named(tmp_path) -> None:
    path = tmp_path / PRIOR_FILE
    path.write_text(json.dumps({"version": 7}))
    with pytest.raises(ValueError, match=f"{PRIOR_FILE}: expected an item prior of version 1, got 7"):
        ItemPrior.load(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="version 1, got 'list'"):
        ItemPrior.load(path)
    path.write_text(json.dumps({"version": 1, "types": {"a": {"popularity": []}}}))
    with pytest.raises(ValueError, match="types.a needs 'popularity' and 'successors'"):
        ItemPrior.load(path)
    with pytest.raises(ValueError, match=r"prior.smoothing must lie in \(0, 1\]"):
        FusionSettings(smoothing=0.0)
    with pytest.raises(ValueError, match="unknown key"):
        FusionSettings.from_config({"wieght": 1})
    with pytest.raises(ValueError, match=r"prior.recent must be >= 1"):
        FusionSettings.from_config({"recent": 0})
    assert FusionSettings.from_config({"weight": 0.5}) == FusionSettings(weight=0.5, smoothing=0.1, recent=3, decay=0.3)


def test_type_weights_set_each_requests_weight_by_its_target_type(bigram, tables, trie) -> None:
    """`type_weights` over `weight`: a type weighted 0 keeps the model's scores, as an explicit per-request 0."""
    prompts = torch.tensor([[1, 2], [3, 4]])
    prior = hand_prior(tables)
    by_type = prior.fusion(trie, [["last"], ["last"]], ["a", "b"], FusionSettings(weight=2.5, type_weights={"a": 0}))
    explicit = prior.fusion(trie, [["last"], ["last"]], ["a", "b"], FusionSettings(), weights=[0.0, 2.5])
    assert by_type.weight.tolist() == explicit.weight.tolist() == [0.0, 2.5]
    fused = beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60, prior=by_type)
    assert fused == beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60, prior=explicit)
    assert fused[0] == beam_search_items(bigram, prompts, None, trie, ["a", "b"], k=5, beam_width=60)[0]
    # a request's own weight still wins over its type's
    assert prior.fusion(trie, [["last"]], ["b"], FusionSettings(type_weights={"b": 3}), weights=[0.5]).weight.tolist() == [0.5]


def test_type_weights_from_config_and_their_errors() -> None:
    from omegaconf import OmegaConf

    settings = FusionSettings.from_config(OmegaConf.create({"weight": 1.0, "type_weights": {"product": 2}}))
    assert settings.type_weights == {"product": 2.0}
    assert (settings.weight_for("product"), settings.weight_for("brand")) == (2.0, 1.0)
    assert FusionSettings(weight=0, type_weights={"product": 2}).active
    assert not FusionSettings(weight=0, type_weights={"product": 0}).active
    with pytest.raises(ValueError, match="prior.type_weights.product must be >= 0, got -1"):
        FusionSettings(type_weights={"product": -1})
    with pytest.raises(ValueError, match="prior.type_weights.brand: expected a number, got 'high'"):
        FusionSettings.from_config({"type_weights": {"brand": "high"}})
    with pytest.raises(ValueError, match="prior.type_weights: expected dict, got 2.0"):
        FusionSettings.from_config({"type_weights": 2.0})
