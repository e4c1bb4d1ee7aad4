"""Comparing two evaluations on the examples both scored (neo.eval.compare)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from neo.eval.compare import compare, load_per_example, main, per_example_record, save_per_example


def _record(ranks: dict[str, dict[str, int]], queries=None, search=None) -> dict:
    return per_example_record(ranks, queries or {}, search or {})


def test_rec_pairs_users_both_ranked_and_gives_an_interval_from_30_users():
    users = [f"u{i}" for i in range(40)]
    # B ranks every target first; A ranks half of them 2nd (NDCG 1/log2(3)) and half outside the top 10
    b = _record({"neo/product": {u: 0 for u in users}})
    a = _record({"neo/product": {u: (1 if i % 2 else 1 << 30) for i, u in enumerate(users)} | {"extra": 0}})
    rows = {(r.task, r.entity_type, r.metric): r for r in compare(b, a)}
    ndcg = rows["rec", "product", "ndcg@10"]
    assert ndcg.n == 40  # "extra" is only in A
    assert ndcg.ours == 1.0
    assert ndcg.theirs == pytest.approx(0.5 / np.log2(3))
    assert ndcg.ratio == pytest.approx(2 * np.log2(3))
    assert ndcg.low <= ndcg.ratio <= ndcg.high
    assert rows["rec", "product", "recall@10"].ratio == pytest.approx(2.0)

    few = compare(_record({"neo/product": {"u0": 0, "u1": 0}}), _record({"neo/product": {"u0": 0, "u1": 5}}))
    assert [(r.metric, r.ratio, r.low) for r in few] == [("recall@10", 1.0, None),
                                                         ("ndcg@10", pytest.approx(2 / (1 + 1 / np.log2(7))), None)]


def test_systems_of_one_run_and_a_baseline_that_scores_zero():
    record = _record({"neo/show": {"u": 0, "v": 3}, "popularity/show": {"u": 1 << 30, "v": 1 << 30},
                      "model_alone/show": {"u": 3, "v": 0}})
    versus_alone = compare(record, record, "neo", "model_alone")
    assert [r.ratio for r in versus_alone] == [1.0, 1.0]
    versus_popularity = compare(record, record, "neo", "popularity")
    assert [r.ratio for r in versus_popularity] == [None, None]  # no ratio to 0
    assert "| - |" in versus_popularity[0].row()


def test_search_pairs_queries_by_text_and_relevant_items_whatever_their_order():
    queries_a = [("red pen", ["p1"]), ("blue ink", ["p2", "p3"]), ("red pen", ["p1"])]
    queries_b = [queries_a[1], queries_a[0], ("only in b", ["p9"])]
    a = _record({}, {"product": queries_a}, {"neo/product": [["p4", "p1"], ["p2", "p3"], ["p1"]]})
    b = _record({}, {"product": queries_b}, {"neo/product": [["p3", "p2"], ["p1"], ["p9"]]})
    rows = {r.metric: r for r in compare(b, a)}
    # shared: "blue ink" (both perfect) and the first "red pen" (B first, A second); the repeat is A's alone
    assert rows["recall@10"].n == 2
    assert rows["recall@10"].ratio == 1.0
    assert rows["ndcg@10"].ours == 1.0
    assert rows["ndcg@10"].theirs == pytest.approx((1 + 1 / np.log2(3)) / 2)


def test_files_round_trip_and_bad_ones_are_refused(tmp_path: Path, capsys):
    users = {f"u{i}": i % 12 for i in range(30)}
    record = _record({"neo/product": users, "cooccurrence/product": {u: r + 1 for u, r in users.items()}})
    path = save_per_example(tmp_path, record)
    assert load_per_example(tmp_path) == json.loads(path.read_text()) == record
    main([str(tmp_path), str(tmp_path), "--theirs", "cooccurrence"])
    printed = capsys.readouterr().out
    assert "| rec | product | ndcg@10 | 30 |" in printed and "x [" in printed

    with pytest.raises(FileNotFoundError, match="re-evaluated"):
        load_per_example(tmp_path / "missing")
    (tmp_path / "old.json").write_text(json.dumps({"version": 0}))
    with pytest.raises(ValueError, match="old.json: expected per-example results of version 1, found 0"):
        load_per_example(tmp_path / "old.json")
    broken = _record({}, {"product": [("q", ["p1"])]}, {"neo/product": [["p1"], ["p2"]]})
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"search\['neo/product'\] has 2 ranked lists for 1 product queries"):
        load_per_example(tmp_path / "broken.json")
    with pytest.raises(SystemExit, match="nothing to compare"):
        main([str(tmp_path), str(tmp_path), "--theirs", "sasrec"])
