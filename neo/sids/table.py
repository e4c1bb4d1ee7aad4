"""The SID table: item id <-> code tuple for one entity type, saved and reloaded bit-identically."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from neo.io import atomic_open, write_json

SIDS_DIR = "sids"


class SIDTable:
    """Codes of every item of one entity type; rows are unique code tuples (collisions resolved)."""

    def __init__(self, entity_type: str, item_ids: Sequence[str], codes: np.ndarray,
                 codebook_sizes: Sequence[int], meta: Mapping[str, Any] | None = None):
        codes = np.ascontiguousarray(codes, dtype=np.int32)
        if codes.ndim != 2 or codes.shape[0] != len(item_ids):
            raise ValueError(f"codes must be [n_items, levels]; got {codes.shape} for {len(item_ids)} items")
        if codes.shape[1] != len(codebook_sizes):
            raise ValueError(f"codes have {codes.shape[1]} levels but {len(codebook_sizes)} codebook sizes")
        if len(codes) and ((codes < 0).any() or (codes >= np.asarray(codebook_sizes)).any()):
            raise ValueError(f"type {entity_type!r}: codes outside codebook sizes {tuple(codebook_sizes)}")
        self.entity_type = entity_type
        self.item_ids = list(item_ids)
        self.codes = codes
        self.codebook_sizes = tuple(int(s) for s in codebook_sizes)
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def levels(self) -> int:
        return len(self.codebook_sizes)

    @cached_property
    def _row_of_item(self) -> dict[str, int]:
        return {item: row for row, item in enumerate(self.item_ids)}

    @cached_property
    def _item_of_code(self) -> dict[tuple[int, ...], str]:
        table = {tuple(int(c) for c in row): item for row, item in zip(self.codes, self.item_ids, strict=True)}
        if len(table) != len(self.item_ids):
            raise ValueError(f"type {self.entity_type!r}: code tuples are not unique; resolve collisions first")
        return table

    def code_of(self, item_id: str) -> tuple[int, ...]:
        try:
            return tuple(int(c) for c in self.codes[self._row_of_item[item_id]])
        except KeyError:
            raise KeyError(f"item {item_id!r} has no SID in the {self.entity_type!r} table") from None

    def with_items(self, item_ids: Sequence[str], codes: np.ndarray) -> SIDTable:
        """This table with new items appended (same sizes and meta; existing rows untouched)."""
        return SIDTable(
            self.entity_type,
            [*self.item_ids, *item_ids],
            np.concatenate([self.codes, np.asarray(codes, np.int32).reshape(len(item_ids), self.levels)]),
            self.codebook_sizes,
            self.meta,
        )

    def item_of(self, codes: Sequence[int]) -> str | None:
        return self._item_of_code.get(tuple(int(c) for c in codes))

    def contains(self, item_id: str) -> bool:
        return item_id in self._row_of_item

    @property
    def parent_type(self) -> str | None:
        """For a nested type (`neo.sids.nest`), the type whose codes prefix these; its last level is a
        sibling rank. None for quantised and imported types."""
        if self.meta.get("source") != "nested":
            return None
        return ((self.meta.get("config") or {}).get("parent") or {}).get("type")

    def families(self, parents: SIDTable) -> dict[str, list[str]]:
        """For a nested table: parent id -> its children in sibling order, read off the codes (a child's
        code is its parent's code + its rank). Rows whose prefix is no parent's code are skipped."""
        out: dict[str, list[str]] = {}
        for row in np.argsort(self.codes[:, -1], kind="stable").tolist():
            parent = parents.item_of(self.codes[row, :-1])
            if parent is not None:
                out.setdefault(parent, []).append(self.item_ids[row])
        return out

    @property
    def version(self) -> str:
        """Hash of the table's content: changes whenever any item's code changes."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.entity_type, self.codebook_sizes]).encode())
        digest.update("\n".join(self.item_ids).encode())
        digest.update(self.codes.tobytes())
        return digest.hexdigest()[:16]

    # ----- persistence ----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write `<directory>/<type>.npz` (ids + codes) and `<type>.json` (shape, meta, version)."""
        directory = Path(directory)
        npz = directory / f"{self.entity_type}.npz"
        with atomic_open(npz, "wb") as handle:
            np.savez(handle, item_ids=np.asarray(self.item_ids, dtype=np.str_), codes=self.codes)
        write_json(directory / f"{self.entity_type}.json", {
            "entity_type": self.entity_type, "items": len(self), "codebook_sizes": list(self.codebook_sizes),
            "version": self.version, "meta": self.meta,
        })
        return npz

    @classmethod
    def load(cls, directory: str | os.PathLike, entity_type: str) -> SIDTable:
        directory = Path(directory)
        header_path = directory / f"{entity_type}.json"
        try:
            header = json.loads(header_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{header_path}: no SID table for type {entity_type!r}") from None
        with np.load(directory / f"{entity_type}.npz", allow_pickle=False) as data:
            table = cls(entity_type, data["item_ids"].tolist(), data["codes"], header["codebook_sizes"],
                        header.get("meta"))
        if table.version != header["version"]:
            raise ValueError(f"{header_path}: table content does not match its recorded version hash")
        return table


def codebooks_path(sids_dir: str | os.PathLike, entity_type: str) -> Path:
    """Where a quantised type's fitted codebooks sit beside its table (`neo.sids.build.load_quantizer`)."""
    return Path(sids_dir) / f"{entity_type}.codebooks.npz"


def save_tables(directory: str | os.PathLike, tables: Mapping[str, SIDTable]) -> None:
    directory = Path(directory)
    for table in tables.values():
        table.save(directory)
    write_json(directory / "index.json", {"types": list(tables)})


def load_tables(directory: str | os.PathLike) -> dict[str, SIDTable]:
    """Load every table listed in `<directory>/index.json` (a run's or checkpoint's `sids/`)."""
    directory = Path(directory)
    index = directory / "index.json"
    if not index.exists():
        raise FileNotFoundError(f"{index}: no SID tables here (run `neo run build_sids` first)")
    return {t: SIDTable.load(directory, t) for t in json.loads(index.read_text())["types"]}
