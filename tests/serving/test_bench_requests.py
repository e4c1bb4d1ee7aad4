"""The serving benchmark's request bodies: what each endpoint is sent (the load test itself is a benchmark)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from neo.data import Catalog


def _recipe(checkpoint: Path, endpoint: str):
    from neo.recipes.bench_serving import BenchServingRecipe

    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="serve", overrides=[f"checkpoint={checkpoint}", f"bench.endpoint={endpoint}"])
    return BenchServingRecipe(cfg)


def test_search_bodies_take_words_of_a_title_of_their_target_type(random_checkpoint: Path, demo_dir: Path) -> None:
    bodies = _recipe(random_checkpoint, "search")._bodies(random_checkpoint, 12)
    catalog = Catalog.load(demo_dir)
    titles = {}
    for entity_type, title in zip(catalog.items["type"], catalog.items["title"], strict=True):
        titles.setdefault(entity_type, []).append(title)
    assert len({body["target_type"] for body in bodies}) > 1  # types in rotation
    for body in bodies:
        assert set(body) == {"query", "target_type", "k"} and body["query"]
        assert any(body["query"] in title for title in titles[body["target_type"]])


def test_recommend_bodies_carry_histories_and_an_unknown_endpoint_is_refused(random_checkpoint: Path) -> None:
    bodies = _recipe(random_checkpoint, "recommend")._bodies(random_checkpoint, 4)
    assert all(len(body["history"]) == 8 for body in bodies)
    with pytest.raises(ValueError, match=r"bench.endpoint: expected one of \['recommend', 'search'\], got 'rank'"):
        _recipe(random_checkpoint, "rank")
