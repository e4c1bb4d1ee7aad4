"""Serve-time filters: which items a request may receive, applied to the trie's bitmaps, never rebuilding it.

Catalog-wide availability (`with_availability`) replaces the trie's `alive_bits` once; per-request allow
lists rebuild a bitmap table from a leaf-alive vector, deny lists and already-emitted items clear a few
bits along their ancestors (`ItemTrie.without_leaves`). Either way a subtree with nothing left below it
disappears, so decoding never spends a beam on a dead end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch

from neo.decoding.trie import ItemTrie


@dataclasses.dataclass(frozen=True)
class ItemFilters:
    """Per-request restrictions: `allow` (only these item ids, when given) and `deny` (never these)."""

    allow: Collection[str] | None = None
    deny: Collection[str] = ()


def with_availability(trie: ItemTrie, available: Mapping[str, Sequence[bool] | np.ndarray]) -> ItemTrie:
    """The trie restricted catalog-wide: `available[type][row]` says whether the SID table row may be emitted.

    Types not named stay fully available. Shares every structural tensor with `trie`.
    """
    alive = trie.leaf_alive.clone()
    for name, mask in available.items():
        rows = np.asarray(mask, dtype=bool)
        expected = len(trie.item_ids[name]) if name in trie.item_ids else None
        if expected is None:
            raise KeyError(
                f"availability given for unknown entity type {name!r}; known: {list(trie.item_ids)}"
            )
        if rows.shape != (expected,):
            raise ValueError(
                f"availability of {name!r} must have one flag per SID table row ({expected}), "
                f"got shape {rows.shape}"
            )
        leaves = torch.from_numpy(trie.leaf_of_row[name]).to(trie.device)
        alive[leaves] = torch.from_numpy(rows).to(trie.device)
    return trie.with_leaf_alive(alive)


def request_bits(
    trie: ItemTrie,
    entity_type: str | Sequence[str] | None,
    filters: ItemFilters | None,
    exclude: Collection[str] = (),
) -> torch.Tensor | None:
    """The child-bitmap table one request decodes with, or None when the trie's shared table will do.

    `entity_type`: the type(s) whose item ids `filters` and `exclude` name (None: every type). With an
    allow list, only the allowed items of those types stay; items of other types are all removed.
    """
    if entity_type is None:
        types: Sequence[str] = trie.vocab.type_names
    elif isinstance(entity_type, str):
        types = [entity_type]
    else:
        types = list(entity_type)
    deny = set(exclude) | set(filters.deny if filters else ())
    if filters is not None and filters.allow is not None:
        alive = torch.zeros_like(trie.leaf_alive)
        allowed = [leaf for name in types for leaf in trie.leaves_of(name, filters.allow)]
        alive[torch.tensor(allowed, dtype=torch.int64, device=trie.device)] = True
        bits = trie.bits_for_alive(alive & trie.leaf_alive)
    elif deny:
        bits = trie.alive_bits
    else:
        return None
    banned = [leaf for name in types for leaf in trie.leaves_of(name, deny)]
    if banned:
        bits = trie.without_leaves(bits, torch.tensor(banned, dtype=torch.int64, device=trie.device))
    return bits
