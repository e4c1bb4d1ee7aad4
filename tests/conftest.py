"""Shared fixtures: real data (skipped when absent) and a small generated demo world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need real data skip on a fresh clone without it."""
    if not (SHARED_DATA / "amazon18_scientific").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep Arrow/embedding caches of the test run out of the user's ~/.cache/neo."""
    os.environ.setdefault("NEO_CACHE_DIR", str(tmp_path_factory.mktemp("neo-cache")))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world (the embedded synthetic catalog), generated once per test session."""
    from neo.data.world import generate_world

    out = tmp_path_factory.mktemp("demo-world")
    generate_world(out, seed=0, scale="tiny")
    return out


@pytest.fixture(scope="session")
def random_checkpoint(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A loadable neo checkpoint: the tiny preset with random weights and random SIDs over the demo world.

    For tests of serving and decoding plumbing: the constrained decoder keeps every item valid whatever
    the weights, so no training is needed (neo.serving.tiny.write_random_checkpoint).
    """
    from neo.serving.tiny import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("random-checkpoint"), demo_dir, seed=0)


@pytest.fixture(scope="session")
def nested_checkpoint(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight checkpoint whose episodes have nested codes (one free rank per show) and whose
    shows carry fitted codebooks (random ones over 8-wide embeddings): both ways of adding new items."""
    from collections import Counter

    import numpy as np

    from neo.data import Catalog
    from neo.serving.tiny import write_random_checkpoint
    from neo.sids.config import ParentConfig
    from neo.sids.nest import nested_codes
    from neo.sids.quantize import ResidualQuantizer
    from neo.sids.table import SIDS_DIR, SIDTable, codebooks_path, load_tables, save_tables

    catalog = Catalog.load(demo_dir)
    episodes = catalog.item_ids("episode")
    family = max(Counter(catalog.links[e]["show"][0] for e in episodes).values())
    out = write_random_checkpoint(
        tmp_path_factory.mktemp("nested"), demo_dir, codebook_sizes={"episode": (16, 16, 16, family + 1)}
    )
    tables = load_tables(out / SIDS_DIR)
    codes, _ = nested_codes(catalog, episodes, ParentConfig("show", "episode_number"), tables["show"])
    tables["episode"] = SIDTable(
        "episode",
        episodes,
        codes,
        (16, 16, 16, family + 1),
        {"source": "nested", "config": {"parent": {"type": "show"}}},
    )
    save_tables(out / SIDS_DIR, tables)
    rng = np.random.default_rng(0)
    codebooks = [rng.normal(size=(16, 8)).astype(np.float32) for _ in range(3)]
    ResidualQuantizer("random", codebooks).save(codebooks_path(out / SIDS_DIR, "show"))
    return out
