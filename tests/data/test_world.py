"""The demo world: deterministic, valid, linked consistently, and carrying a learnable sequential signal."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neo.data.catalog import Catalog
from neo.data.splits import Split, make_split, targets
from neo.data.validate import validate
from neo.data.world import GroupSampler, generate_world, world_size
from neo.data.writer import storage_json


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, demo_dir: Path) -> None:
    again = generate_world(tmp_path / "again", seed=0, scale="tiny")
    other = generate_world(tmp_path / "other", seed=1, scale="tiny")
    assert _files(again) == _files(demo_dir)
    assert _files(other)["interactions.jsonl"] != _files(demo_dir)["interactions.jsonl"]


def test_tiny_world_is_valid_and_has_every_table(demo_dir: Path) -> None:
    summary = validate(demo_dir)
    assert sum(summary["items"].values()) == 300 and summary["users"] == 150
    assert set(summary["interactions_by_type"]) == {"episode", "audiobook"}
    assert summary["queries"] > 0
    catalog = Catalog.load(demo_dir)
    assert len(catalog.profiles) == 150
    assert set(catalog.queries["split"]) == {"train", "test"}


def test_links_are_consistent(demo_dir: Path) -> None:
    catalog = Catalog.load(demo_dir)
    links = catalog.links
    for item_id in catalog.item_ids("episode"):
        show = links[item_id]["show"][0]
        assert links[item_id]["artist"] == links[show]["artist"], "an episode's artist is its show's host"
    for item_id in catalog.item_ids("audiobook"):
        assert catalog.item_types[catalog.item_row[links[item_id]["artist"][0]]] == "artist"


def test_object_fields_are_canonical_json(demo_dir: Path) -> None:
    """The world writes JSON by hand for speed; it must equal what normalise_record would store."""
    for table, fields in (
        ("items", ("attributes", "links")),
        ("profiles", ("attributes",)),
        ("users", ("attributes",)),
    ):
        for line in (demo_dir / f"{table}.jsonl").read_text().splitlines():
            record = json.loads(line)
            for name in fields:
                raw = line.split(f'"{name}": ', 1)[1]
                assert raw.startswith(storage_json(record[name])), (table, name, line)


def test_sequences_have_increasing_time_and_context(demo_dir: Path) -> None:
    sequences = Catalog.load(demo_dir).sequences()
    for events in sequences.values():
        stamps = [t for _, t, _ in events]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert all(set(ctx) == {"surface", "device", "hour"} for _, _, ctx in events)
        assert len(events) >= 3


@given(st.lists(st.integers(0, 4), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_group_sampler_draws_only_from_the_requested_group(groups: list[int], seed: int) -> None:
    groups_array = np.asarray(groups)
    rng = np.random.default_rng(seed)
    sampler = GroupSampler(groups_array, rng.uniform(0.1, 2.0, len(groups)), n_groups=5)
    present = np.unique(groups_array)
    asked = rng.choice(present, size=50)
    drawn = sampler.draw(asked, rng)
    assert (groups_array[drawn] == asked).all()


def test_group_sampler_follows_weights() -> None:
    sampler = GroupSampler(np.array([0, 0, 1]), np.array([1.0, 3.0, 1.0]), n_groups=2)
    drawn = sampler.draw(np.zeros(20_000, dtype=np.int64), np.random.default_rng(0))
    assert abs((drawn == 1).mean() - 0.75) < 0.02


def test_scales() -> None:
    assert world_size("tiny").items == 300
    assert world_size(1_000_000).users == 250_000
    assert world_size("5000").items == 5000
    with pytest.raises(ValueError, match="scale must be one of"):
        world_size("huge")
    with pytest.raises(ValueError, match="at least 100 items"):
        world_size(50)


def _recall_at_10(split: Split, goals: dict[str, str], ranker) -> float:
    return sum(target in ranker(split.history("test", user)) for user, target in goals.items()) / len(goals)


def test_learnable_signal_next_item_beats_popularity(tmp_path: Path) -> None:
    """On the small world, 'what usually follows the last item' must clearly beat 'what is popular'."""
    catalog = Catalog.load(generate_world(tmp_path / "small", seed=0, scale="small"))
    split = make_split(catalog)
    popularity: Counter[str] = Counter()
    following: dict[str, Counter[str]] = defaultdict(Counter)
    for events in split.train.values():
        items = [e.item for e in events]
        popularity.update(items)
        for before, after in zip(items, items[1:], strict=False):
            following[before][after] += 1
    top = [item for item, _ in popularity.most_common(10)]

    def next_item(history: list) -> list[str]:
        ranked = [item for item, _ in following[history[-1].item].most_common(10)]
        return ranked + [item for item in top if item not in ranked][: 10 - len(ranked)]

    goals = targets(catalog, split, "test", "episode")
    assert len(goals) > 1000
    popular_recall = _recall_at_10(split, goals, lambda history: top)
    sequential_recall = _recall_at_10(split, goals, next_item)
    assert sequential_recall >= 2 * popular_recall and sequential_recall > 0.2, (
        popular_recall,
        sequential_recall,
    )


def test_item_count_scale_writes_parquet_that_validates(tmp_path: Path) -> None:
    root = generate_world(tmp_path / "w", seed=2, scale=2_000)
    assert (root / "items.parquet").exists() and not (root / "items.jsonl").exists()
    summary = validate(root)
    assert sum(summary["items"].values()) == 2_000 and summary["users"] == 500
