"""The evaluation report: markdown tables of neo vs each baseline, plots, and example generations."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo.io import write_text

REC_BASELINES = ("popularity", "cooccurrence", "sasrec")
SEARCH_BASELINES = ("bm25", "bm25f", "dense")
HEADLINE = ("recall@10", "ndcg@10")
MODEL_ALONE = "model alone"
"""The column of neo without its prior, the transition prior in recommendation (`model_alone/rec/...` keys)
and the lexical prior in search (`model_alone/search/...`): neo's own, never a baseline."""


def _types(metrics: Mapping[str, Any], task: str) -> list[str]:
    pattern = re.compile(rf"^(?:baseline/[^/]+/)?{task}/([^/]+)/")
    return sorted({m.group(1) for key in metrics if (m := pattern.match(key))})


def comparison_rows(metrics: Mapping[str, Any], task: str, baselines: tuple[str, ...]
                    ) -> list[tuple[str, str, dict[str, float | None]]]:
    """(type, metric, {system: value}) for every target type and headline metric of one task."""
    rows = []
    for entity_type in _types(metrics, task):
        for metric in HEADLINE:
            values = {"neo": metrics.get(f"{task}/{entity_type}/{metric}")}
            alone = metrics.get(f"model_alone/{task}/{entity_type}/{metric}")
            if alone is not None:
                values[MODEL_ALONE] = alone
            for name in baselines:
                values[name] = metrics.get(f"baseline/{name}/{task}/{entity_type}/{metric}")
            rows.append((entity_type, metric, values))
    return rows


def published_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, dict[str, float | None]]]:
    """(type, metric, {system: value}) for figures published elsewhere on the same split (`published/...`).

    They sit next to neo's own figure but are not side by side: another machine, other budgets, all test users.
    """
    pattern = re.compile(r"^published/([^/]+)/rec/([^/]+)/([^/]+)$")
    found = [(m.group(2), m.group(3), m.group(1), value) for key, value in metrics.items()
             if (m := pattern.match(key))]
    systems = list(dict.fromkeys(system for _, _, system, _ in found))
    rows = []
    for entity_type in sorted({t for t, _, _, _ in found}):
        for metric in sorted({m for t, m, _, _ in found if t == entity_type}):
            values: dict[str, float | None] = {"neo": metrics.get(f"rec/{entity_type}/{metric}")}
            for system in systems:
                values[system] = next((v for t, m, s, v in found if (t, m, s) == (entity_type, metric, system)), None)
            rows.append((entity_type, metric, values))
    return rows


def _table(rows: list[tuple[str, str, dict[str, float | None]]], metrics: Mapping[str, Any] | None = None,
           task: str = "") -> list[str]:
    """The rows as a markdown table; with `metrics`, neo / best carries the paired 95% interval of the
    ratio against that baseline (`vs/<baseline>/<task>/<type>/<metric>/low` and `/high`) when evaluate
    computed one."""
    if not rows:
        return ["(not evaluated)"]
    named = dict.fromkeys(system for _, _, values in rows for system in values)  # every row's, in order
    ours_first = sorted(named, key=lambda s: {"neo": 0, MODEL_ALONE: 1}.get(s, 2))
    systems = [s for s in ours_first if any(r[2].get(s) is not None for r in rows)]
    lines = ["| type | metric | " + " | ".join(systems) + " | best baseline | neo / best |",
             "|---|---|" + "---|" * (len(systems) + 2)]
    for entity_type, metric, values in rows:
        baseline = {s: v for s, v in values.items() if s not in ("neo", MODEL_ALONE) and v is not None}
        best_name = max(baseline, key=lambda s: baseline[s]) if baseline else None
        best = baseline.get(best_name) if best_name else None
        ours = values.get("neo")
        ratio = f"{ours / best:.2f}x" if ours is not None and best else "-"
        interval = f"vs/{best_name}/{task}/{entity_type}/{metric}"
        if ratio != "-" and metrics is not None and f"{interval}/low" in metrics:
            ratio += f" [{metrics[f'{interval}/low']:.2f}, {metrics[f'{interval}/high']:.2f}]"
        cells = [f"{values[s]:.4f}" if values.get(s) is not None else "-" for s in systems]
        best_cell = f"{best:.4f}" if best is not None else "-"
        lines.append(f"| {entity_type} | {metric} | {' | '.join(cells)} | {best_cell} | {ratio} |")
    return lines


def _interval_note(metrics: Mapping[str, Any]) -> list[str]:
    if not any(key.startswith("vs/") for key in metrics):
        return []
    return ["In brackets: the 95% interval of neo / best from a paired bootstrap over the users (queries) both "
            "ranked. An interval that contains 1 is a tie on this sample.", ""]


def _plots(eval_dir: Path, metrics: Mapping[str, Any], train_metrics: Mapping[str, Path],
           sid_report: Path) -> list[str]:
    """Write the PNG plots the report embeds; returns their markdown lines."""
    from neo.eval import plots

    lines = []
    for task, baselines in (("rec", REC_BASELINES), ("search", SEARCH_BASELINES)):
        rows = [r for r in comparison_rows(metrics, task, baselines) if r[1] == "ndcg@10"]
        if rows:
            name = f"{task}_vs_baselines.png"
            bars = {t: {s: v for s, v in values.items() if v is not None} for t, _, values in rows}
            plots.comparison_bars(bars, eval_dir / name, title=f"{task}: NDCG@10")
            lines.append(f"![{task} vs baselines]({name})")
    curves = {stage: path for stage, path in train_metrics.items() if path.exists()}
    if curves:
        plots.loss_curves(curves, eval_dir / "loss_curves.png")
        lines.append("![training loss](loss_curves.png)")
    if sid_report.exists():
        report = json.loads(sid_report.read_text())
        plots.codebook_utilization({t: r["utilization"] for t, r in report.items() if "utilization" in r},
                                   eval_dir / "sid_utilization.png")
        lines.append("![SID codebook utilisation](sid_utilization.png)")
    return lines


def _published_section(metrics: Mapping[str, Any]) -> list[str]:
    rows = published_rows(metrics)
    if not rows:
        return []
    return ["## Published figures on this split", "",
            "Reported elsewhere (other hardware and budgets, every test user); not run side by side.", "",
            *_table(rows), ""]


def _title_weight_note(metrics: Mapping[str, Any]) -> list[str]:
    weight = metrics.get("search_index/title_weight")
    if weight is None or weight == 1:
        return []
    return [f"neo's search index counts each item's title {weight} times (fit on the training queries, "
            "`search_index.json`); the `bm25` baseline counts it once, `bm25f` as often as neo.", ""]


def write_report(eval_dir: Path, dataset: str, metrics: Mapping[str, Any], examples: Mapping[str, str],
                 train_metrics: Mapping[str, Path], sid_report: Path) -> Path:
    """Write `<eval_dir>/report.md` (and its PNGs); returns its path."""
    rec = comparison_rows(metrics, "rec", REC_BASELINES)
    search = comparison_rows(metrics, "search", SEARCH_BASELINES)
    lines = [f"# neo evaluation: {dataset}", "",
             "Test split, full ranking over the catalog of each target type; neo and every baseline are "
             "scored on the same users and queries.", "",
             "## Recommendation", "", *_table(rec, metrics, "rec"), "",
             "## Search", "", *_table(search, metrics, "search"), "", *_interval_note(metrics),
             *_title_weight_note(metrics),
             *_published_section(metrics),
             "## Validity, steerability, user understanding, latency", "",
             "| metric | value |", "|---|---|"]
    for key in sorted(metrics):
        if key.split("/")[0] in ("validity", "steer", "understand", "latency") and not key.endswith("/n"):
            value = metrics[key]
            lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += ["", "## Plots", "", *_plots(eval_dir, metrics, train_metrics, sid_report), "",
              "## Example generations", ""]
    for task, text in examples.items():
        lines += [f"**{task}**", "", f"> {text}", ""]
    path = eval_dir / "report.md"
    write_text(path, "\n".join(lines) + "\n")
    return path


def summary_table(metrics: Mapping[str, Any]) -> str:
    """The comparison tables as plain markdown, for printing at the end of a pipeline."""
    lines = ["Recommendation", *_table(comparison_rows(metrics, "rec", REC_BASELINES), metrics, "rec"), "",
             "Search", *_table(comparison_rows(metrics, "search", SEARCH_BASELINES), metrics, "search")]
    if note := _interval_note(metrics):
        lines += ["", *note[:-1]]
    if published_rows(metrics):
        lines += ["", "Published figures on this split (not side by side)", *_table(published_rows(metrics))]
    return "\n".join(lines)
