"""Converters from public recommendation datasets to neo's canonical catalog.

- `amazon`: the P5/LETTER preprocessing of Amazon 2018 (`items.json` + `sequences.txt`, 0-based ids).
  Products become items; brands and category-tree nodes become items of their own, linked from each
  product, so one model can recommend and search products, brands and categories.
- `s3rec`: the S3-Rec/TIGER preprocessing (`sequences.txt` with 1-based ids + `item2attributes.json`).
  Products only, no text; an optional published SID assignment is carried along for `neo.sids` to import.

Sequences carry order but no time, so the position in the user's sequence is the timestamp.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from neo.data.catalog import CatalogError, DatasetSpec, EntityType
from neo.data.writer import storage_json, write_spec, write_table
from neo.io import write_json

FORMATS = ("amazon", "s3rec")
EXTERNAL_SIDS_DIR = "external_sids"
# How many example titles / categories a derived brand or category text quotes.
EXAMPLES_IN_TEXT = 3


def convert(
    fmt: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    sids: str | os.PathLike | None = None,
    progress: bool = True,
    table_format: str = "parquet",
) -> Path:
    """Convert `src` (layout `fmt`) into a canonical dataset at `out`; return `out`.

    Tables default to Parquet: converted data is machine-made and loads several times faster than JSONL.
    """
    converters: dict[str, Callable[..., Path]] = {"amazon": convert_amazon, "s3rec": convert_s3rec}
    if fmt not in converters:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    return converters[fmt](
        Path(src),
        Path(out),
        sids=None if sids is None else Path(sids),
        progress=progress,
        table_format=table_format,
    )


def read_sequences(path: Path, progress: bool = True) -> list[tuple[str, list[str]]]:
    """`user item item ...` lines -> [(user, [items])], in file order."""
    if not path.exists():
        raise CatalogError(path, "missing sequences file (expected lines 'user item item ...')")
    out = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(
            tqdm(handle, desc=f"read {path.name}", unit=" users", disable=not progress), start=1
        ):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise CatalogError(path, "expected a user id followed by at least one item id", line_no)
            out.append((fields[0], fields[1:]))
    seen: set[str] = set()
    for user, _ in out:
        if user in seen:
            raise CatalogError(path, f"user {user!r} has more than one line")
        seen.add(user)
    return out


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CatalogError(path, "missing file") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(path, f"malformed JSON: {exc.msg} at column {exc.colno}", exc.lineno) from None


def _write_users_and_interactions(
    out: Path, sequences: list[tuple[str, list[str]]], known_items: set[str], source: Path, table_format: str
) -> Counter[str]:
    """Users and position-stamped interactions; returns interaction counts per item."""
    users, inter_users, inter_items, stamps = [], [], [], []
    for user, items in sequences:
        users.append(user)
        for position, item in enumerate(items):
            if item not in known_items:
                raise CatalogError(
                    source, f"user {user!r} interacts with item {item!r}, which has no metadata"
                )
            inter_users.append(user)
            inter_items.append(item)
            stamps.append(float(position))
    write_table(out, "users", {"id": users, "attributes": ["{}"] * len(users)}, table_format)
    write_table(
        out,
        "interactions",
        {"user": inter_users, "item": inter_items, "timestamp": stamps, "context": ["{}"] * len(stamps)},
        table_format,
    )
    return Counter(inter_items)


def _short(title: str, limit: int = 80) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 3].rstrip() + "..."


def brand_id(name: str) -> str:
    return f"brand:{name}"


def category_id(path: tuple[str, ...]) -> str:
    """Category nodes are identified by their whole path, so equal names under different parents differ."""
    return "category:" + " > ".join(path)


def convert_amazon(
    src: Path, out: Path, sids: Path | None = None, progress: bool = True, table_format: str = "parquet"
) -> Path:
    """Amazon 2018 (P5/LETTER layout) -> products, brands and category nodes."""
    metadata = _read_json(src / "items.json")
    if not isinstance(metadata, dict):
        raise CatalogError(
            src / "items.json", "expected an object {item id: {title, description, brand, categories}}"
        )
    sequences = read_sequences(src / "sequences.txt", progress)
    counts = _write_users_and_interactions(out, sequences, set(metadata), src / "sequences.txt", table_format)

    product_ids = sorted(metadata, key=lambda k: (len(k), k))
    brand_products: dict[str, list[str]] = defaultdict(list)
    category_products: dict[tuple[str, ...], list[str]] = defaultdict(list)
    columns: dict[str, list[Any]] = {
        name: [] for name in ("id", "type", "title", "text", "attributes", "links", "popularity")
    }

    def add(
        item_id: str,
        entity_type: str,
        title: str,
        text: str,
        attributes: dict,
        links: dict,
        popularity: float,
    ) -> None:
        for name, value in zip(
            columns,
            (item_id, entity_type, title, text, storage_json(attributes), storage_json(links), popularity),
            strict=True,
        ):
            columns[name].append(value)

    for pid in tqdm(product_ids, desc="products", disable=not progress):
        record = metadata[pid]
        for key in ("title", "description", "brand", "categories"):
            if key not in record:
                raise CatalogError(src / "items.json", f"item {pid!r}: missing field '{key}'")
        title = " ".join(record["title"].split())
        if not title:
            raise CatalogError(src / "items.json", f"item {pid!r}: empty title")
        brand = record["brand"].strip()
        path = tuple(node.strip() for node in record["categories"].split(",") if node.strip())
        links: dict[str, list[str]] = {}
        if brand:
            links["brand"] = [brand_id(brand)]
            brand_products[brand].append(pid)
        if path:
            prefixes = [path[: level + 1] for level in range(len(path))]
            links["category"] = [category_id(p) for p in prefixes]
            for prefix in prefixes:
                category_products[prefix].append(pid)
        description = " ".join(record["description"].split())
        text = description or ". ".join(
            filter(
                None, [f"Brand: {brand}" if brand else "", f"Category: {' > '.join(path)}" if path else ""]
            )
        )
        add(
            pid, "product", title, text, {"brand": brand, "categories": list(path)}, links, float(counts[pid])
        )

    def top_titles(pids: list[str]) -> str:
        best = sorted(pids, key=lambda p: (-counts[p], len(p), p))
        return "; ".join(_short(metadata[p]["title"]) for p in best[:EXAMPLES_IN_TEXT])

    for brand in tqdm(sorted(brand_products), desc="brands", disable=not progress):
        pids = brand_products[brand]
        leaves = Counter(
            metadata[p]["categories"].split(",")[-1].strip() for p in pids if metadata[p]["categories"]
        )
        kinds = [name for name, _ in leaves.most_common(EXAMPLES_IN_TEXT)]
        makes = f"makes {', '.join(kinds)} products" if kinds else "makes products"
        text = f"{brand}: {makes} such as {top_titles(pids)}."
        add(
            brand_id(brand),
            "brand",
            brand,
            text,
            {"products": len(pids)},
            {},
            float(sum(counts[p] for p in pids)),
        )

    for path in tqdm(sorted(category_products), desc="categories", disable=not progress):
        pids = category_products[path]
        brands = Counter(metadata[p]["brand"].strip() for p in pids if metadata[p]["brand"].strip())
        brand_text = ", ".join(name for name, _ in brands.most_common(EXAMPLES_IN_TEXT))
        text = (
            f"Category {' > '.join(path)}: {len(pids)} products"
            + (f" from brands such as {brand_text}" if brand_text else "")
            + f", for example {top_titles(pids)}."
        )
        attributes = {
            "path": list(path),
            "level": len(path),
            "parent": category_id(path[:-1]) if len(path) > 1 else None,
        }
        add(
            category_id(path), "category", path[-1], text, attributes, {}, float(sum(counts[p] for p in pids))
        )

    write_table(out, "items", columns, table_format)
    spec = DatasetSpec(
        src.name,
        (
            EntityType("product", "an item for sale; links to its brand and the nodes of its category path"),
            EntityType("brand", "a manufacturer, described by what it makes"),
            EntityType("category", "a node of the category tree, identified by its path from the root"),
        ),
        {"protocol": "leave_one_out"},
        f"Converted from {src.name} (format amazon); timestamps are positions.",
    )
    if sids is not None:
        import_external_sids(sids, product_ids, key_offset=0, out=out)
    write_spec(out, spec)
    return out


def convert_s3rec(
    src: Path, out: Path, sids: Path | None = None, progress: bool = True, table_format: str = "parquet"
) -> Path:
    """S3-Rec/TIGER layout (1-based ids, anonymous attributes) -> products only."""
    attributes_path = src / "item2attributes.json"
    attributes = _read_json(attributes_path) if attributes_path.exists() else {}
    if not isinstance(attributes, dict):
        raise CatalogError(attributes_path, "expected an object {item id: [attribute ids]}")
    sequences = read_sequences(src / "sequences.txt", progress)
    item_ids = sorted({item for _, items in sequences for item in items} | set(attributes), key=int)
    counts = _write_users_and_interactions(out, sequences, set(item_ids), src / "sequences.txt", table_format)
    columns: dict[str, list[Any]] = {
        name: [] for name in ("id", "type", "title", "text", "attributes", "links", "popularity")
    }
    for item in tqdm(item_ids, desc="products", disable=not progress):
        attribute_ids = [str(a) for a in attributes.get(item, [])]
        described = ", ".join(f"a{a}" for a in attribute_ids) or "none"
        for name, value in zip(
            columns,
            (
                item,
                "product",
                f"product {item}",
                f"Product {item}. Attributes: {described}.",
                storage_json({"attribute_ids": attribute_ids}),
                "{}",
                float(counts[item]),
            ),
            strict=True,
        ):
            columns[name].append(value)
    write_table(out, "items", columns, table_format)
    spec = DatasetSpec(
        src.name,
        (EntityType("product", "an item for sale (no text: anonymous attributes only)"),),
        {"protocol": "leave_one_out"},
        f"Converted from {src.name} (format s3rec); timestamps are positions.",
    )
    if sids is not None:
        import_external_sids(sids, item_ids, key_offset=1, out=out)
    write_spec(out, spec)
    return out


def import_external_sids(
    path: Path, item_ids: list[str], key_offset: int, out: Path, entity_type: str = "product"
) -> int:
    """Copy a published SID assignment into `<out>/external_sids/<type>.json` as {item id: [code strings]}.

    `key_offset` maps the file's keys to item ids (LETTER's Beauty file is keyed 0-based, its items are
    1-based). Every item must have codes and every code list the same length; returns that length.
    """
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise CatalogError(path, "expected an object {item key: [code strings]}")
    mapped: dict[str, list[str]] = {}
    for key, codes in raw.items():
        try:
            item = str(int(key) + key_offset)
        except ValueError:
            raise CatalogError(path, f"key {key!r} is not an integer item index") from None
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes):
            raise CatalogError(path, f"key {key!r}: expected a non-empty list of code strings, got {codes!r}")
        mapped[item] = codes
    missing = [item for item in item_ids if item not in mapped]
    if missing:
        raise CatalogError(
            path,
            f"{len(missing)} item(s) have no SIDs, e.g. item {missing[0]!r} "
            f"(key {int(missing[0]) - key_offset})",
        )
    extra = sorted(set(mapped) - set(item_ids), key=lambda k: (len(k), k))
    if extra:
        raise CatalogError(path, f"{len(extra)} key(s) name no catalog item, e.g. item {extra[0]!r}")
    levels = {len(codes) for codes in mapped.values()}
    if len(levels) != 1:
        raise CatalogError(path, f"inconsistent number of levels across items: {sorted(levels)}")
    write_json(
        out / EXTERNAL_SIDS_DIR / f"{entity_type}.json",
        {item: mapped[item] for item in item_ids},
        indent=None,
    )
    return levels.pop()
