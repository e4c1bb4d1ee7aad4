"""The canonical on-disk catalog and its loader.

A dataset is a directory with `dataset.yaml` and one table per record kind, each either
`<table>.jsonl` or `<table>.parquet`:

- `items`: `id`, `type`, `title`, `text`, `attributes` (object), `links` (object: entity type ->
  list of item ids, e.g. a product's brand), `popularity` (number or null);
- `users`: `id`, `attributes`;
- `interactions`: `user`, `item`, `timestamp` (number), `context` (object: surface, device, hour...);
- `queries` (optional): `id`, `text`, `type`, `items` (relevant item ids), `split`;
- `profiles` (optional): `user`, `text`, `topics` (list of strings), `attributes`.

Tables are materialised as memory-mapped Arrow files through `datasets`, so a 10M-item catalog never
has to live in Python objects. Free-form objects (`attributes`, `links`, `context`) are stored as
JSON strings because their keys differ between entity types.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import datasets
import numpy as np
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
        if split.get("protocol") not in SPLIT_PROTOCOLS:
            raise CatalogError(path, f"field 'split.protocol' must be one of {SPLIT_PROTOCOLS}, got {split.get('protocol')!r}")
        return cls(str(raw["name"]), tuple(parsed), dict(split), str(raw.get("description", "")))


# Per table: field -> (required, kind). Kinds: str, num, obj (stored as JSON), strlist.
SCHEMA: dict[str, dict[str, tuple[bool, str]]] = {
    "items": {"id": (True, "str"), "type": (True, "str"), "title": (True, "str"), "text": (False, "str"),
              "attributes": (False, "obj"), "links": (False, "obj"), "popularity": (False, "num")},
    "users": {"id": (True, "str"), "attributes": (False, "obj")},
    "interactions": {"user": (True, "str"), "item": (True, "str"), "timestamp": (True, "num"),
                     "context": (False, "obj")},
    "queries": {"id": (True, "str"), "text": (True, "str"), "type": (True, "str"), "items": (True, "strlist"),
                "split": (False, "str")},
    "profiles": {"user": (True, "str"), "text": (True, "str"), "topics": (False, "strlist"),
                 "attributes": (False, "obj")},
}
_ARROW = {"str": datasets.Value("string"), "num": datasets.Value("float64"), "obj": datasets.Value("string"),
          "strlist": datasets.Sequence(datasets.Value("string"))}


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
            out[name] = {"str": "", "num": None, "obj": "{}", "strlist": []}[kind]
            if table == "queries" and name == "split":
                out[name] = "test"
            continue
        if kind == "str":
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("id", "user", "item"):
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
                raise CatalogError(path, f"field '{name}' must be an object, got {type(value).__name__}", line)
            out[name] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                raise CatalogError(path, f"field '{name}' must be a list of strings", line)
            out[name] = [str(v) for v in value]
    return out


def _jsonl_records(table: str, path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogError(path, f"malformed JSON: {exc.msg} at column {exc.colno}", line_no) from None
            yield normalise_record(table, record, path, line_no)


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:v1".encode()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("NEO_CACHE_DIR", Path.home() / ".cache" / "neo"))


def load_table(root: Path, table: str) -> datasets.Dataset | None:
    """Load `<root>/<table>.jsonl|parquet` as a memory-mapped Arrow dataset (None if absent)."""
    jsonl, parquet = root / f"{table}.jsonl", root / f"{table}.parquet"
    if jsonl.exists() and parquet.exists():
        raise CatalogError(root, f"both {jsonl.name} and {parquet.name} exist; keep one")
    if parquet.exists():
        ds = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(cache_root() / "arrow"))
        missing = [n for n, (req, _) in SCHEMA[table].items() if req and n not in ds.column_names]
        if missing:
            raise CatalogError(parquet, f"missing required column(s) {missing}")
        return ds
    if not jsonl.exists():
        if table in REQUIRED_TABLES:
            raise CatalogError(root, f"missing table '{table}' (expected {jsonl.name} or {parquet.name})")
        return None
    cache_dir = cache_root() / "arrow" / f"{table}-{_file_fingerprint(jsonl)}"
    if (cache_dir / "dataset_info.json").exists():
        return datasets.load_from_disk(str(cache_dir))
    with _quiet():
        ds = datasets.Dataset.from_generator(
            _jsonl_records, gen_kwargs={"table": table, "path": jsonl}, features=table_features(table),
            cache_dir=str(cache_root() / "generator"),
        )
    tmp = cache_dir.with_name(cache_dir.name + f".tmp{os.getpid()}")
    ds.save_to_disk(str(tmp))
    if not cache_dir.exists():
        os.replace(tmp, cache_dir)
    return datasets.load_from_disk(str(cache_dir))


class _quiet:
    """Silence datasets' own progress bars while we convert; neo shows its own."""

    def __enter__(self) -> None:
        self._was = datasets.utils.logging.is_progress_bar_enabled()
        datasets.utils.logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            datasets.utils.logging.enable_progress_bar()


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
    def load(cls, root: str | os.PathLike) -> Catalog:
        root = Path(root)
        if not root.is_dir():
            raise CatalogError(root, "not a directory (expected a dataset with dataset.yaml)")
        spec = DatasetSpec.from_file(root / "dataset.yaml")
        return cls(root, spec, {name: load_table(root, name) for name in TABLES})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type_names(self) -> list[str]:
        return self.spec.type_names

    @cached_property
    def item_types(self) -> np.ndarray:
        return np.asarray(self.items["type"], dtype=object)

    @cached_property
    def item_row(self) -> dict[str, int]:
        """Item id -> row in `items`."""
        return {item_id: row for row, item_id in enumerate(self.items["id"])}

    def item(self, item_id: str) -> dict[str, Any]:
        """One item as a dict, with `attributes` and `links` decoded."""
        record = dict(self.items[self.item_row[item_id]])
        record["attributes"] = json.loads(record["attributes"] or "{}")
        record["links"] = json.loads(record["links"] or "{}")
        return record

    def item_ids(self, entity_type: str) -> list[str]:
        rows = np.flatnonzero(self.item_types == entity_type)
        ids = self.items["id"]
        return [ids[r] for r in rows]

    def rows_of_type(self, entity_type: str) -> np.ndarray:
        return np.flatnonzero(self.item_types == entity_type)

    @cached_property
    def links(self) -> dict[str, dict[str, list[str]]]:
        """Item id -> {entity type: [linked item ids]} for items that have links."""
        out: dict[str, dict[str, list[str]]] = {}
        for item_id, raw in zip(self.items["id"], self.items["links"], strict=True):
            if raw and raw != "{}":
                out[item_id] = json.loads(raw)
        return out

    def sequences(self) -> dict[str, list[tuple[str, float, dict[str, Any]]]]:
        """User id -> time-ordered [(item id, timestamp, context)], ties kept in file order."""
        users = self.interactions["user"]
        items = self.interactions["item"]
        stamps = np.asarray(self.interactions["timestamp"], dtype=np.float64)
        contexts = self.interactions["context"]
        order = np.lexsort((np.arange(len(stamps)), stamps))
        out: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}
        for row in order:
            ctx = contexts[row]
            out.setdefault(users[row], []).append(
                (items[row], float(stamps[row]), json.loads(ctx) if ctx and ctx != "{}" else {})
            )
        return out
