"""The report's tables: neo vs side-by-side baselines, and published figures shown apart from them."""

from __future__ import annotations

import pytest
from neo.eval.report import comparison_rows, published_rows, summary_table, write_report
from neo.recipes.evaluate import published_metrics

METRICS = {
    "rec/product/recall@10": 0.08,
    "rec/product/ndcg@10": 0.04,
    "baseline/sasrec/rec/product/recall@10": 0.10,
    "baseline/sasrec/rec/product/ndcg@10": 0.05,
    "baseline/popularity/rec/product/ndcg@10": 0.01,
}


def test_comparison_rows_pair_neo_with_each_baseline() -> None:
    rows = comparison_rows(METRICS, "rec", ("popularity", "sasrec"))
    assert rows == [
        ("product", "recall@10", {"neo": 0.08, "popularity": None, "sasrec": 0.10}),
        ("product", "ndcg@10", {"neo": 0.04, "popularity": 0.01, "sasrec": 0.05}),
    ]


def test_published_figures_become_their_own_table() -> None:
    metrics = {**METRICS, **published_metrics({"TIGER": {"rec/product/ndcg@10": 0.0384},
                                               "S3-Rec": {"rec/product/ndcg@10": 0.0327,
                                                          "rec/product/recall@10": 0.0647}})}
    assert metrics["published/TIGER/rec/product/ndcg@10"] == pytest.approx(0.0384)
    assert published_rows(metrics) == [
        ("product", "ndcg@10", {"neo": 0.04, "TIGER": 0.0384, "S3-Rec": 0.0327}),
        ("product", "recall@10", {"neo": 0.08, "TIGER": None, "S3-Rec": 0.0647}),
    ]
    table = summary_table(metrics)
    assert "Published figures on this split (not side by side)" in table
    assert "| product | ndcg@10 | 0.0400 | 0.0384 | 0.0327 | 0.0384 | 1.04x |" in table
    assert "Published" not in summary_table(METRICS)


def test_published_metrics_reject_bad_entries() -> None:
    assert published_metrics(None) == {}
    with pytest.raises(ValueError, match=r"eval.published.TIGER.rec/product/ndcg@10: expected a number"):
        published_metrics({"TIGER": {"rec/product/ndcg@10": "high"}})
    with pytest.raises(ValueError, match="must not contain '/'"):
        published_metrics({"a/b": {"rec/product/ndcg@10": 0.1}})


def test_report_is_written_with_the_published_section(tmp_path) -> None:
    metrics = {**METRICS, **published_metrics({"TIGER": {"rec/product/ndcg@10": 0.0384}})}
    path = write_report(tmp_path, "beauty", metrics, {"recommend": "a; b"}, {}, tmp_path / "absent.json")
    text = path.read_text()
    assert "## Published figures on this split" in text
    assert "| type | metric | neo | TIGER | best baseline | neo / best |" in text


def test_the_model_alone_column_is_neos_own_not_a_baseline() -> None:
    metrics = {**METRICS, "model_alone/rec/product/ndcg@10": 0.03, "model_alone/rec/product/recall@10": 0.06}
    rows = comparison_rows(metrics, "rec", ("popularity", "sasrec"))
    assert rows[1] == ("product", "ndcg@10", {"neo": 0.04, "model alone": 0.03, "popularity": 0.01, "sasrec": 0.05})
    table = summary_table(metrics)
    assert "| type | metric | neo | model alone | popularity | sasrec | best baseline | neo / best |" in table
    # the best baseline is sasrec's 0.05 even where the model alone would be the larger value
    low = {**METRICS, "model_alone/rec/product/ndcg@10": 0.09}
    assert "| product | ndcg@10 | 0.0400 | 0.0900 | 0.0100 | 0.0500 | 0.0500 | 0.80x |" in summary_table(low)


def test_the_report_says_when_neos_index_weighs_titles_more_than_bm25s(tmp_path) -> None:
    search = {"search/product/ndcg@10": 0.87, "baseline/bm25/search/product/ndcg@10": 0.81}
    text = write_report(tmp_path, "s", {**search, "search_index/title_weight": 8}, {}, {}, tmp_path / "x").read_text()
    assert "counts each item's title 8 times (fit on the training queries" in text
    plain = write_report(tmp_path, "s", {**search, "search_index/title_weight": 1}, {}, {}, tmp_path / "x").read_text()
    assert "counts each item's title" not in plain


def test_neo_over_best_carries_the_paired_interval_against_that_baseline(tmp_path) -> None:
    metrics = {**METRICS, "vs/sasrec/rec/product/ndcg@10": 0.8, "vs/sasrec/rec/product/ndcg@10/low": 0.71,
               "vs/sasrec/rec/product/ndcg@10/high": 0.9,
               # an interval against a baseline that is not the best is not the one shown
               "vs/popularity/rec/product/ndcg@10/low": 3.0, "vs/popularity/rec/product/ndcg@10/high": 5.0}
    table = summary_table(metrics)
    assert "| product | ndcg@10 | 0.0400 | 0.0100 | 0.0500 | 0.0500 | 0.80x [0.71, 0.90] |" in table
    assert "| product | recall@10 | 0.0800 | - | 0.1000 | 0.1000 | 0.80x |" in table  # none computed
    assert "paired bootstrap" in table
    assert "paired bootstrap" not in summary_table(METRICS)
    assert "0.80x [0.71, 0.90]" in write_report(tmp_path, "s", metrics, {}, {}, tmp_path / "x").read_text()
