"""Exact values of every metric on cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neo.eval.metrics import (
    catalog_validity,
    latency_summary,
    normalise_term,
    paired_comparison,
    paired_ratio,
    paired_rec,
    paired_search,
    rank_gains,
    rank_metrics,
    rank_metrics_by_type,
    ranks_from_scores,
    set_metrics,
    steerability,
    term_overlap,
)

from neo.sids.table import SIDTable
from neo.vocab import SIDVocab


def test_ranks_break_ties_by_lower_index() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0]])
    assert ranks_from_scores(scores, [3, 2]).tolist() == [1, 2]
    assert ranks_from_scores(scores, [1, 0]).tolist() == [0, 0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.data())
def test_ranks_agree_with_a_stable_sort(values: list[int], data: st.DataObject) -> None:
    target = data.draw(st.integers(0, len(values) - 1))
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    rank = ranks_from_scores(torch.tensor([values], dtype=torch.float32), [target])[0]
    assert rank == order.index(target)


def test_rank_metrics_hand_computed() -> None:
    # ranks 0, 1, 5, 20 (0-based) and one unranked target.
    got = rank_metrics([0, 1, 5, 20, -1], ks=(1, 5, 10))
    assert got["recall@1"] == pytest.approx(1 / 5)
    assert got["recall@5"] == pytest.approx(2 / 5)
    assert got["recall@10"] == pytest.approx(3 / 5)
    assert got["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 5)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(7)) / 5)
    assert got["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 21) / 5)


def test_rank_metrics_by_type_splits_examples() -> None:
    got = rank_metrics_by_type([0, 3, 10], ["product", "brand", "product"], ks=(5,))
    assert got["product"] == {"recall@5": 0.5, "ndcg@5": 0.5, "mrr": pytest.approx((1 + 1 / 11) / 2), "n": 2}
    assert got["brand"]["recall@5"] == 1.0 and got["brand"]["ndcg@5"] == pytest.approx(1 / math.log2(5))


def test_set_metrics_hand_computed() -> None:
    ranked = [["a", "x", "b", "y"], ["y", "z", "c"]]
    relevant = [{"a", "b", "c"}, {"c"}]
    got = set_metrics(ranked, relevant, ks=(2, 3))
    assert got["recall@2"] == pytest.approx((1 / 3 + 0) / 2)
    assert got["recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    assert got["hr@2"] == pytest.approx(0.5)
    ideal3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert got["ndcg@3"] == pytest.approx(((1 + 1 / math.log2(4)) / ideal3 + (1 / math.log2(4)) / 1) / 2)
    assert got["ndcg@2"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 0) / 2)
    assert got["mrr"] == pytest.approx((1 + 1 / 3) / 2)


def test_set_metrics_perfect_ranking_scores_one() -> None:
    got = set_metrics([["a", "b"]], [["b", "a"]], ks=(1, 2, 10))
    assert got["ndcg@1"] == got["ndcg@2"] == got["ndcg@10"] == got["recall@2"] == 1.0


def test_gains_are_the_metrics_per_example() -> None:
    gains = rank_gains([0, 1, 20, -1], ks=(10,))
    np.testing.assert_allclose(gains["ndcg@10"], [1, 1 / math.log2(3), 0, 0])
    np.testing.assert_allclose(gains["mrr"], [1, 1 / 2, 1 / 21, 0])
    assert rank_metrics([0, 1, 20, -1], ks=(10,))["ndcg@10"] == pytest.approx(gains["ndcg@10"].mean())


def test_paired_ratio_is_exact_where_every_resample_agrees() -> None:
    # neo doubles every example's gain: each resample's ratio, so the interval, is exactly 2
    assert paired_ratio(np.array([0.2, 0.4, 1.0]), np.array([0.1, 0.2, 0.5])) == pytest.approx((2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="paired gains must be two equal, non-empty 1-D arrays"):
        paired_ratio(np.ones(3), np.ones(2))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=40))
def test_paired_interval_holds_the_ratio_and_swapping_inverts_it(pairs: list[tuple[int, int]]) -> None:
    ours = np.array([a for a, _ in pairs], dtype=float) + 1
    theirs = np.array([b for _, b in pairs], dtype=float) + 1
    ratio, low, high = paired_ratio(ours, theirs)
    assert low <= ratio * (1 + 1e-9) and ratio <= high * (1 + 1e-9)
    inverse = paired_ratio(theirs, ours)
    assert inverse[0] == pytest.approx(1 / ratio)
    assert inverse[1] == pytest.approx(1 / high, rel=0.05) and inverse[2] == pytest.approx(1 / low, rel=0.05)


def test_a_large_sample_separates_a_real_gain_from_a_tie() -> None:
    rng = np.random.default_rng(1)
    theirs = rng.random(4000)
    assert paired_ratio(theirs * 1.05, theirs)[1] > 1  # 5% better on every user: the interval excludes 1
    _, low, high = paired_ratio(rng.permutation(theirs), theirs)  # the same gains, shuffled across users
    assert low < 1 < high


def test_paired_comparisons_use_the_users_and_queries_both_systems_ranked() -> None:
    # per n: u<n>a and u<n>a2 ranked by both systems, u<n>b by neo only, u<n>c by the baseline only
    neo = {f"u{n}{part}": rank for n in range(30) for part, rank in (("a", 0), ("a2", 1), ("b", 30))}
    cooc = {f"u{n}{part}": rank for n in range(30) for part, rank in (("a", 1), ("a2", 1), ("c", 0))}
    got = paired_rec({"neo/product": neo, "cooc/product": cooc, "cooc/brand": {"u0a": 0}}, ks=(10,))
    # neo ranked no brand: no comparison there
    assert set(got) == {f"vs/cooc/rec/product/{m}{end}" for m in ("recall@10", "ndcg@10") for end in ("", "/low", "/high")}
    assert got["vs/cooc/rec/product/ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / (2 / math.log2(3)))
    assert got["vs/cooc/rec/product/recall@10"] == 1.0
    searched = paired_search({"neo/product": [["a"], ["b"]] * 15, "bm25/product": [["a"], ["c"]] * 15},
                             {"product": [{"a"}, {"b"}] * 15}, ks=(10,))
    assert searched["vs/bm25/search/product/recall@10"] == 2.0


def test_too_few_examples_get_a_ratio_in_the_report_but_no_interval() -> None:
    few = paired_search({"neo/artist": [["a"], ["b"]], "bm25/artist": [["a"], ["c"]]}, {"artist": [{"a"}, {"b"}]})
    assert few == {}


def test_a_comparison_has_an_interval_from_min_paired_examples_and_no_ratio_to_zero() -> None:
    assert paired_comparison(np.array([1.0, 0.0]), np.array([0.5, 0.0])) == (2.0, None, None)
    assert paired_comparison(np.array([1.0, 0.0]), np.zeros(2)) == (None, None, None)
    ratio, low, high = paired_comparison(np.ones(30), np.full(30, 0.5))
    assert (ratio, low, high) == (2.0, 2.0, 2.0)


@pytest.fixture
def vocab_and_tables() -> tuple[SIDVocab, dict[str, SIDTable]]:
    vocab = SIDVocab(100, {"product": [4, 4], "brand": [3]})
    tables = {
        "product": SIDTable("product", ["p0", "p1"], np.array([[0, 1], [2, 3]]), [4, 4]),
        "brand": SIDTable("brand", ["b0"], np.array([[2]]), [3]),
    }
    return vocab, tables


def test_catalog_validity_counts_each_failure(vocab_and_tables) -> None:
    vocab, tables = vocab_and_tables
    valid = vocab.span_ids("product", [0, 1])
    unknown = vocab.span_ids("product", [1, 1])
    brand_valid = vocab.span_ids("brand", [2])
    wrong_level = [
        vocab.open_id("product"),
        vocab.code_id("product", 1, 0),
        vocab.code_id("product", 0, 0),
        vocab.close_id("product"),
    ]
    mixed_type = [
        vocab.open_id("product"),
        vocab.code_id("brand", 0, 0),
        vocab.code_id("product", 1, 0),
        vocab.close_id("product"),
    ]
    too_short = [vocab.open_id("product"), vocab.code_id("product", 0, 2), vocab.close_id("product")]
    text_inside = [vocab.open_id("brand"), 5, vocab.close_id("brand")]
    unclosed = [vocab.open_id("brand"), vocab.code_id("brand", 0, 2)]
    stray = [7, vocab.code_id("product", 0, 1), 8, vocab.close_id("brand")]
    outputs = [
        [1, 2, *valid, 3, *brand_valid],
        unknown,
        wrong_level,
        mixed_type,
        too_short,
        text_inside,
        unclosed,
        stray,
    ]
    report = catalog_validity(outputs, vocab, tables)
    assert report.as_dict() == {
        "spans": 8,
        "valid_items": 2,
        "unknown_items": 1,
        "malformed_spans": 5,
        "stray_sid_tokens": 2,
        "invalid_rate": 0.75,
    }


def test_catalog_validity_of_clean_output_is_zero(vocab_and_tables) -> None:
    vocab, tables = vocab_and_tables
    report = catalog_validity([vocab.span_ids("product", [2, 3]) + [10, 11]], vocab, tables)
    assert (report.valid_items, report.invalid_rate, report.stray_sid_tokens) == (1, 0.0, 0)


def test_steerability_hand_computed() -> None:
    got = steerability(
        ["show", "show", "artist", "artist"],
        [["show", "show"], ["show", "episode"], [], ["artist"]],
        requested_counts=[2, 2, 1, 1],
        format_ok=[True, False, True, True],
    )
    assert got == {"type_accuracy": 0.5, "count_accuracy": 0.75, "format_accuracy": 0.75}


def test_normalise_term() -> None:
    assert normalise_term("  Sci-Fi  ") == normalise_term("sci fi") == "sci fi"
    assert normalise_term("Café") == "cafe"


def test_term_overlap_hand_computed() -> None:
    got = term_overlap([["Jazz", "true crime", "news"], [], ["x"]], [["jazz", "True-Crime"], ["comedy"], []])
    # user 1: p 2/3, r 1, f1 0.8; user 2: all 0; user 3 skipped (no ground truth).
    assert got == {"precision": pytest.approx(1 / 3), "recall": 0.5, "f1": pytest.approx(0.4), "n": 2}


def test_latency_summary() -> None:
    got = latency_summary([0.001 * i for i in range(1, 101)])
    assert got["p50_ms"] == pytest.approx(50.5)
    assert got["p99_ms"] == pytest.approx(99.01)
    assert got["max_ms"] == pytest.approx(100.0) and got["n"] == 100
    assert latency_summary([]) == {}
