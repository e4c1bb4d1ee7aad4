"""Building tables from a catalog: reload, determinism, per-type config, new items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neo.data import Catalog
from neo.sids.build import build_sid_tables, build_type_table, encode_new_items, load_quantizer
from neo.sids.config import TypeSIDConfig, type_config
from neo.sids.table import SIDTable, load_tables

from .conftest import clustered

FAST = {"embedder": {"name": "tfidf", "dim": 16}, "quantizer": {"levels": 2, "codebook_size": 8, "niter": 10}}


def test_tables_reload_identically_and_report_is_written(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    tables, report = build_sid_tables(catalog, FAST, tmp_path / "run")
    assert set(tables) == {"product", "brand", "category"}
    loaded = load_tables(tmp_path / "run" / "sids")
    for name, table in tables.items():
        assert loaded[name].item_ids == table.item_ids == catalog.item_ids(name)
        assert np.array_equal(loaded[name].codes, table.codes) and loaded[name].codes.dtype == np.int32
        assert loaded[name].version == table.version and loaded[name].meta == json.loads(
            json.dumps(table.meta)
        )
        assert len({tuple(c) for c in table.codes.tolist()}) == len(table)
    on_disk = json.loads((tmp_path / "run" / "sids" / "report.json").read_text())
    for key in (
        "items",
        "collision_rate_before",
        "collision_rate_after",
        "prefix_coherence_l1",
        "random_pair_similarity",
        "utilization",
        "seconds",
    ):
        assert key in on_disk["product"]
    assert on_disk["product"]["collision_rate_after"] == 0.0
    assert on_disk["product"]["prefix_coherence_l1"] > on_disk["product"]["random_pair_similarity"]
    assert tables["product"].meta["config"]["embedder"]["name"] == "tfidf"
    assert (tmp_path / "run" / "sids" / "product.codebooks.npz").exists()


def test_same_config_gives_the_same_version(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    first, _ = build_sid_tables(catalog, FAST, tmp_path / "a")
    second, _ = build_sid_tables(catalog, FAST, tmp_path / "b")
    assert {t: x.version for t, x in first.items()} == {t: x.version for t, x in second.items()}


def test_per_type_overrides_and_type_selection(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    cfg = {
        **FAST,
        "types": ["product", "brand"],
        "collisions": "popularity",
        "overrides": {
            "brand": {"quantizer": {"levels": 1, "codebook_size": 2}, "collisions": "disambiguate"}
        },
    }
    assert type_config(cfg, "brand").quantizer.sizes == (2,)
    assert type_config(cfg, "product").quantizer.sizes == (8, 8)
    tables, _ = build_sid_tables(Catalog.load(tiny_catalog_dir), cfg, tmp_path)
    assert set(tables) == {"product", "brand"}
    assert tables["product"].levels == 2  # popularity adds no level
    assert tables["brand"].codebook_sizes == (2, 2)  # 4 brands in 2 cells of 2, numbered 0..1


def test_config_errors_name_the_bad_key() -> None:
    with pytest.raises(ValueError, match=r"type 'product', quantizer: unknown key\(s\) \['levles'\]"):
        type_config({"quantizer": {"levles": 3}}, "product")
    with pytest.raises(ValueError, match="collisions must be one of"):
        type_config({"collisions": "first"}, "product")
    with pytest.raises(ValueError, match="codebook_size must be"):
        type_config({"quantizer": {"levels": 3, "codebook_size": [8, 8]}}, "product")


@pytest.mark.parametrize("policy", ["disambiguate", "popularity"])
def test_new_items_get_free_codes_without_moving_old_ones(policy: str, tmp_path: Path) -> None:
    x = clustered(200, 16, 10)
    ids = [f"i{n}" for n in range(len(x))]
    cfg = TypeSIDConfig(
        quantizer=type_config({"quantizer": {"levels": 2, "codebook_size": 16}}, "t").quantizer,
        collisions=policy,
    )
    table, model, _ = build_type_table("t", ids, x, cfg, None, "hash")
    model.save(tmp_path / "t.codebooks.npz")
    model = load_quantizer(tmp_path, "t")
    new = np.concatenate([x[:2], clustered(5, 16, 3, seed=7)])  # two exact copies of old items: must collide
    new_ids = [f"n{n}" for n in range(len(new))]
    result = encode_new_items(model, new, table, new_ids)
    assert {"n0", "n1"} <= set(result.collided)
    assert np.array_equal(result.table.codes[: len(table)], table.codes)
    assert len({tuple(c) for c in result.table.codes.tolist()}) == len(result.table)
    assert np.array_equal(result.raw_codes[:2], model.encode(x[:2]))
    if policy == "disambiguate":  # a copy keeps the semantic prefix and takes the next free number
        group = int((table.codes[:, :2] == table.codes[0, :2]).all(axis=1).sum())
        if group < table.codebook_sizes[-1]:
            assert result.codes[0].tolist() == [*table.codes[0, :2].tolist(), group]
    elif (table.codes[:, 0] == table.codes[0, 0]).sum() < table.codebook_sizes[1] - 2:
        assert (
            result.codes[0, 0] == table.codes[0, 0]
        )  # a copy stays under its level-1 prefix when there is room
    uncollided = [n for n, i in enumerate(new_ids) if i not in result.collided]
    assert np.array_equal(result.codes[uncollided, : model.levels], result.raw_codes[uncollided])
    reloaded = SIDTable(
        result.table.entity_type, result.table.item_ids, result.table.codes, result.table.codebook_sizes
    )
    assert reloaded.item_of(result.codes[3]) == "n3"
    with pytest.raises(ValueError, match="already have SIDs"):
        encode_new_items(model, x[:1], table, ["i0"])
