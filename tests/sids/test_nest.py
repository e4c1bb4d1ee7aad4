"""Nested SIDs: parent code + sibling rank, build order, and the errors for bad trees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neo.data import Catalog
from neo.sids.build import build_sid_tables, encode_new_children
from neo.sids.config import type_config
from neo.sids.nest import build_order, sibling_ranks
from neo.sids.table import load_tables

FAST = {"embedder": {"name": "tfidf", "dim": 8}, "quantizer": {"levels": 2, "codebook_size": 2, "niter": 5}}
NESTED = {**FAST, "overrides": {"episode": {"parent": {"type": "show", "order_by": "number"}}}}


def write_shows(root: Path, episodes: list[dict]) -> Path:
    """Three shows and the given episodes (each {id, show, number}); users play them in order."""
    root.mkdir(parents=True, exist_ok=True)
    items = [{"id": e["id"], "type": "episode", "title": f"episode {e['id']}", "text": f"about {e['show']}",
              "attributes": {"number": e["number"]} if e.get("number") is not None else {},
              "links": {"show": [e["show"]]} if e["show"] else {}} for e in episodes]
    items += [{"id": s, "type": "show", "title": f"show {s}", "text": f"a show named {s} {w}"}
              for s, w in (("s0", "space"), ("s1", "cooking"), ("s2", "history"))]
    plays = [{"user": f"u{u}", "item": e["id"], "timestamp": t}
             for u in range(6) for t, e in enumerate(episodes)]
    for name, rows in (("items", items), ("users", [{"id": f"u{u}"} for u in range(6)]), ("interactions", plays)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # episodes first in the spec: the build order must still put shows first
    (root / "dataset.yaml").write_text("name: shows\nentity_types: [episode, show]\nsplit: leave_one_out\n")
    return root


EPISODES = [
    {"id": "e3", "show": "s0", "number": 3},
    {"id": "e1", "show": "s0", "number": 1},
    {"id": "e2", "show": "s0", "number": 2},
    {"id": "f2", "show": "s1", "number": 2},
    {"id": "f1", "show": "s1", "number": 1},
    {"id": "g1", "show": "s2", "number": 7},
]


def test_episode_codes_are_the_show_code_and_the_episode_rank(tmp_path: Path) -> None:
    catalog = Catalog.load(write_shows(tmp_path / "data", EPISODES))
    tables, report = build_sid_tables(catalog, NESTED, tmp_path / "run")
    assert list(tables) == ["episode", "show"]  # catalog order, though shows were built first
    shows, episodes = tables["show"], tables["episode"]
    expected_rank = {"e1": 0, "e2": 1, "e3": 2, "f1": 0, "f2": 1, "g1": 0}
    show_of = {"e1": "s0", "e2": "s0", "e3": "s0", "f1": "s1", "f2": "s1", "g1": "s2"}
    for episode, rank in expected_rank.items():
        assert episodes.code_of(episode) == (*shows.code_of(show_of[episode]), rank)
    assert episodes.codebook_sizes == (*shows.codebook_sizes, 3)  # the largest show has 3 episodes
    assert episodes.families(shows) == {"s0": ["e1", "e2", "e3"], "s1": ["f1", "f2"], "s2": ["g1"]}
    assert report["episode"]["source"] == "nested" and report["episode"]["collision_rate_after"] == 0.0
    assert episodes.meta["parent_version"] == shows.version
    reloaded = load_tables(tmp_path / "run" / "sids")["episode"]
    assert np.array_equal(reloaded.codes, episodes.codes) and reloaded.version == episodes.version


def test_without_order_by_siblings_keep_catalog_order() -> None:
    assert sibling_ranks(["a", "b", "a", "a", "b"], [0, 1, 2, 3, 4]).tolist() == [0, 0, 1, 2, 1]
    assert sibling_ranks(["a", "a", "a"], [5, 1, 5]).tolist() == [1, 0, 2]  # ties: earlier row first


def test_build_order_puts_parents_first_and_rejects_bad_trees() -> None:
    assert build_order(["track", "album", "artist"], {"track": "album", "album": "artist"}) == [
        "artist",
        "album",
        "track",
    ]
    with pytest.raises(ValueError, match="parent type 'show' gets no SID table"):
        build_order(["episode"], {"episode": "show"})
    with pytest.raises(ValueError, match="cycle"):
        build_order(["a", "b"], {"a": "b", "b": "a"})


def test_items_without_a_parent_or_an_order_value_are_named(tmp_path: Path) -> None:
    orphan = [*EPISODES, {"id": "lost", "show": None, "number": 1}]
    catalog = Catalog.load(write_shows(tmp_path / "orphan", orphan))
    with pytest.raises(ValueError, match=r"1 item\(s\) have none, e.g. \['lost'\]"):
        build_sid_tables(catalog, NESTED, tmp_path / "run1")
    unnumbered = [*EPISODES, {"id": "e9", "show": "s0", "number": None}]
    catalog = Catalog.load(write_shows(tmp_path / "unnumbered", unnumbered))
    with pytest.raises(ValueError, match="attribute 'number', but item 'e9' has None"):
        build_sid_tables(catalog, NESTED, tmp_path / "run2")


def test_parent_config_errors() -> None:
    with pytest.raises(ValueError, match=r"parent: unknown key\(s\) \['order'\]"):
        type_config({"parent": {"type": "show", "order": "n"}}, "episode")
    with pytest.raises(ValueError, match="either `parent`"):
        type_config({"parent": {"type": "show"}, "byo": "x.json"}, "episode")
    with pytest.raises(ValueError, match="parent must be a mapping"):
        type_config({"parent": "show"}, "episode")
    assert type_config(NESTED, "episode").parent.order_by == "number"
    assert type_config(NESTED, "show").parent is None


def test_demo_world_episodes_nest_under_their_shows(demo_dir: Path, tmp_path: Path) -> None:
    """On the embedded world: an episode's span is its show's codes plus its number - 1, in one vocabulary."""
    from neo.vocab import SIDVocab

    catalog = Catalog.load(demo_dir)
    cfg = {**FAST, "overrides": {"episode": {"parent": {"type": "show", "order_by": "episode_number"}}}}
    tables, _ = build_sid_tables(catalog, cfg, tmp_path)
    shows, episodes = tables["show"], tables["episode"]
    for item in episodes.item_ids:
        record = catalog.item(item)
        show = record["links"]["show"][0]
        assert episodes.code_of(item) == (*shows.code_of(show), record["attributes"]["episode_number"] - 1)
    vocab = SIDVocab(1000, {t: table.codebook_sizes for t, table in tables.items()})
    assert vocab.block("episode").levels == vocab.block("show").levels + 1
    first = episodes.item_ids[0]
    assert len(vocab.span_ids("episode", episodes.code_of(first))) == episodes.levels + 2  # open + codes + close


def test_new_children_take_the_next_free_ranks_of_their_parent(tmp_path: Path) -> None:
    catalog = Catalog.load(write_shows(tmp_path / "data", EPISODES))
    tables, _ = build_sid_tables(catalog, NESTED, tmp_path / "run")
    shows, episodes = tables["show"], tables["episode"]  # rank level of 3: s0 full, s1 one free, s2 two
    free = next(c for c in np.ndindex(*shows.codebook_sizes) if shows.item_of(c) is None)
    shows = shows.with_items(["s3"], [free])
    result = encode_new_children(
        episodes, shows, ["g3", "f3", "g2", "h1"], ["s2", "s1", "s2", "s3"], [9, 3, 8, 1]
    )
    expected = {"f3": ("s1", 2), "g2": ("s2", 1), "g3": ("s2", 2), "h1": ("s3", 0)}  # g2 before g3
    for item, (show, rank) in expected.items():
        assert result.table.code_of(item) == (*shows.code_of(show), rank)
    assert np.array_equal(result.table.codes[: len(episodes)], episodes.codes)  # old ones never move
    assert len({tuple(c) for c in result.table.codes.tolist()}) == len(result.table)
    assert result.collided == []

    with pytest.raises(ValueError, match="full for 1 parent.*'s0'"):
        encode_new_children(episodes, shows, ["e4"], ["s0"])
    with pytest.raises(ValueError, match="without a SID in the 'show' table"):
        encode_new_children(episodes, shows, ["x1"], ["s9"])
    with pytest.raises(ValueError, match="unseen"):
        encode_new_children(episodes, shows, ["e1"], ["s0"])
    with pytest.raises(ValueError, match="not nested"):
        encode_new_children(shows, shows, ["s4"], ["s0"])
    with pytest.raises(ValueError, match="nests under 'show'"):
        encode_new_children(episodes, episodes, ["x1"], ["e1"])
