"""Writing a dataset directory in the canonical format (used by the converters and the demo world).

Producers hand over *columns* in storage form (object fields already JSON strings, as the Arrow tables
hold them), so the same data can go to Parquet without a round trip through Python dicts, or to JSONL
by splicing the JSON strings straight into each line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from neo.data.catalog import SCHEMA, DatasetSpec, table_features
from neo.io import atomic_open, write_text

TABLE_FORMATS = ("jsonl", "parquet")


def storage_json(value: Mapping[str, Any]) -> str:
    """The JSON string form of an object field, exactly as `normalise_record` stores it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def write_spec(root: str | os.PathLike, spec: DatasetSpec) -> None:
    write_text(
        Path(root) / "dataset.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True)
    )


def write_table(
    root: str | os.PathLike, table: str, columns: Mapping[str, Sequence[Any]], table_format: str = "jsonl"
) -> int:
    """Write one table (`<root>/<table>.<format>`) atomically from storage-form columns; return its rows."""
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"table_format must be one of {TABLE_FORMATS}, got {table_format!r}")
    unknown = set(columns) - set(SCHEMA[table])
    if unknown:
        raise ValueError(
            f"table {table!r}: unknown column(s) {sorted(unknown)}; schema has {list(SCHEMA[table])}"
        )
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"table {table!r}: columns have different lengths {sorted(lengths)}")
    rows = lengths.pop() if lengths else 0
    columns = {
        name: _as_python(values) if table_format == "jsonl" else values for name, values in columns.items()
    }
    path = Path(root) / f"{table}.{table_format}"
    if table_format == "parquet":
        features = table_features(table)
        schema = pa.schema([features.arrow_schema.field(name) for name in columns])
        arrow = pa.table(
            {name: _as_arrow(values, schema.field(name).type) for name, values in columns.items()},
            schema=schema,
        )
        with atomic_open(path, "wb") as handle:
            pq.write_table(arrow, handle)
        return rows
    names = list(columns)
    encoders = [_raw if SCHEMA[table][name][1] == "obj" else _dumps for name in names]
    keys = [json.dumps(name) + ": " for name in names]
    with atomic_open(path) as handle:
        for values in zip(*(columns[name] for name in names), strict=True):
            handle.write(
                "{" + ", ".join(k + enc(v) for k, enc, v in zip(keys, encoders, values, strict=True)) + "}\n"
            )
    return rows


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _raw(value: str) -> str:
    return value


def _as_python(values: Sequence[Any]) -> Sequence[Any]:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.to_pylist()
    if isinstance(values, np.ndarray):
        return values.tolist()
    return values


def _as_arrow(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(arrow_type)
    return pa.array(values, type=arrow_type)
