"""Bring your own SIDs: import a published assignment (e.g. LETTER's for Amazon Beauty) as an SIDTable.

The file is JSON, item id -> list of code strings, one per level: `"<a_183>"` (letter = level, as LETTER
writes them), `"183"` or `183`. Everything is checked before a table is made, and every error names the
file, the item and what was expected, because a silently shifted or partial assignment would train a
model on the wrong items.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neo.sids.collisions import collision_rate, disambiguate, resolve_by_popularity
from neo.sids.table import SIDTable

_CODE = re.compile(r"^(?:<(?P<tag>[a-z]+)_(?P<num>\d+)>|(?P<bare>\d+))$")


class SIDImportError(ValueError):
    """A problem in a bring-your-own SID file, located by file and item."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


def _parse_code(path: Path, item: str, level: int, raw: object, tags: list[str | None]) -> int:
    match = _CODE.match(str(raw)) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if match is None:
        raise SIDImportError(
            path, f"item {item!r} level {level}: bad code {raw!r}; expected '<a_12>', '12' or 12"
        )
    tag = match["tag"]
    if tags[level] is None:
        tags[level] = tag or ""
    elif tags[level] != (tag or ""):
        raise SIDImportError(
            path,
            f"item {item!r} level {level}: code {raw!r} has tag {tag!r} but earlier items "
            f"use {tags[level]!r} at this level (levels mixed up?)",
        )
    return int(match["num"] if match["num"] is not None else match["bare"])


def read_sids(
    path: str | os.PathLike, entity_type: str, catalog_item_ids: Sequence[str], key_offset: int = 0
) -> np.ndarray:
    """Validated codes [n_items, levels] of the catalog's items of `entity_type`, in their order.

    `key_offset` is added to integer keys (LETTER's file is 0-based, the catalog's ids 1-based: offset 1).
    Duplicate code tuples are allowed here; `import_sids` decides what to do with them.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SIDImportError(path, "file not found (expected JSON: item id -> list of codes)") from None
    except json.JSONDecodeError as exc:
        raise SIDImportError(path, f"malformed JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(raw, dict) or not raw:
        raise SIDImportError(path, "expected a non-empty JSON object: item id -> list of codes")
    if key_offset:
        try:
            raw = {str(int(key) + key_offset): value for key, value in raw.items()}
        except ValueError:
            raise SIDImportError(path, f"key_offset={key_offset} needs integer keys") from None
    known = set(catalog_item_ids)
    unknown = [key for key in raw if key not in known]
    if unknown:
        raise SIDImportError(
            path,
            f"{len(unknown)} item id(s) are not {entity_type!r} items of the catalog, "
            f"e.g. {unknown[:5]} (wrong key offset or entity type?)",
        )
    missing = [item for item in catalog_item_ids if item not in raw]
    if missing:
        raise SIDImportError(
            path, f"{len(missing)} {entity_type!r} item(s) of the catalog have no SID, e.g. {missing[:5]}"
        )
    levels = 0
    tags: list[str | None] = []
    codes = np.empty((len(catalog_item_ids), 0), dtype=np.int32)
    for row, item in enumerate(catalog_item_ids):
        value = raw[item]
        if not isinstance(value, list) or not value:
            raise SIDImportError(path, f"item {item!r}: expected a non-empty list of codes, got {value!r}")
        if not levels:
            levels, tags = len(value), [None] * len(value)
            codes = np.empty((len(catalog_item_ids), levels), dtype=np.int32)
        elif len(value) != levels:
            raise SIDImportError(path, f"item {item!r} has {len(value)} levels, earlier items have {levels}")
        codes[row] = [_parse_code(path, item, level, code, tags) for level, code in enumerate(value)]
    return codes


def import_sids(
    path: str | os.PathLike,
    entity_type: str,
    catalog_item_ids: Sequence[str],
    codebook_sizes: Sequence[int] | None = None,
    key_offset: int = 0,
    duplicates: str = "error",
    popularity: Sequence[float] | np.ndarray | None = None,
) -> SIDTable:
    """Validate `path` against the catalog's items of `entity_type` and return their SID table.

    Codebook sizes default to 1 + the largest code seen per level. Items sharing a code tuple are an
    error unless `duplicates` names a collision policy (`disambiguate` or `popularity`) to separate them:
    even LETTER's published Beauty assignment gives 13 of its 12,101 items a code another item has.
    """
    path = Path(path)
    codes = read_sids(path, entity_type, catalog_item_ids, key_offset)
    observed = (codes.max(axis=0) + 1).tolist()
    if codebook_sizes is None:
        sizes = observed
    else:
        sizes = [int(s) for s in codebook_sizes]
        if len(sizes) != codes.shape[1]:
            raise SIDImportError(path, f"codebook_sizes {sizes} given for {codes.shape[1]} levels")
        too_big = [lvl for lvl in range(len(sizes)) if observed[lvl] > sizes[lvl]]
        if too_big:
            raise SIDImportError(
                path,
                f"level {too_big[0]} has code {observed[too_big[0]] - 1} but codebook size "
                f"{sizes[too_big[0]]}",
            )
    before = collision_rate(codes)
    if duplicates == "error":
        seen: dict[tuple[int, ...], str] = {}
        for row, item in enumerate(catalog_item_ids):
            key = tuple(codes[row].tolist())
            if key in seen:
                raise SIDImportError(
                    path,
                    f"items {seen[key]!r} and {item!r} share the code {list(key)}; SIDs must "
                    "be unique (or import with duplicates='disambiguate' or 'popularity')",
                )
            seen[key] = item
    elif duplicates == "disambiguate":
        codes, extra = disambiguate(codes, popularity)
        sizes.append(extra)
    elif duplicates == "popularity":
        codes, _ = resolve_by_popularity(codes, sizes, popularity)
    else:
        raise ValueError(f"duplicates must be 'error', 'disambiguate' or 'popularity', got {duplicates!r}")
    return SIDTable(
        entity_type,
        list(catalog_item_ids),
        codes,
        sizes,
        {
            "source": "byo",
            "file": str(path),
            "key_offset": key_offset,
            "duplicates": duplicates,
            "collision_rate_before": before,
        },
    )
