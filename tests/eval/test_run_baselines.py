"""End to end on a hand-made catalog: per-type histories, exact baseline metrics, the recipe's JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from neo.eval.baselines.base import SearchQuery
from neo.eval.run_baselines import (
    queries_from_catalog,
    run_rec_baselines,
    run_search_baselines,
    sasrec_config_from,
    typed_split,
)

from neo.data.catalog import Catalog
from neo.data.splits import make_split

REPO = Path(__file__).resolve().parents[2]
ITEMS = [
    {
        "id": "p1",
        "type": "product",
        "title": "Steel tweezers",
        "text": "Fine tip.",
        "links": {"brand": ["b1"]},
    },
    {
        "id": "p2",
        "type": "product",
        "title": "Nitrile gloves",
        "text": "Powder free.",
        "links": {"brand": ["b1"]},
    },
    {"id": "p3", "type": "product", "title": "Glass beaker", "text": "250 ml.", "links": {"brand": ["b2"]}},
    {"id": "p4", "type": "product", "title": "Pocket thermometer", "text": "", "links": {"brand": ["b2"]}},
    {"id": "b1", "type": "brand", "title": "LabCo", "text": "Lab tools."},
    {"id": "b2", "type": "brand", "title": "GlassWorks", "text": "Glassware."},
]
SEQUENCES = {"u1": ["p1", "p2", "p3", "p4"], "u2": ["p1", "p3", "p1", "p2"], "u3": ["p2", "p1", "p4"]}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-catalog")
    (root / "dataset.yaml").write_text("name: tiny\nentity_types: [product, brand]\nsplit: leave_one_out\n")
    _write_jsonl(root / "items.jsonl", ITEMS)
    _write_jsonl(root / "users.jsonl", [{"id": u} for u in SEQUENCES])
    _write_jsonl(
        root / "interactions.jsonl",
        [
            {"user": u, "item": item, "timestamp": t}
            for u, items in SEQUENCES.items()
            for t, item in enumerate(items)
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"id": "q1", "text": "steel tweezers", "type": "product", "items": ["p1"], "split": "test"},
            {"id": "q2", "text": "glassware maker", "type": "brand", "items": ["b2"], "split": "test"},
            {"id": "q3", "text": "gloves", "type": "product", "items": ["p2"], "split": "train"},
        ],
    )
    return root


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> Catalog:
    return Catalog.load(tiny_dir)


def test_typed_split_maps_histories_to_the_target_type(tiny: Catalog) -> None:
    brand = typed_split(tiny, make_split(tiny), "brand", "test")
    assert brand.item_ids == ["b1", "b2"]
    assert brand.train == [["b1", "b1"], ["b1", "b2"], ["b1"]]
    assert brand.valid == ([["b1", "b1"], ["b1", "b2"], ["b1"]], ["b2", "b1", "b1"])
    assert brand.evaluation == ([["b1", "b1", "b2"], ["b1", "b2", "b1"], ["b1", "b1"]], ["b2", "b1", "b2"])


def test_popularity_metrics_per_type_are_exact(tiny: Catalog) -> None:
    got = run_rec_baselines(tiny, make_split(tiny), ["product", "brand"], names=["popularity"], ks=(1, 2))
    # product counts p1 2, p2 2, p3 1, p4 0; targets p4, p2, p4 -> ranks 3, 1, 3.
    assert got["baseline/popularity/rec/product/recall@2"] == pytest.approx(1 / 3)
    assert got["baseline/popularity/rec/product/ndcg@2"] == pytest.approx(1 / math.log2(3) / 3)
    # brand counts b1 4, b2 1; targets b2, b1, b2 -> ranks 1, 0, 1.
    assert got["baseline/popularity/rec/brand/recall@1"] == pytest.approx(1 / 3)
    assert got["baseline/popularity/rec/brand/recall@2"] == 1.0
    assert got["baseline/popularity/rec/brand/mrr"] == pytest.approx(2 / 3)
    assert got["baseline/popularity/rec/brand/n"] == 3


def test_excluding_history_changes_the_ranking(tiny: Catalog) -> None:
    got = run_rec_baselines(
        tiny, make_split(tiny), ["product"], names=["popularity"], ks=(1,), exclude_history=True
    )
    # u1 saw p1 p2 p3 -> p4 first; u2 saw p1 p3 -> p2 first; u3 saw p2 p1 -> p3 first (target p4).
    assert got["baseline/popularity/rec/product/recall@1"] == pytest.approx(2 / 3)


def test_search_baselines_per_type(tiny: Catalog) -> None:
    queries = queries_from_catalog(tiny, "test")
    assert [q.entity_type for q in queries] == ["product", "brand"]
    got = run_search_baselines(tiny, queries, ks=(1,), names=["bm25"])
    assert got["baseline/bm25/search/product/recall@1"] == 1.0
    assert got["baseline/bm25/search/brand/recall@1"] == 1.0


def test_bm25f_counts_the_title_as_often_as_it_is_told(tmp_path: Path) -> None:
    """Each description praises the next item's title twice: counted once, the title loses to it."""
    colors, things = ["red", "green", "blue", "amber"], ["lamp", "chair", "desk", "shelf"]
    items = [{"id": f"p{n}", "type": "product", "title": f"{colors[n]} {things[n]}",
              "text": f"pairs with {colors[(n + 1) % 4]} {things[(n + 1) % 4]}, {colors[(n + 1) % 4]} {things[(n + 1) % 4]}"}
             for n in range(4)]
    (tmp_path / "dataset.yaml").write_text("name: titles\nentity_types: [product]\n")
    _write_jsonl(tmp_path / "items.jsonl", items)
    _write_jsonl(tmp_path / "users.jsonl", [{"id": "u"}])
    _write_jsonl(tmp_path / "interactions.jsonl", [{"user": "u", "item": "p0", "timestamp": 0}])
    catalog = Catalog.load(tmp_path)
    queries = [SearchQuery(item["title"], "product", (item["id"],)) for item in items]
    got = run_search_baselines(catalog, queries, ks=(1,), names=["bm25", "bm25f"], title_weight=3)
    assert got["baseline/bm25/search/product/recall@1"] == 0.0
    assert got["baseline/bm25f/search/product/recall@1"] == 1.0
    once = run_search_baselines(catalog, queries, ks=(1,), names=["bm25f"])  # title_weight 1: plain BM25
    assert once["baseline/bm25f/search/product/recall@1"] == 0.0


def test_sasrec_options_are_checked() -> None:
    assert sasrec_config_from({"dropout": 0.5}).dropout == 0.5
    with pytest.raises(ValueError, match="droput"):
        sasrec_config_from({"droput": 0.5})


def test_recipe_writes_baselines_json(tiny_dir: Path, tmp_path: Path) -> None:
    from neo.recipes.baselines import RESULT_FILE, BaselinesRecipe

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "baselines",
            overrides=[
                "data=dir",
                f"data.path={tiny_dir}",
                "data.name=tiny",
                f"output_dir={tmp_path}",
                "rec=[popularity,cooccurrence]",
                "search=[bm25]",
                "ks=[1,2]",
                "progress=false",
            ],
        )
    recipe = BaselinesRecipe(cfg)
    recipe.setup()
    recipe.run()
    saved = json.loads((tmp_path / RESULT_FILE).read_text())
    assert saved["dataset"] == "tiny" and saved["part"] == "test"
    assert saved["metrics"]["baseline/popularity/rec/product/recall@2"] == pytest.approx(1 / 3)
    assert "baseline/cooccurrence/rec/brand/ndcg@2" in saved["metrics"]
    assert saved["metrics"]["baseline/bm25/search/product/recall@1"] == 1.0
