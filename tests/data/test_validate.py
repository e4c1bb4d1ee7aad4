"""validate(): the summary of a valid catalog, and one located error per kind of problem."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neo.data.catalog import Catalog, CatalogError, load_embeddings
from neo.data.validate import validate

from .helpers import base_tables, write_dataset


def test_valid_catalog_summary(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ok", base_tables())
    assert validate(root) == {
        "users": 2,
        "interactions": 3,
        "items": {"product": 2, "brand": 1, "category": 1},
        "queries": 1,
        "interactions_by_type": {"product": 3},
    }


def _error(root: Path) -> str:
    with pytest.raises(CatalogError) as info:
        validate(root)
    return str(info.value)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    tables = base_tables()
    lines = [json.dumps(r) for r in tables.pop("interactions")]
    lines.insert(1, '{"user": "u1", "item": ')
    message = _error(write_dataset(tmp_path / "d", tables, raw_lines={"interactions": lines}))
    assert "interactions.jsonl:2: malformed JSON" in message


def test_duplicate_item_id(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"].append({"id": "p2", "type": "product", "title": "Again"})
    assert "items.jsonl:5: duplicate item id 'p2'" in _error(write_dataset(tmp_path / "d", tables))


def test_duplicate_user_id(tmp_path: Path) -> None:
    tables = base_tables()
    tables["users"].append({"id": "u1"})
    assert "users.jsonl:3: duplicate user id 'u1'" in _error(write_dataset(tmp_path / "d", tables))


def test_interaction_with_unknown_item(tmp_path: Path) -> None:
    tables = base_tables()
    tables["interactions"].append({"user": "u2", "item": "nope", "timestamp": 3})
    assert "interactions.jsonl:4: unknown item 'nope'" in _error(write_dataset(tmp_path / "d", tables))


def test_interaction_with_unknown_user(tmp_path: Path) -> None:
    tables = base_tables()
    tables["interactions"][0]["user"] = "ghost"
    assert "interactions.jsonl:1: unknown user 'ghost'" in _error(write_dataset(tmp_path / "d", tables))


def test_unknown_entity_type(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"][2]["type"] = "shop"
    assert "items.jsonl:3: unknown entity type 'shop'" in _error(write_dataset(tmp_path / "d", tables))


def test_empty_title(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"][1]["title"] = "  "
    assert "items.jsonl:2: field 'title' must not be empty" in _error(write_dataset(tmp_path / "d", tables))


def test_missing_required_field(tmp_path: Path) -> None:
    tables = base_tables()
    del tables["interactions"][2]["timestamp"]
    message = _error(write_dataset(tmp_path / "d", tables))
    assert "interactions.jsonl:3: missing required field 'timestamp'" in message


def test_link_to_unknown_item(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"][1]["links"] = {"brand": ["b404"]}
    assert "items.jsonl:2: unknown linked item 'b404'" in _error(write_dataset(tmp_path / "d", tables))


def test_link_to_item_of_wrong_type(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"][1]["links"] = {"brand": ["c1"]}
    assert "items.jsonl:2: links.brand names 'c1', which is a 'category' item" in _error(
        write_dataset(tmp_path / "d", tables)
    )


def test_link_with_undeclared_type(tmp_path: Path) -> None:
    tables = base_tables()
    tables["items"][0]["links"] = {"shop": ["b1"]}
    assert "items.jsonl:1: links: unknown entity type 'shop'" in _error(write_dataset(tmp_path / "d", tables))


def test_query_with_unknown_relevant_item(tmp_path: Path) -> None:
    tables = base_tables()
    tables["queries"].append({"id": "q2", "text": "x", "type": "brand", "items": ["b1", "zz"]})
    assert "queries.jsonl:2: unknown relevant item 'zz'" in _error(write_dataset(tmp_path / "d", tables))


def test_blank_lines_do_not_shift_reported_lines(tmp_path: Path) -> None:
    tables = base_tables()
    lines = [json.dumps(r) for r in tables.pop("items")]
    lines.insert(1, "")
    lines.append(json.dumps({"id": "p1", "type": "product", "title": "dup"}))
    assert "items.jsonl:6: duplicate item id 'p1'" in _error(
        write_dataset(tmp_path / "d", tables, raw_lines={"items": lines})
    )


def _with_embeddings(tmp_path: Path, vectors: list[object]) -> Path:
    root = write_dataset(tmp_path / "d", base_tables())
    (root / "embeddings.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "vector": v}) + "\n"
            for i, v in zip(["p1", "p2", "b1"], vectors, strict=False)
        )
    )
    return root


def test_embeddings_valid(tmp_path: Path) -> None:
    root = _with_embeddings(tmp_path, [[1, 0], [0, 1], [0.5, 0.5]])
    validate(root)
    ids, matrix = load_embeddings(root)
    assert ids == ["p1", "p2", "b1"] and matrix.shape == (3, 2) and matrix.dtype.name == "float32"


def test_embedding_with_nan(tmp_path: Path) -> None:
    message = _error(_with_embeddings(tmp_path, [[1, 0], [math.nan, 1]]))
    assert "embeddings.jsonl:2: id 'p2': vector has NaN or infinite values" in message


def test_embedding_with_wrong_dimension(tmp_path: Path) -> None:
    message = _error(_with_embeddings(tmp_path, [[1, 0], [0, 1], [1, 2, 3]]))
    assert "embeddings.jsonl:3: id 'b1': vector has dimension 3, expected 2" in message


def test_embedding_of_unknown_item(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", base_tables())
    pq.write_table(
        pa.table({"id": ["p1", "x9"], "vector": [[1.0, 2.0], [3.0, 4.0]]}), root / "embeddings.parquet"
    )
    assert "embeddings.parquet: row 1: unknown item 'x9'" in _error(root)


def _to_parquet(root: Path, table: str) -> None:
    """Rewrite one JSONL table as Parquet in storage form (object fields as JSON strings)."""
    records = [json.loads(line) for line in (root / f"{table}.jsonl").read_text().splitlines()]
    for record in records:
        for key in ("links", "attributes", "context"):
            if key in record:
                record[key] = json.dumps(record[key])
    pq.write_table(pa.Table.from_pylist(records), root / f"{table}.parquet")
    (root / f"{table}.jsonl").unlink()


def test_parquet_tables_load_like_jsonl(tmp_path: Path) -> None:
    jsonl_root = write_dataset(tmp_path / "j", base_tables())
    parquet_root = write_dataset(tmp_path / "p", base_tables())
    for table in ("items", "users", "interactions", "queries"):
        _to_parquet(parquet_root, table)
    assert validate(parquet_root) == validate(jsonl_root)
    a, b = Catalog.load(jsonl_root), Catalog.load(parquet_root)
    assert a.item("p1") == b.item("p1")
    assert a.sequences() == b.sequences()
    assert b.items.column_names == a.items.column_names  # absent optional columns are filled in


def test_parquet_empty_title_located_by_row(tmp_path: Path) -> None:
    tables = base_tables()
    root = write_dataset(tmp_path / "p", tables)
    _to_parquet(root, "items")
    table = pq.read_table(root / "items.parquet")
    titles = table.column("title").to_pylist()
    titles[3] = ""
    pq.write_table(
        table.set_column(table.schema.get_field_index("title"), "title", pa.array(titles)),
        root / "items.parquet",
    )
    assert "items.parquet: row 3: field 'title' must not be empty" in _error(root)


def test_arrow_cache_follows_edits(tmp_path: Path) -> None:
    tables = base_tables()
    root = write_dataset(tmp_path / "d", tables)
    assert len(Catalog.load(root).interactions) == 3
    start = time.perf_counter()
    assert len(Catalog.load(root).users) == 2
    assert time.perf_counter() - start < 1.0  # served from the Arrow cache
    tables["interactions"].append({"user": "u2", "item": "p1", "timestamp": 5})
    write_dataset(root, tables)
    stat = (root / "interactions.jsonl").stat()
    os.utime(root / "interactions.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert len(Catalog.load(root).interactions) == 4
