"""Prior masses for shallow fusion, stored so that a batch costs its own entries, not the catalog.

A beam search fuses a prior `q(item)` token by token: at trie node n the code leading to child c gets
`weight * log(mass(c) / mass(n))`, where mass is q summed over a subtree (`ItemTrie.subtree_mass`). Both
priors (`neo.decoding.prior`, `neo.decoding.lexical`) mix a per-type base distribution shared by every
request (popularity, uniform) with a few items the request singles out (a history's successors, a
query's best BM25 matches):

    mass(i, x) = share[i] * shared[table[i]][x] + sparse(i, x)

`shared` holds the base's subtree masses once per trie (one `[N + M]` vector per prior), and `sparse`
only the singled-out leaves and their ancestors (about 100 x depth per request), so a batch no longer
needs a dense `[B, N + M]` table: at 1M items and 16 requests that table cost 64 MB and 70 ms to sum.
`neutral` positions (leaves below a parent of an item added after training, for the transition prior)
read their parent's mass on the rows that ask for it, which makes the prior's ratio 1 there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from neo.decoding.trie import ItemTrie


class FusionBatch(NamedTuple):
    """Per request of a beam search: the prior mass of every trie node and leaf (see the module
    docstring for the layout), and the prior's weight `[B]` in that request's scores."""

    shared: tuple[torch.Tensor, ...]  # float32 [N + M] each: subtree masses of a base distribution
    table: torch.Tensor  # int64 [B]: which shared vector a request's base is
    share: torch.Tensor  # float32 [B]: how much of a request's mass the base is
    keys: torch.Tensor  # int64 [K], sorted: request * (N + M) + position of each sparse entry
    values: torch.Tensor  # float32 [K]
    weight: torch.Tensor  # float32 [B]
    neutral: torch.Tensor  # int64 [L], sorted: positions that read their parent's mass ...
    neutral_parent: torch.Tensor  # int64 [L]: ... this one
    redirects: torch.Tensor  # bool [B]: on requests where this is set
    parent_keys: torch.Tensor  # int64 [P], sorted: request * (N + M) + node of each sparse entry's parent ...
    child_values: torch.Tensor  # float32 [P, window]: ... and the sparse mass of that node's child per code
    open_parents: torch.Tensor  # int64 [O], sorted: the distinct `neutral_parent`s

    @property
    def batch_size(self) -> int:
        return int(self.table.shape[0])

    @property
    def width(self) -> int:
        return int(self.shared[0].shape[0])

    def _base(self, table: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The shared vector `table` (per request, broadcast against `positions`) read at `positions`."""
        base = self.shared[0][positions]
        for index, shared in enumerate(self.shared[1:], start=1):
            base = torch.where(table == index, shared[positions], base)
        return base

    def mass_at(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Mass of `positions` (trie nodes, then N + leaf) for requests `rows` (broadcast against them)."""
        rows = rows.expand_as(positions) if rows.dim() < positions.dim() else rows
        if self.neutral.numel():
            positions = positions.contiguous()
            slot = torch.searchsorted(self.neutral, positions).clamp(max=self.neutral.numel() - 1)
            moved = (self.neutral[slot] == positions) & self.redirects[rows]
            positions = torch.where(moved, self.neutral_parent[slot], positions)
        mass = self.share[rows] * self._base(self.table[rows], positions)
        if self.keys.numel():
            flat = rows * self.width + positions
            slot = torch.searchsorted(self.keys, flat).clamp(max=self.keys.numel() - 1)
            mass = mass + torch.where(self.keys[slot] == flat, self.values[slot], 0.0)
        return mass

    def child_mass(self, rows: torch.Tensor, nodes: torch.Tensor, children: torch.Tensor,
                   node_mass: torch.Tensor) -> torch.Tensor:
        """Mass of every child `children [R, window]` (positions, code by code) of `nodes [R]` for requests
        `rows [R]`, given the nodes' own masses `[R]`: what one beam step reads. A beam's node is looked up
        once, its children's sparse masses come as one row of `child_values`, so a step costs R lookups
        rather than R x window. Below an open parent (on requests that redirect) every child reads the
        node's mass: ratio 1."""
        mass = self.share[rows].unsqueeze(1) * self._base(self.table[rows].unsqueeze(1), children)
        if self.parent_keys.numel():
            flat = rows * self.width + nodes
            slot = torch.searchsorted(self.parent_keys, flat).clamp(max=self.parent_keys.numel() - 1)
            found = self.parent_keys[slot] == flat
            mass = mass + self.child_values[slot] * found.unsqueeze(1)
        if self.open_parents.numel():
            slot = torch.searchsorted(self.open_parents, nodes).clamp(max=self.open_parents.numel() - 1)
            opened = (self.open_parents[slot] == nodes) & self.redirects[rows]
            mass = torch.where(opened.unsqueeze(1), node_mass.unsqueeze(1), mass)
        return mass

    def dense(self) -> torch.Tensor:
        """The whole `[B, N + M]` table (for tests and inspection; the beam search never builds it)."""
        positions = torch.arange(self.width, device=self.table.device).expand(self.batch_size, -1)
        rows = torch.arange(self.batch_size, device=self.table.device).unsqueeze(1)
        return self.mass_at(rows, positions)


class PriorEntries(NamedTuple):
    """A batch's prior before it is summed up the trie, as both priors build it: each request's share of
    the per-type base distribution, and the leaves it singles out as (request, leaf, mass) entries."""

    share: torch.Tensor  # float32 [B]
    rows: torch.Tensor  # int64 [E]
    leaves: torch.Tensor  # int64 [E]
    values: torch.Tensor  # float32 [E]

    def leaf_mass(self, trie: ItemTrie, base: torch.Tensor, entity_types: Sequence[str]) -> torch.Tensor:
        """`q(leaf)` over the leaves of each request's type `[B, M]`, whole (for inspection and tests), from
        the base distribution `base [M]` (each type's part summing to 1)."""
        mass = self.share.unsqueeze(1) * base * trie.leaf_type_mask(entity_types)
        return mass.index_put_((self.rows, self.leaves), self.values, accumulate=True)


def request_weights(default: float, count: int, weights: Sequence[float] | None, device: torch.device
                    ) -> torch.Tensor:
    """float32 `[B]`: the prior's weight per request, `weights` where given, else `default` for all."""
    return torch.tensor([default] * count if weights is None else list(weights), dtype=torch.float32, device=device)


def sparse_fusion(trie: ItemTrie, shared: torch.Tensor, entries: PriorEntries, weight: torch.Tensor,
                  neutral: tuple[torch.Tensor, torch.Tensor] | None = None) -> FusionBatch:
    """A batch whose request `i` has mass `share[i] * shared + (its entries' values)`, summed up the trie:
    each singled-out leaf adds its value to every ancestor. `neutral` = (positions, their parents) read
    the parent's mass on every request."""
    share, rows, leaves, values = entries
    device = trie.device
    width = trie.n_nodes + trie.n_leaves
    parts_rows, parts_positions, parts_values = [rows], [leaves + trie.n_nodes], [values]
    position = trie.parent[leaves + trie.n_nodes]
    row, value = rows, values
    while position.numel():
        above = position >= 0
        row, value, position = row[above], value[above], position[above]
        parts_rows.append(row)
        parts_positions.append(position)
        parts_values.append(value)
        position = trie.parent[position]
    flat = torch.cat(parts_rows) * width + torch.cat(parts_positions)
    keys, inverse = torch.unique(flat, sorted=True, return_inverse=True)
    summed = torch.zeros(keys.numel(), dtype=torch.float32, device=device).index_add_(
        0, inverse, torch.cat(parts_values).float()
    )
    # each entry again under its parent, by code: one beam step reads a node's children as one row
    position = keys % width
    parent = trie.parent[position]
    below = parent >= 0
    parent_keys, slot = torch.unique((keys // width * width + parent)[below], sorted=True, return_inverse=True)
    child_values = torch.zeros(parent_keys.numel(), trie.window, dtype=torch.float32, device=device)
    child_values[slot, trie.code[position[below]]] = summed[below]
    batch = share.shape[0]
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    positions, parents = neutral if neutral is not None else (empty, empty)
    order = torch.argsort(positions)
    return FusionBatch(
        (shared,), torch.zeros(batch, dtype=torch.int64, device=device), share.float(), keys, summed,
        weight.float(), positions[order], parents[order],
        torch.full((batch,), neutral is not None, dtype=torch.bool, device=device),
        parent_keys, child_values, torch.unique(parents),
    )


def combine(batch_size: int, parts: Sequence[tuple[Sequence[int], FusionBatch]]) -> FusionBatch:
    """One batch from per-prior batches over disjoint requests (`parts`: (their rows here, the batch)).
    Requests no part covers get weight 0 (the model alone). At most one part may have neutral positions."""
    if not parts:
        raise ValueError("combine needs at least one part")
    device, width = parts[0][1].table.device, parts[0][1].width
    table = torch.zeros(batch_size, dtype=torch.int64, device=device)
    share = torch.zeros(batch_size, dtype=torch.float32, device=device)
    weight = torch.zeros(batch_size, dtype=torch.float32, device=device)
    redirects = torch.zeros(batch_size, dtype=torch.bool, device=device)
    shared: list[torch.Tensor] = []
    keys, values, parent_keys, child_values = [], [], [], []
    neutral = [(part.neutral, part.neutral_parent) for _, part in parts if part.neutral.numel()]
    if len(neutral) > 1:
        raise ValueError("at most one combined prior may have neutral positions")
    for rows, part in parts:
        here = torch.as_tensor(list(rows), dtype=torch.int64, device=device)
        table[here] = part.table + len(shared)
        share[here], weight[here], redirects[here] = part.share, part.weight, part.redirects
        shared.extend(part.shared)
        keys.append(here[part.keys // width] * width + part.keys % width)
        values.append(part.values)
        parent_keys.append(here[part.parent_keys // width] * width + part.parent_keys % width)
        child_values.append(part.child_values)
    all_keys, all_parent_keys = torch.cat(keys), torch.cat(parent_keys)
    order, parent_order = torch.argsort(all_keys), torch.argsort(all_parent_keys)
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    positions, parents = neutral[0] if neutral else (empty, empty)
    return FusionBatch(tuple(shared), table, share, all_keys[order], torch.cat(values)[order], weight,
                       positions, parents, redirects, all_parent_keys[parent_order],
                       torch.cat(child_values)[parent_order], torch.unique(parents))
