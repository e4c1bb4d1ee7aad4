"""Benchmark plots as PNG files: model vs baselines, loss curves, codebook utilisation.

Every function takes plain data (metric values, metrics.jsonl paths, the SID report's utilisation)
and writes one PNG atomically, so a report can be rebuilt from a run directory without re-running
anything.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402

from neo.io import write_bytes  # noqa: E402


def _save(figure: plt.Figure, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def comparison_table(metrics: Mapping[str, float], metric: str = "ndcg@10") -> dict[str, dict[str, float]]:
    """`{task/type: {system: value}}` from flat keys.

    Model keys are `<task>/<type>/<metric>` (e.g. `rec/product/ndcg@10`, system "neo"); baseline keys
    are `baseline/<name>/<task>/<type>/<metric>` (system `<name>`). Other keys are ignored.
    """
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if parts[-1] != metric:
            continue
        if parts[0] == "baseline" and len(parts) == 5:
            system, group = parts[1], f"{parts[2]}/{parts[3]}"
        elif len(parts) == 3:
            system, group = "neo", f"{parts[0]}/{parts[1]}"
        else:
            continue
        table.setdefault(group, {})[system] = float(value)
    return table


def comparison_bars(
    rows: Mapping[str, Mapping[str, float | None]],
    path: str | os.PathLike,
    title: str = "neo vs baselines",
    ylabel: str = "ndcg@10",
) -> Path:
    """Grouped bars: one group per row (task/type), one bar per system (neo first, then the rest A-Z).

    `rows` is `{group: {system: value}}` as `comparison_table` or the report builds it; a missing
    (None) value leaves a gap instead of a misleading zero.
    """
    if not rows:
        raise ValueError(f"{path}: nothing to plot (no rows)")
    groups = list(rows)
    systems = sorted({s for row in rows.values() for s in row}, key=lambda s: (s != "neo", s))
    width = 0.8 / len(systems)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.0 * len(groups) * len(systems) ** 0.5 + 2), 3.5))
    positions = np.arange(len(groups))
    for i, system in enumerate(systems):
        values = [np.nan if rows[g].get(system) is None else float(rows[g][system]) for g in groups]
        axis.bar(positions + (i - (len(systems) - 1) / 2) * width, values, width, label=system)
    axis.set_xticks(
        positions, groups, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center"
    )
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=8, ncols=min(len(systems), 4))
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def read_loss_curve(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) from a metrics.jsonl file; records without both `step` and `loss` are skipped."""
    steps, losses = [], []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: malformed JSON ({exc.msg})") from None
            if "step" in record and "loss" in record:
                steps.append(float(record["step"]))
                losses.append(float(record["loss"]))
    return np.asarray(steps), np.asarray(losses)


def loss_curves(curves: Mapping[str, str | os.PathLike], path: str | os.PathLike) -> Path:
    """One line per labelled metrics.jsonl (e.g. {"align": run/align/metrics.jsonl, ...}), log-scaled loss."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    plotted = 0
    for label, source in curves.items():
        steps, losses = read_loss_curve(source)
        if len(steps):
            axis.plot(steps, losses, label=label, linewidth=1.2)
            plotted += 1
    if not plotted:
        plt.close(figure)
        raise ValueError(f"no (step, loss) records in {[str(p) for p in curves.values()]}")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    return _save(figure, path)


def codebook_utilization(utilization: Mapping[str, Sequence[float]], path: str | os.PathLike) -> Path:
    """Bars per entity type and level: the share of each codebook that items use (from the SID report)."""
    if not utilization:
        raise ValueError(f"{path}: no codebook utilisation to plot")
    types = list(utilization)
    max_levels = max(len(levels) for levels in utilization.values())
    width = 0.8 / max_levels
    figure, axis = plt.subplots(figsize=(max(4.0, 1.5 * len(types) + 2), 3.2))
    positions = np.arange(len(types))
    for level in range(max_levels):
        values = [utilization[t][level] if level < len(utilization[t]) else np.nan for t in types]
        axis.bar(positions + (level - (max_levels - 1) / 2) * width, values, width, label=f"level {level}")
    axis.set_xticks(positions, types)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("share of codes used")
    axis.set_title("codebook utilisation")
    axis.legend(fontsize=8)
    return _save(figure, path)
