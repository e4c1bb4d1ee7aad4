"""Plots are real PNG files built from the data they are given, and say clearly when there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from neo.eval.plots import (
    codebook_utilization,
    comparison_bars,
    comparison_table,
    loss_curves,
    read_loss_curve,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_comparison_table_from_flat_metrics() -> None:
    metrics = {
        "rec/product/ndcg@10": 0.07,
        "baseline/sasrec/rec/product/ndcg@10": 0.06,
        "baseline/bm25/search/brand/ndcg@10": 0.3,
        "rec/product/recall@10": 0.1,
        "seconds": 3.0,
    }
    assert comparison_table(metrics) == {
        "rec/product": {"neo": 0.07, "sasrec": 0.06},
        "search/brand": {"bm25": 0.3},
    }


def test_comparison_bars_writes_a_png(tmp_path: Path) -> None:
    out = comparison_bars(
        {"product": {"neo": 0.07, "sasrec": 0.06, "popularity": None}, "brand": {"neo": 0.2, "sasrec": 0.18}},
        tmp_path / "bars.png",
        title="rec",
    )
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_loss_curves_read_step_and_loss_only(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(r)
            for r in [{"step": 1, "loss": 4.0}, {"step": 2, "eval": 1}, {"step": 3, "loss": 2.5}]
        )
        + "\n"
    )
    steps, losses = read_loss_curve(log)
    assert steps.tolist() == [1.0, 3.0] and losses.tolist() == [4.0, 2.5]
    assert loss_curves({"align": log}, tmp_path / "loss.png").read_bytes().startswith(PNG_MAGIC)


def test_loss_curves_name_the_broken_line(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 4.0}\n{not json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        loss_curves({"align": log}, tmp_path / "loss.png")


def test_codebook_utilization_png(tmp_path: Path) -> None:
    out = codebook_utilization({"product": [1.0, 0.8, 0.5], "brand": [0.9, 0.4]}, tmp_path / "sid.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no codebook"):
        codebook_utilization({}, tmp_path / "empty.png")
