"""Build small dataset directories record by record, so each test can break exactly one thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def base_tables() -> dict[str, list[dict[str, Any]]]:
    """A valid three-type catalog: two products linked to a brand and a category, two users."""
    return {
        "items": [
            {
                "id": "p1",
                "type": "product",
                "title": "Red mug",
                "text": "A mug",
                "links": {"brand": ["b1"], "category": ["c1"]},
            },
            {"id": "p2", "type": "product", "title": "Blue mug", "links": {"brand": ["b1"]}},
            {"id": "b1", "type": "brand", "title": "MugCo"},
            {"id": "c1", "type": "category", "title": "Kitchen"},
        ],
        "users": [{"id": "u1"}, {"id": "u2"}],
        "interactions": [
            {"user": "u1", "item": "p1", "timestamp": 1, "context": {"device": "phone"}},
            {"user": "u1", "item": "p2", "timestamp": 2},
            {"user": "u2", "item": "p2", "timestamp": 1},
        ],
        "queries": [{"id": "q1", "text": "mug", "type": "product", "items": ["p1", "p2"], "split": "train"}],
    }


def write_dataset(
    root: Path,
    tables: dict[str, list[Any]],
    types: tuple[str, ...] = ("product", "brand", "category"),
    raw_lines: dict[str, list[str]] | None = None,
) -> Path:
    """Write JSONL tables (records, or `raw_lines` verbatim for malformed input) and a dataset.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "t", "entity_types": list(types)}))
    for table, records in tables.items():
        (root / f"{table}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for table, lines in (raw_lines or {}).items():
        (root / f"{table}.jsonl").write_text("".join(line + "\n" for line in lines))
    return root
