"""Nested SIDs: an item's code is its parent's code followed by its rank among the parent's children.

Some catalogs are trees with an order inside each node: a show's episodes, an album's tracks, a book
series' volumes. Residual quantisation scatters such siblings (their vectors differ), so "the next
episode of this show" is a pair the model has to memorise item by item. With nested codes the same
answer is a rule it learns once for the whole catalog: copy the prefix of the last item and take the
next rank. The parent type's table must be built first; every item needs a parent in it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

from neo.data.catalog import Catalog
from neo.sids.config import ParentConfig
from neo.sids.embed import group_of
from neo.sids.table import SIDTable


def build_order(types: Sequence[str], parents: dict[str, str | None]) -> list[str]:
    """`types` reordered so that every nested type comes after its parent type.

    Raises when a parent type gets no table of its own or when parents form a cycle.
    """
    for entity_type, parent in parents.items():
        if parent is not None and parent not in types:
            raise ValueError(
                f"sid config for type {entity_type!r}: parent type {parent!r} gets no SID table "
                f"(types with tables: {list(types)})"
            )
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(entity_type: str) -> None:
        if entity_type in ordered:
            return
        if entity_type in visiting:
            raise ValueError(f"sid config: parent types form a cycle through {entity_type!r}")
        visiting.add(entity_type)
        parent = parents.get(entity_type)
        if parent is not None:
            visit(parent)
        visiting.discard(entity_type)
        ordered.append(entity_type)

    for entity_type in types:
        visit(entity_type)
    return ordered


def sibling_ranks(parents: Sequence[str], order_keys: Sequence[Any]) -> np.ndarray:
    """Each item's 0-based rank among the items sharing its parent, by order key, then by position."""
    members: dict[str, list[int]] = defaultdict(list)
    for row, parent in enumerate(parents):
        members[parent].append(row)
    ranks = np.zeros(len(parents), dtype=np.int32)
    for rows in members.values():
        for rank, row in enumerate(sorted(rows, key=lambda r: (order_keys[r], r))):
            ranks[row] = rank
    return ranks


def _order_keys(catalog: Catalog, item_ids: Sequence[str], order_by: str | None) -> list[Any]:
    """The value of attribute `order_by` per item (all numbers or all strings); catalog position if unset."""
    if order_by is None:
        return [catalog.item_row[item] for item in item_ids]
    attributes = Catalog.column(catalog.items, "attributes")
    keys = []
    for item in item_ids:
        raw = attributes[catalog.item_row[item]]
        value = (json.loads(raw) if raw else {}).get(order_by)
        if value is None or isinstance(value, bool) or not isinstance(value, Real | str):
            raise ValueError(
                f"nested SIDs order items by attribute {order_by!r}, but item {item!r} has "
                f"{value!r} there (expected a number or a string)"
            )
        keys.append(value)
    if len({isinstance(key, str) for key in keys}) > 1:
        raise ValueError(f"nested SIDs: attribute {order_by!r} mixes numbers and strings across items")
    return keys


def nested_codes(
    catalog: Catalog, item_ids: Sequence[str], parent: ParentConfig, parent_table: SIDTable
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Codes [n_items, parent levels + 1] and codebook sizes: the parent's code, then the sibling rank.

    Rows are unique because parent codes are, and ranks are within a parent. The last level is as
    large as the largest family.
    """
    parents = group_of(catalog, item_ids, parent.type)  # the first link, as `embedder.group_by` takes it
    orphans = [item for item, p in zip(item_ids, parents, strict=True) if p is None or not parent_table.contains(p)]
    if orphans:
        raise ValueError(
            f"nested SIDs need a linked {parent.type!r} with a SID for every item; {len(orphans)} item(s) "
            f"have none, e.g. {orphans[:5]} (give them a link, or drop `parent` for this type)"
        )
    ranks = sibling_ranks(parents, _order_keys(catalog, item_ids, parent.order_by))
    prefix = np.asarray([parent_table.code_of(p) for p in parents], np.int32).reshape(-1, parent_table.levels)
    codes = np.concatenate([prefix, ranks[:, None]], axis=1)
    family = int(ranks.max()) + 1 if len(ranks) else 1
    return codes, (*parent_table.codebook_sizes, family)
