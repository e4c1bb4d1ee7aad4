"""Whole-dataset validation: everything `Catalog.load` cannot see one record at a time.

Per-record checks (malformed JSON, missing or mistyped fields, empty titles) run while a JSONL table is
converted to Arrow (`catalog.normalise_record`). This module adds the checks that need a column or two
tables at once: unique ids, known entity types, interactions / links / queries / profiles / embeddings
that point at existing items and users. They run on Arrow columns (hash joins via `pyarrow.compute`), so
a catalog of millions of rows is checked without building a Python object per row. Parquet tables skip
the per-record pass, so their columns get the same field checks here.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from neo.data.catalog import SCHEMA, Catalog, CatalogError, embeddings_file, load_embeddings, table_file


def validate(root: str | os.PathLike) -> dict[str, Any]:
    """Check a dataset directory; return its summary or raise `CatalogError` naming file, line and problem.

    Summary: {"users", "interactions", "items": {type: n}, "queries", "interactions_by_type": {type: n}}.
    """
    root = Path(root)
    catalog = Catalog.load(root)
    for table in ("items", "users", "interactions", "queries", "profiles"):
        dataset = getattr(catalog, table)
        path = table_file(root, table)
        if dataset is not None and path is not None and path.suffix == ".parquet":
            _check_parquet_fields(table, dataset, path)

    items_path, users_path = table_file(root, "items"), table_file(root, "users")
    item_ids = _column(catalog.items, "id")
    item_types = _column(catalog.items, "type")
    user_ids = _column(catalog.users, "id")
    _require_unique(items_path, item_ids, "item id")
    _require_unique(users_path, user_ids, "user id")
    _require_known(
        items_path,
        item_types,
        pa.array(catalog.type_names),
        "entity type",
        f"declared in dataset.yaml: {catalog.type_names}",
    )
    _check_links(items_path, catalog, item_ids, item_types)

    interactions_path = table_file(root, "interactions")
    interaction_items = _column(catalog.interactions, "item")
    _require_known(interactions_path, interaction_items, item_ids, "item", "in items")
    _require_known(interactions_path, _column(catalog.interactions, "user"), user_ids, "user", "in users")

    if catalog.queries is not None:
        queries_path = table_file(root, "queries")
        _require_unique(queries_path, _column(catalog.queries, "id"), "query id")
        _require_known(
            queries_path,
            _column(catalog.queries, "type"),
            pa.array(catalog.type_names),
            "entity type",
            f"declared in dataset.yaml: {catalog.type_names}",
        )
        relevant = catalog.queries.data.column("items").combine_chunks()
        _require_known(
            queries_path,
            relevant.flatten(),
            item_ids,
            "relevant item",
            "in items",
            rows=_list_parent_rows(relevant),
        )
        empty = np.flatnonzero(pc.list_value_length(relevant).fill_null(0).to_numpy() == 0)
        if empty.size:
            raise _located(queries_path, int(empty[0]), "field 'items' must list at least one relevant item")
    if catalog.profiles is not None:
        _require_known(
            table_file(root, "profiles"), _column(catalog.profiles, "user"), user_ids, "user", "in users"
        )
    embeddings = load_embeddings(root)
    if embeddings is not None:
        path = embeddings_file(root)
        ids = pa.array(embeddings[0], pa.string())
        _require_unique(path, ids, "embedding id")
        _require_known(path, ids, item_ids, "item", "in items")

    type_counts = _value_counts(item_types)
    rows = pc.index_in(interaction_items, value_set=item_ids)
    interaction_types = _value_counts(pc.take(item_types, rows)) if len(rows) else {}
    return {
        "users": len(catalog.users),
        "interactions": len(catalog.interactions),
        "items": {name: type_counts.get(name, 0) for name in catalog.type_names},
        "queries": 0 if catalog.queries is None else len(catalog.queries),
        "interactions_by_type": {
            name: interaction_types[name] for name in catalog.type_names if name in interaction_types
        },
    }


def _column(dataset: datasets.Dataset, name: str) -> pa.Array:
    return dataset.data.column(name).combine_chunks()


def _value_counts(values: pa.Array) -> dict[str, int]:
    counts = pc.value_counts(values)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _located(path: Path, row: int, message: str) -> CatalogError:
    """Turn a 0-based table row into a JSONL line (blank lines are skipped on load) or a Parquet row."""
    if path.suffix == ".jsonl":
        seen = -1
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    seen += 1
                    if seen == row:
                        return CatalogError(path, message, line_no)
    return CatalogError(path, f"row {row}: {message}")


def _require_unique(path: Path, values: pa.Array, what: str) -> None:
    encoded = values.dictionary_encode()
    if len(encoded.dictionary) == len(values):
        return
    codes = encoded.indices.to_numpy()
    order = np.argsort(codes, kind="stable")
    repeats = order[1:][codes[order][1:] == codes[order][:-1]]
    row = int(repeats.min())
    raise _located(path, row, f"duplicate {what} {values[row].as_py()!r}")


def _require_known(
    path: Path, values: pa.Array, known: pa.Array, what: str, where: str, rows: np.ndarray | None = None
) -> None:
    """Every value must occur in `known`; `rows` maps flattened list values back to table rows."""
    if len(values) == 0:
        return
    missing = np.flatnonzero(~pc.is_in(values, value_set=known).to_numpy(zero_copy_only=False))
    if missing.size:
        position = int(missing[0])
        row = position if rows is None else int(rows[position])
        raise _located(path, row, f"unknown {what} {values[position].as_py()!r} (not {where})")


def _list_parent_rows(lists: pa.Array) -> np.ndarray:
    """For a list column, the row each flattened value came from."""
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy()
    return np.repeat(np.arange(len(lengths)), lengths)


def _parse_json_objects(strings: pa.Array) -> pa.Table | None:
    """Parse a column of JSON object strings with Arrow's JSON reader, or None if it cannot.

    Arrow parses a million link objects in well under a second. It refuses valid JSON whose fields change
    type between rows and anything that is not an object; callers then fall back to a row-by-row pass
    that either accepts the data or names the offending row.
    """
    if len(strings) == 0:
        return None
    data = ("\n".join(strings.to_pylist()) + "\n").encode("utf-8")
    try:
        return pa_json.read_json(io.BytesIO(data), read_options=pa_json.ReadOptions(block_size=len(data) + 1))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _check_links(path: Path, catalog: Catalog, item_ids: pa.Array, item_types: pa.Array) -> None:
    """Links must be {declared type: [ids of existing items of that type]}."""
    declared = catalog.type_names
    raw = _column(catalog.items, "links")
    parsed = _parse_json_objects(raw)
    columns = (
        {} if parsed is None else {name: parsed.column(name).combine_chunks() for name in parsed.column_names}
    )
    list_of_strings = all(
        pa.types.is_list(c.type)
        and (pa.types.is_string(c.type.value_type) or pa.types.is_null(c.type.value_type))
        for c in columns.values()
    )
    if parsed is None or not list_of_strings or set(columns) - set(declared):
        _check_links_by_row(path, raw, declared)  # raises at the offending row (or finds all well-formed)
        columns = _links_by_row(raw, declared)
    for link_type, lists in columns.items():
        targets = lists.flatten().cast(pa.string())
        if len(targets) == 0:
            continue
        rows = pc.list_parent_indices(lists).to_numpy()
        _require_known(path, targets, item_ids, "linked item", "in items", rows=rows)
        actual = pc.take(item_types, pc.index_in(targets, value_set=item_ids)).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(actual != link_type)
        if wrong.size:
            i = int(wrong[0])
            raise _located(
                path,
                int(rows[i]),
                f"links.{link_type} names {targets[i].as_py()!r}, which is a {actual[i]!r} item",
            )


def _check_links_by_row(path: Path, raw: pa.Array, declared: list[str]) -> None:
    for row, text in enumerate(raw.to_pylist()):
        links = json.loads(text or "{}")
        for link_type, targets in links.items():
            if link_type not in declared:
                raise _located(
                    path,
                    row,
                    f"links: unknown entity type {link_type!r} (declared in dataset.yaml: {declared})",
                )
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise _located(path, row, f"links.{link_type} must be a list of item id strings")


def _links_by_row(raw: pa.Array, declared: list[str]) -> dict[str, pa.Array]:
    """The row-by-row twin of the Arrow parse: one list<string> column per linked entity type."""
    decoded = [json.loads(text or "{}") for text in raw.to_pylist()]
    return {
        link_type: pa.array([links.get(link_type) for links in decoded], pa.list_(pa.string()))
        for link_type in declared
    }


def _check_parquet_fields(table: str, dataset: datasets.Dataset, path: Path) -> None:
    """The per-record checks of `normalise_record`, done column-wise for a Parquet table."""
    for name, (required, kind) in SCHEMA[table].items():
        if name not in dataset.column_names:
            continue
        column = _column(dataset, name)
        if required and column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise _located(path, row, f"missing required field '{name}'")
        if kind in ("str", "obj") and not (
            pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        ):
            expected = "a string" if kind == "str" else "a JSON object stored as a string"
            raise CatalogError(path, f"column '{name}' must be {expected}, got Arrow type {column.type}")
        if kind == "str" and required:
            empty = pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
            if empty.any():
                raise _located(path, int(np.flatnonzero(empty)[0]), f"field '{name}' must not be empty")
        elif kind == "num":
            if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
                raise CatalogError(path, f"column '{name}' must be numeric, got Arrow type {column.type}")
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(~np.isfinite(values) & ~column.is_null().to_numpy(zero_copy_only=False))
            if bad.size:
                raise _located(
                    path, int(bad[0]), f"field '{name}' must be a finite number, got {values[bad[0]]}"
                )
        elif kind == "obj":
            # Objects repeat a lot (contexts, empty attributes): parse each distinct string once, in Arrow
            # when it can, else in Python to name the row.
            distinct = pc.unique(column.drop_null())
            if _parse_json_objects(distinct) is not None:
                continue
            for text in distinct.to_pylist():
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError:
                    parsed = None
                if not isinstance(parsed, dict):
                    matches = pc.equal(column, text).fill_null(False).to_numpy(zero_copy_only=False)
                    row = int(np.flatnonzero(matches)[0])
                    raise _located(path, row, f"field '{name}' must hold a JSON object, got {text[:60]!r}")
