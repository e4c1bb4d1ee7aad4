"""Embedders: cached, row-aligned with the ids asked for, and meaningful on tiny inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neo.data import Catalog
from neo.sids.config import EmbedderConfig
from neo.sids.embed import embed_items, encode_texts, join_hybrid, minilm_path, pull_to_groups, tfidf_embed


def cache_files() -> set[Path]:
    return set((Path(os.environ["NEO_CACHE_DIR"]) / "embeddings").glob("*.npy"))


def test_tfidf_separates_topics_and_is_cached(tiny_catalog_dir: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    ids = catalog.item_ids("product")
    cfg = EmbedderConfig(name="tfidf", dim=8, seed=3)
    before = cache_files()
    first, key = embed_items(catalog, ids, cfg)
    assert first.shape == (48, 8) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    written = cache_files() - before
    assert len(written) == 1 and key in next(iter(written)).name
    again, key_again = embed_items(catalog, ids, cfg)
    assert key_again == key and np.array_equal(first, again) and cache_files() - before == written
    same_topic = float(first[0] @ first[1])  # p0_0 and p0_1: astronomy
    other_topic = float(first[0] @ first[12])  # p1_0: chemistry
    assert same_topic > other_topic
    _, other_key = embed_items(catalog, ids[:10], cfg)
    assert other_key != key


def test_tfidf_handles_fewer_texts_than_dimensions() -> None:
    vectors = tfidf_embed(["red apple", "green apple", "blue sky"], dim=16)
    assert vectors.shape[0] == 3 and vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_collaborative_vectors_follow_co_interaction_and_links(tiny_catalog_dir: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    products, key = embed_items(
        catalog, catalog.item_ids("product"), EmbedderConfig(name="collaborative", dim=32)
    )
    assert products.shape == (48, 32)
    brands, _ = embed_items(catalog, catalog.item_ids("brand"), EmbedderConfig(name="collaborative", dim=32))
    assert np.allclose(
        np.linalg.norm(brands, axis=1), 1.0, atol=1e-5
    )  # brands inherit their products' vectors
    topic = np.repeat(np.arange(4), 12)
    sims = products @ products.T
    same = sims[topic[:, None] == topic[None, :]].mean()
    assert same > sims[topic[:, None] != topic[None, :]].mean()


def test_hybrid_joins_collaborative_and_text_and_places_cold_items_by_text(tiny_catalog_dir: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    ids = catalog.item_ids("product")
    cfg = EmbedderConfig(name="hybrid", dim=8, content="tfidf", content_weight=0.25)
    joined, key = embed_items(catalog, ids, cfg)
    collaborative, _ = embed_items(catalog, ids, EmbedderConfig(name="collaborative", dim=8))
    text, _ = embed_items(catalog, ids, EmbedderConfig(name="tfidf", dim=8))
    assert joined.shape == (48, 16) and np.allclose(np.linalg.norm(joined, axis=1), 1.0, atol=1e-5)
    warm = np.linalg.norm(collaborative, axis=1) > 0
    assert warm.sum() >= 40
    assert np.allclose(joined[warm, :8], np.sqrt(0.75) * collaborative[warm], atol=1e-5)
    assert np.allclose(joined[warm, 8:], np.sqrt(0.25) * text[warm], atol=1e-5)
    assert np.allclose(joined[~warm, 8:], text[~warm], atol=1e-5)
    _, other_key = embed_items(catalog, ids, EmbedderConfig(name="hybrid", dim=8, content_weight=0.5))
    assert other_key != key
    # an item without interactions has a zero collaborative vector: text alone places it
    cold = join_hybrid(np.zeros((1, 4), np.float32), np.array([[3.0, 4.0]], np.float32), 0.3)
    assert np.allclose(cold, [[0, 0, 0, 0, 0.6, 0.8]], atol=1e-6)


def test_pull_to_groups_exact_case() -> None:
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 2], [0, 0, 0]], np.float32)
    pulled = pull_to_groups(vectors, ["g", "g", None, "g"], weight=0.5)
    centre = np.array([0.5, 0.5, 0]) / np.linalg.norm([0.5, 0.5, 0])  # the cold row adds nothing
    expected_first = np.sqrt(0.5) * np.array([1, 0, 0]) + np.sqrt(0.5) * centre
    assert np.allclose(pulled[0], expected_first / np.linalg.norm(expected_first), atol=1e-6)
    assert np.allclose(pulled[2], [0, 0, 1])  # ungrouped: its own direction
    assert np.allclose(pulled[3], centre, atol=1e-6)  # cold: placed on its group's centre
    assert np.allclose(np.linalg.norm(pulled, axis=1), 1.0, atol=1e-6)


def test_group_by_pulls_siblings_together_and_changes_the_hash(tiny_catalog_dir: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    ids = catalog.item_ids("product")
    plain, key = embed_items(catalog, ids, EmbedderConfig(name="tfidf", dim=16))
    grouped, grouped_key = embed_items(catalog, ids, EmbedderConfig(name="tfidf", dim=16, group_by="category"))
    assert grouped_key != key
    category = np.array([int(p.split("_")[0][1:]) % 2 for p in ids])  # products of topic t link to c{t % 2}
    same = category[:, None] == category[None, :]

    def margin(x: np.ndarray) -> float:
        sims = x @ x.T
        return float(sims[same].mean() - sims[~same].mean())

    assert margin(grouped) > margin(plain) + 0.3


def test_group_by_rejects_unknown_or_unlinked_types(tiny_catalog_dir: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    with pytest.raises(ValueError, match="'show' is not an entity type"):
        embed_items(catalog, catalog.item_ids("product"), EmbedderConfig(name="tfidf", dim=8, group_by="show"))
    with pytest.raises(ValueError, match="no brand item .* links to a 'category'"):
        embed_items(catalog, catalog.item_ids("brand"), EmbedderConfig(name="tfidf", dim=8, group_by="category"),
                    "brand")
    with pytest.raises(ValueError, match="group_weight must lie in"):
        EmbedderConfig(group_by="brand", group_weight=1.0)


def test_hybrid_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="content_weight must lie in"):
        EmbedderConfig(name="hybrid", content_weight=1.0)
    with pytest.raises(ValueError, match="embedder.content must be one of"):
        EmbedderConfig(name="hybrid", content="file")


def test_file_embedder_reads_npy_with_ids_and_parquet(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    catalog = Catalog.load(tiny_catalog_dir)
    ids = catalog.item_ids("brand")
    matrix = np.arange(len(ids) * 3, dtype=np.float32).reshape(-1, 3)
    np.save(tmp_path / "brand.npy", matrix[::-1])
    (tmp_path / "brand.json").write_text(json.dumps(ids[::-1]))
    cfg = EmbedderConfig(name="file", path=str(tmp_path / "{type}.npy"), ids=str(tmp_path / "{type}.json"))
    got, _ = embed_items(catalog, ids, cfg, entity_type="brand")
    assert np.array_equal(got, matrix)
    pq.write_table(pa.table({"id": ids, "embedding": matrix.tolist()}), tmp_path / "brand.parquet")
    got, _ = embed_items(
        catalog, ids, EmbedderConfig(name="file", path=str(tmp_path / "brand.parquet")), "brand"
    )
    assert np.array_equal(got, matrix)
    pq.write_table(pa.table({"id": ids[:2], "embedding": matrix[:2].tolist()}), tmp_path / "part.parquet")
    with pytest.raises(ValueError, match=r"part.parquet: no embedding for 2 item\(s\)"):
        embed_items(catalog, ids, EmbedderConfig(name="file", path=str(tmp_path / "part.parquet")), "brand")


def test_unknown_embedder_is_rejected() -> None:
    with pytest.raises(ValueError, match="embedder.name must be one of"):
        EmbedderConfig(name="word2vec")


@pytest.mark.slow  # importing sentence-transformers and loading the model: ~10 s idle, minutes on a busy box
def test_minilm_loads_offline_and_ranks_paraphrases_close() -> None:
    vectors = encode_texts(
        ["a cordless power drill", "an electric drill for screws", "organic green tea"], minilm_path()
    )
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
