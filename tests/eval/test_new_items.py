"""The nested cold-start probe: which parents get a new child, which users are asked, what is counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neo.eval.new_items import NEW_SUFFIX, latest_children, new_children_probe

from neo.api import Neo
from neo.data import Catalog
from neo.sids.table import SIDTable


def test_latest_child_is_the_highest_rank_under_each_parent() -> None:
    parents = SIDTable("show", ["a", "b"], np.array([[0, 1], [1, 0]]), (2, 2))
    children = SIDTable(
        "episode",
        ["a1", "a3", "a2", "b1"],
        np.array([[0, 1, 0], [0, 1, 2], [0, 1, 1], [1, 0, 0]]),
        (2, 2, 4),
        {"source": "nested", "config": {"parent": {"type": "show"}}},
    )
    assert latest_children(children, parents) == {"a": "a3", "b": "b1"}


def test_probe_adds_one_child_per_parent_and_asks_the_users_who_finished_one(
    nested_checkpoint: Path, demo_dir: Path
) -> None:
    model = Neo.from_pretrained(nested_checkpoint, beam_width=8)
    catalog = Catalog.load(demo_dir)
    before = model.tables["episode"]
    latest = set(latest_children(before, model.tables["show"]).values())
    finished = sum(1 for events in catalog.sequences().values() if events[-1][0] in latest)

    report = new_children_probe(model, catalog, "episode", users=20, k=5)

    shows_with_episodes = len({catalog.links[e]["show"][0] for e in before.item_ids})
    assert report["parents_with_new_child"] == shows_with_episodes  # the rank level has one free code each
    assert len(model.tables["episode"]) == len(before) + shows_with_episodes
    assert report["probe_users"] == min(20, finished) > 0
    assert report["control_users"] == 20
    assert 0 <= report["new_child/top1"] <= report["new_child/hit@5"] <= 1
    for show in {catalog.links[e]["show"][0] for e in before.item_ids}:  # under its show, after its episodes
        code = model.tables["episode"].code_of(show + NEW_SUFFIX)
        assert code[:-1] == model.tables["show"].code_of(show)
        assert code[-1] == max(c[-1] for c in before.codes.tolist() if tuple(c[:-1]) == code[:-1]) + 1


def test_probe_refuses_a_type_that_is_not_nested(random_checkpoint: Path, demo_dir: Path) -> None:
    model = Neo.from_pretrained(random_checkpoint, beam_width=4)
    with pytest.raises(ValueError, match="not nested"):
        new_children_probe(model, Catalog.load(demo_dir), "show")
