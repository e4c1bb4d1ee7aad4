"""Render one example of every task for real datasets into docs/tasks.md (between marker comments).

    python -m neo.tasks.showcase --data demo scientific --work /tmp/neo-showcase --out docs/tasks.md

Each dataset is resolved (generated / converted on first use) and given fast SIDs (`sid=fast`) under
`--work`, so the examples show real items and real SID spans, rendered by the same code as training.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir

from neo.data.resolve import load_catalog
from neo.data.splits import make_split
from neo.io import write_text
from neo.sids.build import build_sid_tables
from neo.sids.table import SIDS_DIR, load_tables
from neo.tasks.base import Example, TaskContext
from neo.tasks.pipeline import TASKS, context, plain
from neo.tasks.prompts import ChatFormat
from neo.vocab import SIDVocab

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
BEGIN, END = "<!-- examples:begin -->", "<!-- examples:end -->"
MAX_USERS = 400


def _compose(dataset: str, work: Path) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"data={dataset}",
                "sid=fast",
                "tasks=default",
                f"paths.output_root={work}",
                f"paths.cache_dir={work / 'cache'}",
            ],
        )
    return plain(cfg)


def load_context(dataset: str, work: Path) -> tuple[TaskContext, dict]:
    """The dataset's catalog, split and (fast) SID tables, with the plain prompt format."""
    cfg = _compose(dataset, work)
    catalog = load_catalog(cfg["data"])
    out_dir = work / catalog.name
    if not (out_dir / SIDS_DIR / "index.json").exists():
        build_sid_tables(catalog, cfg["sid"], out_dir)
    tables = load_tables(out_dir / SIDS_DIR)
    vocab = SIDVocab(
        1, {t: table.codebook_sizes for t, table in tables.items()}
    )  # span text ignores base size
    return context(catalog, make_split(catalog), tables, vocab, cfg["tasks"], ChatFormat.plain()), cfg[
        "tasks"
    ]


def _label(example: Example) -> str:
    meta = example.meta
    if example.task == "align":
        return f"align / {meta['subtask']}"
    if example.task == "recommend":
        control = f", {meta['familiarity']}" if meta["familiarity"] else ""
        return f"recommend -> {meta['target_type']} ({meta['format']}, k={len(meta['targets'])}{control})"
    if example.task == "search":
        return f"search -> {meta['target_type']}" + (" (synthetic query)" if meta["synthetic"] else "")
    if example.task == "recsplain":
        return f"recsplain -> {meta['target_type']}"
    return example.task


def _candidates(ctx: TaskContext, tasks_cfg: dict, seed: int) -> Iterator[Example]:
    cfg = tasks_cfg["tasks"]
    for entity_type in ctx.sid_types:
        for item in ctx.tables[entity_type].item_ids[:50]:
            yield from TASKS["align"].examples(ctx, item, cfg["align"], seed)
    users = [u for u in ctx.train_users if len(ctx.train_history(u)) >= 4][:MAX_USERS]
    short = {**cfg["recommend"], "max_history": 6, "examples_per_user": 1, "k": [1, 3]}
    for name, task_cfg in (
        ("recommend", short),
        ("recsplain", {**cfg["recsplain"], "max_history": 6}),
        ("profile", {**cfg["profile"], "max_history": 6}),
        ("rec_sequence", {**cfg["rec_sequence"], "max_history": 6}),
    ):
        for user in users:
            yield from TASKS[name].examples(ctx, user, task_cfg, seed)
    search_cfg = cfg["search"]
    for key in TASKS["search"].keys(ctx, search_cfg):
        yield from TASKS["search"].examples(ctx, key, search_cfg, seed)


def pick_examples(ctx: TaskContext, tasks_cfg: dict, seed: int = 0) -> list[Example]:
    """One example per label (task, subtask, target type): the first the task produces."""
    chosen: dict[str, Example] = {}
    for example in _candidates(ctx, tasks_cfg, seed):
        label = _label(example)
        if example.task == "recommend":  # one per target type, whatever its format
            label = f"recommend -> {example.meta['target_type']}"
        chosen.setdefault(label, example)
    return list(chosen.values())


def render_markdown(title: str, ctx: TaskContext, examples: Sequence[Example]) -> str:
    lines = [
        f"### {title}",
        "",
        f"Catalog `{ctx.catalog.name}`: types {', '.join(ctx.sid_types)}; "
        f"{len(ctx.train_users)} users with training histories.",
        "",
    ]
    for example in examples:
        lines += [
            f"#### {_label(example)}",
            "",
            "```text",
            example.prompt + example.completion,
            "```",
            "",
            f"<sub>meta: `{json.dumps(example.meta, ensure_ascii=False)[:300]}`</sub>",
            "",
        ]
    return "\n".join(lines)


def splice(document: str, generated: str) -> str:
    """Replace the text between the marker comments, keeping the hand-written prose around it."""
    if BEGIN not in document or END not in document:
        raise ValueError(f"the document needs the markers {BEGIN} and {END} around the generated examples")
    head, rest = document.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["demo", "scientific"], help="data presets (conf/data)")
    parser.add_argument("--work", type=Path, required=True, help="folder for datasets and SIDs")
    parser.add_argument("--out", type=Path, default=Path("docs/tasks.md"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sections = []
    for dataset in args.data:
        ctx, tasks_cfg = load_context(dataset, args.work.resolve())
        sections.append(render_markdown(f"`{dataset}`", ctx, pick_examples(ctx, tasks_cfg, args.seed)))
    write_text(args.out, splice(args.out.read_text(encoding="utf-8"), "\n".join(sections)))


if __name__ == "__main__":
    main()
