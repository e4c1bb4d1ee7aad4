"""A tiny three-type catalog written to a temp dir, and clustered synthetic embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

TOPICS = {
    "astronomy": "telescope lens star galaxy orbit",
    "chemistry": "beaker acid reagent flask titration",
    "electronics": "resistor capacitor voltage circuit solder",
    "woodwork": "chisel plane oak saw joinery",
}


def write_catalog(root: Path, products_per_topic: int = 12, with_popularity: bool = True) -> Path:
    """Products in four topics, one brand per topic, two categories; users browse within a topic."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items, interactions = [], []
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        items.append({"id": f"b{t}", "type": "brand", "title": f"{topic} works", "text": f"maker of {words}"})
        for p in range(products_per_topic):
            picked = " ".join(rng.choice(vocab, size=3))
            items.append(
                {
                    "id": f"p{t}_{p}",
                    "type": "product",
                    "title": f"{topic} {picked}",
                    "text": f"a {words} item {p}",
                    "links": {"brand": [f"b{t}"], "category": [f"c{t % 2}"]},
                    "popularity": float((p * 7 + t) % 11) if with_popularity else None,
                }
            )
    items += [
        {"id": "c0", "type": "category", "title": "science", "text": "lab and sky"},
        {"id": "c1", "type": "category", "title": "making", "text": "tools and parts"},
    ]
    users = []
    for u in range(40):
        topic = u % len(TOPICS)
        users.append({"id": f"u{u}"})
        for step, p in enumerate(rng.choice(products_per_topic, size=6, replace=False)):
            interactions.append({"user": f"u{u}", "item": f"p{topic}_{p}", "timestamp": step})
    for name, rows in (("items", items), ("users", users), ("interactions", interactions)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "dataset.yaml").write_text(
        "name: tiny\nentity_types: [product, brand, category]\nsplit: leave_one_out\n"
    )
    return root


@pytest.fixture()
def tiny_catalog_dir(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "tiny")


def clustered(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.1) -> np.ndarray:
    """Gaussian blobs around random unit centres: embeddings with real structure to quantise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(clusters, size=n)
    return (centres[labels] + spread * rng.standard_normal((n, dim))).astype(np.float32)
