"""`neo run bench_decoding quick=true` writes the benchmark table with every expected column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo.cli import main


@pytest.mark.integration
def test_quick_benchmark_writes_rows(tmp_path: Path) -> None:
    assert main(["run", "bench_decoding", "quick=true", f"output_dir={tmp_path}"]) == 0
    written = json.loads((tmp_path / "bench_decoding.json").read_text())
    assert written["device"] == "cpu"  # the default; device=cuda adds the GPU-only columns
    rows = written["rows"]
    steps = [r for r in rows if r["mode"] in ("span", "mixed")]
    assert {r["mode"] for r in steps} == {"span", "mixed"}
    assert all(r["neo_ms"] > 0 and r["hf_ms"] > 0 and {"batch", "items", "vocab"} <= r.keys() for r in steps)
    assert all(r["neo_full_row_mask_ms"] > 0 and "neo_graph_ms" not in r for r in steps)
    (beam,) = [r for r in rows if r["mode"] == "beam"]
    assert beam["constrained_ms"] > 0 and beam["unconstrained_ms"] > 0
