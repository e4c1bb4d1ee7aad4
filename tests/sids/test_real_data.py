"""Real data (slow): MiniLM SIDs for Amazon 2018 Scientific, a table per entity type."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neo.data import Catalog
from neo.data.convert import convert
from neo.sids.build import build_sid_tables


@pytest.mark.slow
def test_scientific_minilm_sids_are_unique_coherent_and_cached(shared_data: Path, tmp_path: Path) -> None:
    """Slow once (MiniLM on ~6,800 texts: ~4 min idle, 30 min on a busy 2-core box); set NEO_CACHE_DIR to a
    lasting folder (e.g. ~/.cache/neo) and reruns read the cached embeddings."""
    dataset = convert("amazon", shared_data / "amazon18_scientific", tmp_path / "scientific")
    catalog = Catalog.load(dataset)
    cfg = {
        "embedder": {"name": "minilm"},
        "quantizer": {"levels": 3, "codebook_size": 256},
        "collisions": "disambiguate",
    }
    tables, report = build_sid_tables(catalog, cfg, tmp_path / "run")
    assert set(tables) == {"product", "brand", "category"}
    product = report["product"]
    assert product["items"] == 4344 and product["collision_rate_after"] == 0.0
    assert product["prefix_coherence_l1"] > product["random_pair_similarity"] + 0.2
    for name in ("brand", "category"):
        assert report[name]["collision_rate_after"] == 0.0
        assert report[name]["prefix_coherence_l1"] > report[name]["random_pair_similarity"]
    cache = Path(os.environ["NEO_CACHE_DIR"]) / "embeddings"
    for table in tables.values():  # every type's MiniLM vectors are cached under the hash the table records
        assert (cache / f"minilm-{table.meta['embedding_hash']}.npy").exists()
