"""Build the SID tables of a catalog (one per entity type), and give unseen items codes later.

Pipeline per type: embed items -> fit the residual quantiser -> encode -> collision policy -> SIDTable,
or import a bring-your-own assignment when the type's config names an existing file. Writes
`<output_dir>/sids/` (tables, `<type>.codebooks.npz`, `report.json`), the folder every later stage
finds by convention.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from neo.data.catalog import Catalog
from neo.io import write_json
from neo.sids.byo import import_sids, read_sids
from neo.sids.collisions import CodeRanker, disambiguate, resolve_by_popularity
from neo.sids.config import ParentConfig, TypeSIDConfig, selected_types, type_config
from neo.sids.embed import embed_items, training_histories
from neo.sids.nest import build_order, nested_codes
from neo.sids.quantize import ResidualQuantizer, fit_quantizer
from neo.sids.report import quality_report
from neo.sids.table import SIDS_DIR, SIDTable, codebooks_path, save_tables

log = logging.getLogger(__name__)
REPORT_FILE = "report.json"


def load_quantizer(sids_dir: str | os.PathLike, entity_type: str) -> ResidualQuantizer:
    """The fitted codebooks saved beside a type's table (for `encode_new_items`)."""
    return ResidualQuantizer.load(codebooks_path(sids_dir, entity_type))


def item_popularity(catalog: Catalog, item_ids: list[str]) -> np.ndarray:
    """Popularity per item: the catalog's `popularity` field, else training interactions.

    An item nobody interacts with directly (a brand) counts the interactions of the items linking to it.
    """
    column = catalog.items["popularity"]
    given = [column[catalog.item_row[i]] for i in item_ids]
    if all(value is not None for value in given):
        return np.asarray(given, dtype=np.float64)
    counts = Counter(item for history in training_histories(catalog).values() for item in history)
    linked = Counter()
    for source, targets in catalog.links.items():
        for ids in targets.values():
            for target in ids:
                linked[target] += counts[source]
    return np.asarray(
        [
            value if value is not None else counts[item] or linked[item]
            for item, value in zip(item_ids, given, strict=True)
        ],
        dtype=np.float64,
    )


def model_ranker(model: ResidualQuantizer, projected: np.ndarray, extra_size: int = 0) -> CodeRanker:
    """Codes nearest the item's residual first; on a disambiguation level (beyond the model's), lowest first."""

    def rank(row: int, prefix: tuple[int, ...]) -> np.ndarray:
        if len(prefix) < model.levels:
            return model.ranked_codes(projected[row], prefix)
        return np.arange(extra_size)

    return rank


def build_type_table(
    entity_type: str,
    item_ids: list[str],
    embeddings: np.ndarray,
    cfg: TypeSIDConfig,
    popularity: np.ndarray | None,
    embedding_hash: str,
) -> tuple[SIDTable, ResidualQuantizer, dict[str, Any]]:
    """Fit, encode and resolve collisions for one type; returns the table, the fitted model and its report."""
    start = time.perf_counter()
    model, raw = fit_quantizer(embeddings, cfg.quantizer)
    sizes = list(model.codebook_sizes)
    if cfg.collisions == "disambiguate":
        codes, extra = disambiguate(raw, popularity)
        sizes.append(extra)
        moved = int((codes[:, -1] > 0).sum())
    else:
        codes, moved_rows = resolve_by_popularity(
            raw, sizes, popularity, model_ranker(model, model.project(embeddings))
        )
        moved = len(moved_rows)
    meta = {
        "source": "built",
        "config": cfg.to_dict(),
        "embedding_hash": embedding_hash,
        "collisions": cfg.collisions,
        "quantizer_levels": model.levels,
    }
    table, report = _table_with_report(
        entity_type,
        item_ids,
        (raw, codes, sizes),
        embeddings,
        start,
        meta,
        embedder=cfg.embedder.name,
        quantizer=cfg.quantizer.method,
        collisions=cfg.collisions,
        moved_items=moved,
    )
    return table, model, report


def _table_with_report(
    entity_type: str,
    item_ids: list[str],
    codes: tuple[np.ndarray, np.ndarray, tuple[int, ...] | list[int]],
    embeddings: np.ndarray,
    started: float,
    meta: dict[str, Any],
    **report_fields: Any,
) -> tuple[SIDTable, dict[str, Any]]:
    """The table of final codes and its quality report; `codes` = (before the policy, final, sizes)."""
    before, final, sizes = codes
    table = SIDTable(entity_type, item_ids, final, sizes, meta)
    report = quality_report(
        before,
        final,
        sizes,
        embeddings,
        time.perf_counter() - started,
        source=meta["source"],
        **report_fields,
        version=table.version,
    )
    return table, report


def build_nested_table(
    catalog: Catalog,
    entity_type: str,
    item_ids: list[str],
    embeddings: np.ndarray,
    cfg: TypeSIDConfig,
    parent: ParentConfig,
    parent_table: SIDTable,
    embedding_hash: str,
) -> tuple[SIDTable, dict[str, Any]]:
    """A nested type's table (`neo.sids.nest`); its embeddings only feed the quality report."""
    start = time.perf_counter()
    codes, sizes = nested_codes(catalog, item_ids, parent, parent_table)
    meta = {
        "source": "nested",
        "config": cfg.to_dict(),
        "embedding_hash": embedding_hash,
        "parent_version": parent_table.version,
    }
    return _table_with_report(
        entity_type, item_ids, (codes, codes, sizes), embeddings, start, meta,
        parent=parent.type, order_by=parent.order_by,
    )


def build_sid_tables(
    catalog: Catalog,
    sid_cfg: Any,
    output_dir: str | os.PathLike,
) -> tuple[dict[str, SIDTable], dict[str, Any]]:
    """SID tables for the configured entity types (all by default), saved to `<output_dir>/sids/`.

    Returns the tables and the report (type -> quality numbers), also written to `sids/report.json`.
    """
    sids_dir = Path(output_dir) / SIDS_DIR
    tables: dict[str, SIDTable] = {}
    report: dict[str, Any] = {}
    types = selected_types(sid_cfg, catalog.type_names)
    configs = {entity_type: type_config(sid_cfg, entity_type) for entity_type in types}
    parents = {t: cfg.parent.type if cfg.parent else None for t, cfg in configs.items()}
    for entity_type in tqdm(build_order(types, parents), desc="SID tables"):
        start = time.perf_counter()
        cfg = configs[entity_type]
        item_ids = catalog.item_ids(entity_type)
        if not item_ids:
            log.warning("entity type %r has no items; no SID table", entity_type)
            continue
        embeddings, embedding_hash = embed_items(catalog, item_ids, cfg.embedder, entity_type)
        if cfg.parent is not None:
            if cfg.parent.type not in tables:
                raise ValueError(
                    f"sid config for type {entity_type!r}: parent type {cfg.parent.type!r} has no items, so no table"
                )
            table, type_report = build_nested_table(
                catalog, entity_type, item_ids, embeddings, cfg, cfg.parent, tables[cfg.parent.type], embedding_hash
            )
        elif cfg.byo and Path(cfg.byo).exists():
            table = import_sids(
                cfg.byo,
                entity_type,
                item_ids,
                duplicates=cfg.collisions,
                popularity=item_popularity(catalog, item_ids),
            )
            file_hash = hashlib.sha256(Path(cfg.byo).read_bytes()).hexdigest()[:16]
            table = SIDTable(
                entity_type,
                table.item_ids,
                table.codes,
                table.codebook_sizes,
                {**table.meta, "file_hash": file_hash, "config": cfg.to_dict()},
            )
            type_report = quality_report(
                read_sids(cfg.byo, entity_type, item_ids),
                table.codes,
                table.codebook_sizes,
                embeddings,
                0.0,
                source="byo",
                embedder=cfg.embedder.name,
                collisions=cfg.collisions,
                version=table.version,
            )
        else:
            table, model, type_report = build_type_table(
                entity_type, item_ids, embeddings, cfg, item_popularity(catalog, item_ids), embedding_hash
            )
            model.save(codebooks_path(sids_dir, entity_type))
        type_report["seconds"] = round(time.perf_counter() - start, 3)
        tables[entity_type], report[entity_type] = table, type_report
        log.info(
            "SIDs %s: %s",
            entity_type,
            json.dumps(
                {
                    k: type_report[k]
                    for k in (
                        "items",
                        "collision_rate_before",
                        "collision_rate_after",
                        "prefix_coherence_l1",
                        "random_pair_similarity",
                    )
                }
            ),
        )
    tables = {t: tables[t] for t in types if t in tables}  # catalog order, whatever the build order
    report = {t: report[t] for t in tables}
    save_tables(sids_dir, tables)
    write_json(sids_dir / REPORT_FILE, report)
    return tables, report


@dataclass
class NewItemCodes:
    """Codes for items the table did not have, and the table extended with them."""

    item_ids: list[str]
    codes: np.ndarray
    """Final codes [n_new, table levels], unique against the old items and each other."""
    raw_codes: np.ndarray
    """What the fitted codebooks gave [n_new, quantiser levels], before the collision policy."""
    collided: list[str]
    """New items whose code (with the disambiguation digit 0, for that policy) was already taken."""
    table: SIDTable


def encode_new_items(
    model: ResidualQuantizer, embeddings: np.ndarray, table: SIDTable, item_ids: list[str]
) -> NewItemCodes:
    """Give unseen items codes with the fitted codebooks, never moving an existing item's code.

    The table's policy applies among what is free: under `disambiguate` a new item takes the lowest free
    number in its group; under `popularity` the nearest free code. If a group's numbering is full (the
    extra level cannot grow without changing the vocabulary), the search backs off to nearby prefixes.
    """
    existing = [i for i in item_ids if table.contains(i)]
    if existing:
        raise ValueError(
            f"{len(existing)} item(s) already have SIDs in the {table.entity_type!r} table, "
            f"e.g. {existing[:5]}; encode_new_items is for unseen items"
        )
    if len(set(item_ids)) != len(item_ids) or len(item_ids) != len(embeddings):
        raise ValueError(
            f"need one embedding per distinct new item; got {len(embeddings)} rows for "
            f"{len(item_ids)} ids ({len(set(item_ids))} distinct)"
        )
    if tuple(table.codebook_sizes[: model.levels]) != model.codebook_sizes:
        raise ValueError(
            f"codebooks {model.codebook_sizes} do not match table {table.entity_type!r} sizes "
            f"{table.codebook_sizes}; load the codebooks saved with this table"
        )
    raw = model.encode(embeddings)
    extra_levels = table.levels - model.levels
    start = np.concatenate([raw, np.zeros((len(raw), extra_levels), np.int32)], axis=1)
    extra_size = table.codebook_sizes[-1] if extra_levels else 0
    taken = {tuple(row) for row in table.codes.tolist()}
    rank = model_ranker(model, model.project(embeddings), extra_size)
    codes, moved = resolve_by_popularity(start, table.codebook_sizes, None, rank, taken)
    collided = [item_ids[r] for r in moved]
    return NewItemCodes(list(item_ids), codes, raw, collided, table.with_items(item_ids, codes))


def encode_new_children(
    table: SIDTable,
    parent_table: SIDTable,
    item_ids: list[str],
    parents: list[str],
    order_keys: list[Any] | None = None,
) -> NewItemCodes:
    """Give unseen items of a nested type (`neo.sids.nest`) codes: their parent's code + the next free ranks.

    A new episode comes after the episodes its show already has, so its code is what "the next episode"
    already predicts. Within one parent the new items take ranks in `order_keys` order (then input
    order); existing items never move, so a new item is never placed before an old sibling. A parent may
    be new too: give it a code first (`encode_new_items` on the parent table) and pass the extended table.
    The rank level cannot grow without changing the vocabulary, so a family that would outgrow it fails.
    """
    if table.parent_type is None:
        raise ValueError(f"the {table.entity_type!r} table is not nested; use encode_new_items")
    if parent_table.entity_type != table.parent_type:
        raise ValueError(
            f"the {table.entity_type!r} table nests under {table.parent_type!r}, "
            f"got the {parent_table.entity_type!r} table as parent"
        )
    if len(parents) != len(item_ids) or (order_keys is not None and len(order_keys) != len(item_ids)):
        raise ValueError(
            f"need one parent (and one order key, if given) per new item; got {len(item_ids)} ids, "
            f"{len(parents)} parents, {'no' if order_keys is None else len(order_keys)} order keys"
        )
    known = [i for i in item_ids if table.contains(i)]
    if known or len(set(item_ids)) != len(item_ids):
        raise ValueError(
            f"new items must be distinct and unseen; already in the {table.entity_type!r} table: {known[:5]}"
        )
    orphans = [(i, p) for i, p in zip(item_ids, parents, strict=True) if not parent_table.contains(p)]
    if orphans:
        raise ValueError(
            f"{len(orphans)} new item(s) name a parent without a SID in the {parent_table.entity_type!r} "
            f"table, e.g. {orphans[:5]}; encode new parents first"
        )
    next_rank = {
        parent: table.code_of(members[-1])[-1] + 1 for parent, members in table.families(parent_table).items()
    }
    keys = order_keys if order_keys is not None else [0] * len(item_ids)
    codes = np.zeros((len(item_ids), table.levels), np.int32)
    family_size = table.codebook_sizes[-1]
    full: dict[str, list[str]] = {}
    for row in sorted(range(len(item_ids)), key=lambda r: (parents[r], keys[r], r)):
        rank = next_rank.get(parents[row], 0)
        if rank >= family_size:
            full.setdefault(parents[row], []).append(item_ids[row])
            continue
        next_rank[parents[row]] = rank + 1
        codes[row] = (*parent_table.code_of(parents[row]), rank)
    if full:
        parent, items = next(iter(full.items()))
        raise ValueError(
            f"the {table.entity_type!r} rank level has {family_size} codes and is full for {len(full)} "
            f"parent(s), e.g. {parent!r} (no rank for {items[:5]}); rebuild the SIDs to grow it"
        )
    return NewItemCodes(list(item_ids), codes, codes.copy(), [], table.with_items(item_ids, codes))
