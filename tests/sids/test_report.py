"""Quality numbers against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neo.sids.report import level_usage, mean_pair_similarity, quality_report


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(1, 4), st.integers(0, 10_000))
def test_pair_similarity_matches_brute_force(n: int, groups: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    unit = rng.standard_normal((n, 5)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    labels = rng.integers(groups, size=n)
    pairs = [(i, j) for i, j in itertools.permutations(range(n), 2) if labels[i] == labels[j]]
    expected = np.mean([unit[i] @ unit[j] for i, j in pairs]) if pairs else None
    got = mean_pair_similarity(unit, labels)
    assert (got is None) if expected is None else got == pytest.approx(expected, abs=1e-5)


def test_level_usage_exact() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 0]])
    utilisation, perplexity = level_usage(codes, (4, 2))
    assert utilisation == [0.5, 1.0]
    assert perplexity[0] == pytest.approx(2.0)
    assert perplexity[1] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))


def test_report_fields() -> None:
    before = np.array([[0, 0], [0, 0], [1, 0]])
    after = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0]])
    emb = np.array([[1, 0], [1, 0.1], [0, 1]], np.float32)
    report = quality_report(before, after, (2, 1, 2), emb, 1.2345, source="built")
    assert report["collision_rate_before"] == pytest.approx(1 / 3) and report["collision_rate_after"] == 0.0
    assert report["prefix_coherence_l1"] == pytest.approx(float(emb[0] @ emb[1] / np.linalg.norm(emb[1])))
    assert report["prefix_coherence_l1"] > report["random_pair_similarity"]
    assert report["seconds"] == 1.234 and report["items"] == 3 and report["source"] == "built"
