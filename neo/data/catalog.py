"""The canonical on-disk catalog and its loader.

A dataset is a directory with `dataset.yaml` and one table per record kind, each either
`<table>.jsonl` or `<table>.parquet`:

- `items`: `id`, `type`, `title`, `text`, `attributes` (object), `links` (object: entity type ->
  list of item ids, most general first, e.g. a product's brand or its category path root to leaf),
  `popularity` (number or null);
- `users`: `id`, `attributes`;
- `interactions`: `user`, `item`, `timestamp` (number), `context` (object: surface, device, hour...);
- `queries` (optional): `id`, `text`, `type`, `items` (relevant item ids), `split`;
- `profiles` (optional): `user`, `text`, `topics` (list of strings), `attributes`.

One more optional table, `embeddings.parquet` or `embeddings.jsonl`, brings precomputed item vectors:
`id` (an item id) and `vector` (list of floats). Every vector has the same dimension and only finite
values; `load_embeddings` reads it as `(ids, float32 matrix)`.

Tables are materialised as memory-mapped Arrow files through `datasets`, so a 10M-item catalog never
has to live in Python objects. Free-form objects (`attributes`, `links`, `context`) are stored as
JSON strings because their keys differ between entity types.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

TABLES = ("items", "users", "interactions", "queries", "profiles")
REQUIRED_TABLES = ("items", "users", "interactions")
SPLIT_PROTOCOLS = ("leave_one_out", "temporal")


class CatalogError(ValueError):
    """A problem in a dataset directory, located by file and (where it applies) line."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class EntityType:
    name: str
    description: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """Contents of `dataset.yaml`."""

    name: str
    entity_types: tuple[EntityType, ...]
    split: dict[str, Any] = field(default_factory=lambda: {"protocol": "leave_one_out"})
    description: str = ""

    @property
    def type_names(self) -> list[str]:
        return [t.name for t in self.entity_types]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "entity_types": [{"name": t.name, "description": t.description} for t in self.entity_types],
            "split": dict(self.split),
        }

    @classmethod
    def from_file(cls, path: Path) -> DatasetSpec:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(path, "missing dataset.yaml (expected name, entity_types, split)") from None
        except yaml.YAMLError as exc:
            raise CatalogError(path, f"malformed YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise CatalogError(path, "expected a mapping with keys name, entity_types, split")
        for key in ("name", "entity_types"):
            if key not in raw:
                raise CatalogError(path, f"missing required field '{key}'")
        types = raw["entity_types"]
        if not isinstance(types, list) or not types:
            raise CatalogError(path, "field 'entity_types' must be a non-empty list of {name, description}")
        parsed = []
        for i, entry in enumerate(types):
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise CatalogError(path, f"entity_types[{i}] must have a non-empty string 'name'")
            parsed.append(EntityType(entry["name"], str(entry.get("description", ""))))
        names = [t.name for t in parsed]
        if len(set(names)) != len(names):
            raise CatalogError(path, f"duplicate entity type names in {names}")
        split = raw.get("split") or {"protocol": "leave_one_out"}
        if isinstance(split, str):
            split = {"protocol": split}
        return cls(str(raw["name"]), tuple(parsed), checked_split(split, path), str(raw.get("description", "")))

    def with_split(self, overrides: Mapping[str, Any], where: str | os.PathLike) -> DatasetSpec:
        """This spec with `overrides` laid over its split (a run's `data.split`), checked as a file's would be."""
        return dataclasses.replace(self, split=checked_split({**self.split, **overrides}, where))


def checked_split(split: Any, where: str | os.PathLike) -> dict[str, Any]:
    """A split section (`protocol`, optional `hold_back`, temporal cut-offs), refused with `where` named
    when a field is wrong."""
    if not isinstance(split, Mapping):
        raise CatalogError(where, f"field 'split' must be a mapping or a protocol name, got {split!r}")
    if split.get("protocol") not in SPLIT_PROTOCOLS:
        raise CatalogError(where, f"field 'split.protocol' must be one of {SPLIT_PROTOCOLS}, got {split.get('protocol')!r}")
    hold_back = split.get("hold_back", 0)
    if isinstance(hold_back, bool) or not isinstance(hold_back, int) or hold_back < 0:
        raise CatalogError(where, f"field 'split.hold_back' must be an integer >= 0, got {hold_back!r}")
    if hold_back and split["protocol"] != "leave_one_out":
        raise CatalogError(
            where, "field 'split.hold_back' applies to the leave_one_out protocol; for a temporal split, move "
            "split.valid_time and split.test_time earlier instead"
        )
    return dict(split)


# Per table: field -> (required, kind). Kinds: str, num, obj (stored as JSON), strlist.
SCHEMA: dict[str, dict[str, tuple[bool, str]]] = {
    "items": {
        "id": (True, "str"),
        "type": (True, "str"),
        "title": (True, "str"),
        "text": (False, "str"),
        "attributes": (False, "obj"),
        "links": (False, "obj"),
        "popularity": (False, "num"),
    },
    "users": {"id": (True, "str"), "attributes": (False, "obj")},
    "interactions": {
        "user": (True, "str"),
        "item": (True, "str"),
        "timestamp": (True, "num"),
        "context": (False, "obj"),
    },
    "queries": {
        "id": (True, "str"),
        "text": (True, "str"),
        "type": (True, "str"),
        "items": (True, "strlist"),
        "split": (False, "str"),
    },
    "profiles": {
        "user": (True, "str"),
        "text": (True, "str"),
        "topics": (False, "strlist"),
        "attributes": (False, "obj"),
    },
}
_ARROW = {
    "str": datasets.Value("string"),
    "num": datasets.Value("float64"),
    "obj": datasets.Value("string"),
    "strlist": datasets.Sequence(datasets.Value("string")),
}

_DEFAULTS: dict[str, Any] = {"str": "", "num": None, "obj": "{}", "strlist": []}
# Rows per Arrow record batch when converting a table: bounds memory, keeps batches large enough to be fast.
_BATCH_ROWS = 65_536


def table_features(table: str) -> datasets.Features:
    return datasets.Features({name: _ARROW[kind] for name, (_, kind) in SCHEMA[table].items()})


def normalise_record(table: str, record: Any, path: Path, line: int) -> dict[str, Any]:
    """Check one record against the table schema and return it in storage form."""
    if not isinstance(record, dict):
        raise CatalogError(path, f"expected a JSON object, got {type(record).__name__}", line)
    out: dict[str, Any] = {}
    for name, (required, kind) in SCHEMA[table].items():
        value = record.get(name)
        if value is None:
            if required:
                raise CatalogError(path, f"missing required field '{name}'", line)
            out[name] = _DEFAULTS[kind]
            if table == "queries" and name == "split":
                out[name] = "test"
            continue
        if kind == "str":
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and name in ("id", "user", "item")
            ):
                value = str(value)
            if not isinstance(value, str):
                raise CatalogError(path, f"field '{name}' must be a string, got {type(value).__name__}", line)
            if required and not value.strip():
                raise CatalogError(path, f"field '{name}' must not be empty", line)
            out[name] = value
        elif kind == "num":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise CatalogError(path, f"field '{name}' must be a finite number, got {value!r}", line)
            out[name] = float(value)
        elif kind == "obj":
            if not isinstance(value, dict):
                raise CatalogError(
                    path, f"field '{name}' must be an object, got {type(value).__name__}", line
                )
            out[name] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                raise CatalogError(path, f"field '{name}' must be a list of strings", line)
            out[name] = [str(v) for v in value]
    return out


def _jsonl_batches(table: str, path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Checked records of a JSONL table, as Arrow batches (the per-record checks run here)."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogError(
                    path, f"malformed JSON: {exc.msg} at column {exc.colno}", line_no
                ) from None
            for name, value in normalise_record(table, record, path, line_no).items():
                columns[name].append(value)
            if len(columns[schema.names[0]]) == _BATCH_ROWS:
                yield pa.RecordBatch.from_pydict(columns, schema=schema)
                columns = {name: [] for name in schema.names}
    if columns[schema.names[0]]:
        yield pa.RecordBatch.from_pydict(columns, schema=schema)


def _parquet_batches(table: str, path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A Parquet table in storage form: columns cast to the schema, absent optional ones defaulted."""
    parquet = pq.ParquetFile(path)
    present = set(parquet.schema_arrow.names)
    missing = [n for n, (req, _) in SCHEMA[table].items() if req and n not in present]
    if missing:
        raise CatalogError(path, f"missing required column(s) {missing}")
    for batch in parquet.iter_batches(
        batch_size=_BATCH_ROWS, columns=[n for n in schema.names if n in present]
    ):
        arrays = []
        for field_ in schema:
            required, kind = SCHEMA[table][field_.name]
            default = "test" if (table, field_.name) == ("queries", "split") else _DEFAULTS[kind]
            if field_.name not in present:
                arrays.append(pa.array([default] * batch.num_rows, type=field_.type))
                continue
            try:
                column = batch.column(field_.name).cast(field_.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                expected = "JSON object strings" if kind == "obj" else f"{field_.type}"
                raise CatalogError(
                    path,
                    f"column '{field_.name}' must hold {expected}, "
                    f"got {batch.column(field_.name).type}: {exc}",
                ) from None
            if not required and kind in ("str", "obj"):
                column = column.fill_null(default)
            arrays.append(column)
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:v2".encode()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("NEO_CACHE_DIR", Path.home() / ".cache" / "neo"))


def table_file(root: Path, table: str) -> Path | None:
    """`<root>/<table>.parquet` or `.jsonl`, whichever exists (None if neither)."""
    for suffix in (".parquet", ".jsonl"):
        path = root / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def load_table(root: Path, table: str) -> datasets.Dataset | None:
    """Load `<root>/<table>.jsonl|parquet` as a memory-mapped Arrow dataset (None if absent).

    The first load converts the file to one Arrow stream file in the cache, keyed by the source's path,
    size and mtime: later loads memory-map it in milliseconds, and an edited file is converted again.
    The conversion writes a temporary file and renames it, so a crash never leaves a half cache.
    """
    jsonl, parquet = root / f"{table}.jsonl", root / f"{table}.parquet"
    if jsonl.exists() and parquet.exists():
        raise CatalogError(root, f"both {jsonl.name} and {parquet.name} exist; keep one")
    source = parquet if parquet.exists() else jsonl
    if not source.exists():
        if table in REQUIRED_TABLES:
            raise CatalogError(root, f"missing table '{table}' (expected {jsonl.name} or {parquet.name})")
        return None
    cached = cache_root() / "arrow" / f"{table}-{_file_fingerprint(source)}.arrow"
    if not cached.exists():
        schema = table_features(table).arrow_schema
        batches = (_parquet_batches if source is parquet else _jsonl_batches)(table, source, schema)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        try:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
    return datasets.Dataset.from_file(str(cached))


def row_error(path: Path, row: int, message: str, line_numbers: list[int] | None) -> CatalogError:
    """Locate a problem by JSONL line where lines are known, else by 0-based Parquet row."""
    if line_numbers is not None:
        return CatalogError(path, message, line_numbers[row])
    return CatalogError(path, f"row {row}: {message}")


def embeddings_file(root: Path) -> Path | None:
    """The optional embeddings table of a dataset directory (None if absent)."""
    found = [root / name for name in ("embeddings.parquet", "embeddings.jsonl") if (root / name).exists()]
    if len(found) > 1:
        raise CatalogError(root, "both embeddings.jsonl and embeddings.parquet exist; keep one")
    return found[0] if found else None


def load_embeddings(root: str | os.PathLike) -> tuple[list[str], np.ndarray] | None:
    """Read `embeddings.parquet|jsonl` as (item ids, float32 [n, dim]), checking shape and finiteness.

    Parquet is read as one Arrow list column (values + offsets), so a million vectors are checked with
    numpy rather than row by row. Unknown ids are the validator's business: it knows the items table.
    """
    path = embeddings_file(Path(root))
    if path is None:
        return None
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        for column in ("id", "vector"):
            if column not in table.column_names:
                raise CatalogError(path, f"missing required column '{column}' (expected id, vector)")
        ids = [str(v) for v in table.column("id").to_pylist()]
        line_numbers: list[int] | None = None
        vectors = table.column("vector").combine_chunks()
        if not pa.types.is_list(vectors.type) and not pa.types.is_large_list(vectors.type):
            raise CatalogError(path, f"column 'vector' must be a list of floats, got {vectors.type}")
        if vectors.null_count:
            row = int(np.flatnonzero(vectors.is_null().to_numpy(zero_copy_only=False))[0])
            raise row_error(path, row, "field 'vector' is missing", line_numbers)
        lengths = np.diff(vectors.offsets.to_numpy())
        values = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    else:
        ids, rows, line_numbers = [], [], []
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CatalogError(
                        path, f"malformed JSON: {exc.msg} at column {exc.colno}", line_no
                    ) from None
                if not isinstance(record, dict) or "id" not in record or "vector" not in record:
                    raise CatalogError(path, "expected an object with fields 'id' and 'vector'", line_no)
                vector = record["vector"]
                if not isinstance(vector, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector
                ):
                    raise CatalogError(path, "field 'vector' must be a list of numbers", line_no)
                ids.append(str(record["id"]))
                line_numbers.append(line_no)
                rows.append(vector)
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.array([v for r in rows for v in r], dtype=np.float32)
    if len(ids) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    dim = int(lengths[0])
    bad = np.flatnonzero(lengths != dim)
    if dim == 0 or bad.size:
        row = int(bad[0]) if bad.size else 0
        message = f"id {ids[row]!r}: vector has dimension {int(lengths[row])}, expected {dim} (the first row's, > 0)"
        raise row_error(path, row, message, line_numbers)
    matrix = values.reshape(len(ids), dim)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise row_error(path, row, f"id {ids[row]!r}: vector has NaN or infinite values", line_numbers)
    return ids, matrix


class Catalog:
    """A loaded dataset directory. Tables are Arrow-backed; Python-side indexes are built lazily."""

    def __init__(self, root: Path, spec: DatasetSpec, tables: dict[str, datasets.Dataset | None]):
        self.root = root
        self.spec = spec
        self.items: datasets.Dataset = tables["items"]
        self.users: datasets.Dataset = tables["users"]
        self.interactions: datasets.Dataset = tables["interactions"]
        self.queries: datasets.Dataset | None = tables.get("queries")
        self.profiles: datasets.Dataset | None = tables.get("profiles")

    @classmethod
    def load(cls, root: str | os.PathLike, split: Mapping[str, Any] | None = None) -> Catalog:
        """The dataset at `root`; `split` overrides fields of its dataset.yaml split (for example
        `{"hold_back": 1}`, a tuning run) without touching the file."""
        root = Path(root)
        if not root.is_dir():
            raise CatalogError(root, "not a directory (expected a dataset with dataset.yaml)")
        spec = DatasetSpec.from_file(root / "dataset.yaml")
        if split:
            spec = spec.with_split(split, "data.split")
        return cls(root, spec, {name: load_table(root, name) for name in TABLES})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type_names(self) -> list[str]:
        return self.spec.type_names

    @staticmethod
    def column(table: datasets.Dataset, name: str) -> list[Any]:
        """A whole column as a Python list, read straight from Arrow.

        Indexing a `datasets` column row by row costs about a millisecond per access; this is one call.
        """
        return table.data.column(name).to_pylist()

    @cached_property
    def item_types(self) -> np.ndarray:
        return np.asarray(self.column(self.items, "type"), dtype=object)

    @cached_property
    def item_row(self) -> dict[str, int]:
        """Item id -> row in `items`."""
        return {item_id: row for row, item_id in enumerate(self.column(self.items, "id"))}

    def item(self, item_id: str) -> dict[str, Any]:
        """One item as a dict, with `attributes` and `links` decoded."""
        record = dict(self.items[self.item_row[item_id]])
        record["attributes"] = json.loads(record["attributes"] or "{}")
        record["links"] = json.loads(record["links"] or "{}")
        return record

    def item_ids(self, entity_type: str) -> list[str]:
        ids = self.items.data.column("id")
        return ids.take(pa.array(self.rows_of_type(entity_type))).to_pylist()

    def rows_of_type(self, entity_type: str) -> np.ndarray:
        return np.flatnonzero(self.item_types == entity_type)

    def search_fields(self, entity_type: str, links: bool = True) -> tuple[list[str], list[str], list[str]]:
        """Ids, titles and the rest of what a search engine indexes for each item of one type: the text,
        then (with `links`) the titles of its linked items (a product's brand and categories, an episode's
        show), so a query that names them finds the item. Kept apart so a title weight can be tried without
        re-reading the rest (`neo.decoding.lexical.fit_index`)."""
        subset = self.items.select(self.rows_of_type(entity_type))
        titles = self.column(self.items, "title") if links else []
        ids, own_titles, rests = [], [], []
        for item_id, title, text in zip(subset["id"], subset["title"], subset["text"], strict=True):
            names = [titles[self.item_row[linked]] for _, chain in sorted(self.links.get(item_id, {}).items())
                     for linked in chain if linked in self.item_row] if links else []
            ids.append(item_id)
            own_titles.append(title)
            rests.append(". ".join([*([text] if text else []), *names]))
        return ids, own_titles, rests

    def search_texts(self, entity_type: str, links: bool = True, title_weight: int = 1
                     ) -> tuple[list[str], list[str]]:
        """Ids and the one text a search engine indexes for each item of one type (`search_fields` joined):
        neo's lexical prior and the BM25 baseline index the same. `title_weight` > 1 repeats the title that
        many times: the one-field form of BM25F's field weights, which neo fits on training queries
        (`neo.decoding.lexical.fit_index`)."""
        if title_weight < 1:
            raise ValueError(f"title_weight must be >= 1 (how many times the title counts), got {title_weight}")
        ids, titles, rests = self.search_fields(entity_type, links)
        return ids, [". ".join([*[title] * title_weight, *([rest] if rest else [])])
                     for title, rest in zip(titles, rests, strict=True)]

    @cached_property
    def links(self) -> dict[str, dict[str, list[str]]]:
        """Item id -> {entity type: [linked item ids]} for items that have links."""
        out: dict[str, dict[str, list[str]]] = {}
        for item_id, raw in zip(self.column(self.items, "id"), self.column(self.items, "links"), strict=True):
            if raw and raw != "{}":
                out[item_id] = json.loads(raw)
        return out

    def sequences(self) -> dict[str, list[tuple[str, float, dict[str, Any]]]]:
        """User id -> time-ordered [(item id, timestamp, context)], ties kept in file order."""
        users = self.column(self.interactions, "user")
        items = self.column(self.interactions, "item")
        stamps = self.interactions.data.column("timestamp").to_numpy()
        contexts = self.column(self.interactions, "context")
        decoded: dict[str, dict[str, Any]] = {}  # contexts repeat: decode each distinct string once
        order = np.lexsort((np.arange(len(stamps)), stamps))
        out: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}
        for row in order.tolist():
            ctx = contexts[row]
            if ctx not in decoded:
                decoded[ctx] = json.loads(ctx) if ctx and ctx != "{}" else {}
            out.setdefault(users[row], []).append((items[row], float(stamps[row]), dict(decoded[ctx])))
        return out

    def embeddings(self) -> tuple[list[str], np.ndarray] | None:
        """The optional precomputed item vectors: (item ids, float32 [n, dim]), or None."""
        return load_embeddings(self.root)

    def table_file(self, table: str) -> Path | None:
        """The file a table was loaded from (None for an absent optional table)."""
        return table_file(self.root, table)
