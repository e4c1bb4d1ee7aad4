"""Recommendation baselines: exact rankings on hand-made histories, and SASRec learning a pattern."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neo.eval.baselines.cooccurrence import Cooccurrence
from neo.eval.baselines.popularity import Popularity
from neo.eval.baselines.sasrec import SASRec, SASRecConfig, _length_bucketed_batches
from neo.eval.metrics import rank_metrics

ITEMS = ["a", "b", "c", "d", "e"]


def test_popularity_ranks_by_training_count_then_index() -> None:
    model = Popularity(ITEMS).fit([["c", "c", "b"], ["b", "c", "e"], ["zzz-not-this-type"]])
    assert model.recommend([[], ["a"]], k=4) == [["c", "b", "e", "a"], ["c", "b", "e", "a"]]
    assert model.rank([["a"]] * 3, ["c", "d", "unknown"]).tolist() == [0, 4, -1]


def test_recommend_excludes_and_never_returns_more_than_the_catalog() -> None:
    model = Popularity(ITEMS).fit([["c", "c", "b"]])
    assert model.recommend([["x"]], k=10, exclude=[["c", "a"]]) == [["b", "d", "e"]]


def test_rank_with_exclusion_skips_excluded_items_and_misses_excluded_targets() -> None:
    model = Popularity(ITEMS).fit([["c", "c", "b"]])
    ranks = model.rank([["c"], ["c"]], ["b", "c"], exclude=[["c"], ["c"]])
    assert ranks.tolist() == [0, -1]


def test_first_order_cooccurrence_is_a_markov_chain() -> None:
    model = Cooccurrence(ITEMS, window=1, recency_decay=0.0, symmetric_weight=0.0)
    model.fit([["a", "b"], ["a", "b"], ["a", "c"], ["d", "e"]])
    scores = model.score(model.items.encode_all([["d", "a"]]))[0]
    # Row a: b 2/3, c 1/3; the popularity prior only breaks ties (b, a seen twice; c, d, e once).
    assert scores[1].item() == pytest.approx(2 / 3, abs=1e-5)
    assert scores[2].item() == pytest.approx(1 / 3, abs=1e-5)
    assert model.recommend([["d", "a"]], k=5) == [["b", "c", "a", "d", "e"]]


def test_cooccurrence_decays_older_history_and_falls_back_to_popularity() -> None:
    model = Cooccurrence(ITEMS, window=1, recency_decay=0.5, symmetric_weight=0.0)
    model.fit([["a", "b"], ["c", "d"], ["e", "e", "e"]])
    # Last item c -> d weight 1, earlier a -> b weight 0.5.
    assert model.recommend([["a", "c"]], k=2) == [["d", "b"]]
    # No known transitions from e: pure popularity (e is the most frequent).
    assert model.recommend([["e"]], k=2) == [["e", "a"]]


def test_length_buckets_cover_every_row_once() -> None:
    lengths = np.array([1, 9, 2, 8, 3, 7, 4])
    batches = _length_bucketed_batches(lengths, 3, torch.Generator().manual_seed(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    # Batches are consecutive runs of the length-sorted rows: no batch straddles another.
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(high <= next_low for (_, high), (next_low, _) in zip(spans, spans[1:], strict=False))
    assert [len(b) for b in batches].count(3) == 2


def _cyclic_histories(n_items: int, n_users: int, length: int, seed: int) -> list[list[str]]:
    """Each user walks the items in a fixed cycle from a random start: next = previous + 1 (mod n)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    return [[f"i{(s + t) % n_items}" for t in range(length)] for s in starts]


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))],
)
def test_sasrec_learns_a_sequential_pattern_that_popularity_cannot(device: str) -> None:
    n_items = 20
    items = [f"i{i}" for i in range(n_items)]
    sequences = _cyclic_histories(n_items, 160, 7, seed=0)
    train = [s[:-2] for s in sequences]
    valid = (train, [s[-2] for s in sequences])
    test_histories, test_targets = [s[:-1] for s in sequences], [s[-1] for s in sequences]
    config = SASRecConfig(
        hidden=32, blocks=1, heads=1, max_len=8, dropout=0.1, lr=1e-2, batch_size=32, max_epochs=8, patience=2,
        device=device,
    )
    sasrec = SASRec(items, config, progress=False).fit(train, valid)
    popularity = Popularity(items).fit(train)
    learned = rank_metrics(sasrec.rank(test_histories, test_targets), ks=(1,))
    baseline = rank_metrics(popularity.rank(test_histories, test_targets), ks=(1,))
    assert learned["recall@1"] > 0.9 > 0.2 > baseline["recall@1"]
    assert sasrec.history and sasrec.summary()["best_epoch"] >= 1
    assert sasrec.recommend([["i3", "i4"]], k=1) == [["i5"]]


def test_sasrec_keeps_the_best_validation_epoch() -> None:
    items = [f"i{i}" for i in range(10)]
    sequences = _cyclic_histories(10, 40, 6, seed=1)
    train = [s[:-2] for s in sequences]
    sasrec = SASRec(
        items, SASRecConfig(hidden=16, blocks=1, heads=1, max_epochs=3, patience=1), progress=False
    )
    sasrec.fit(train, (train, [s[-2] for s in sequences]))
    best = max(r["valid_ndcg@10"] for r in sasrec.history)
    again = sasrec.evaluate(sasrec.items.encode_all(train), sasrec.items.encode([s[-2] for s in sequences]))
    assert again["ndcg@10"] == pytest.approx(best)


def test_sasrec_config_checks_shapes() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        SASRecConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match=r"device must be auto, cpu or cuda\[:N\], got 'tpu'"):
        SASRecConfig(device="tpu")
    assert SASRecConfig(device="cuda:1").device == "cuda:1"  # checked by name: no GPU needed at config time
