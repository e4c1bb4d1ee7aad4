"""The catalog as a device-resident prefix tree over SID codes, one tensor set for every entity type.

Layout (all ids global, several types concatenated so one kernel serves them all):

- **nodes** `0..N-1`: one per distinct code prefix (the root of a type is its empty prefix). Node `n` has
  a child bitmap `bits[n]` of `words` int32 words (bit `c` set = code `c` continues the prefix, LSB
  first) and `first_child[n]`; the child reached by code `c` is
  `first_child[n] + rank[n, c >> 5] + popcount(bits[n, c >> 5] & ((1 << (c & 31)) - 1))`, where `rank`
  is the exclusive prefix popcount over words. Children of the last level are **leaves**.
- **leaves** `0..M-1`: one per item, in code order per type; `leaf_row` maps back to the SID table row.

Memory is `N * words * 8` bytes plus a few int64 per item, and `N` is bounded by the codebook shape
(`sum_l min(prod(codebook[:l]), items)`), so a 1M-item 3x256 catalog costs a few MB of bitmaps.

`bits` is the structure (it decides child numbering and never changes); `alive_bits` is what decoding
may emit: equal to `bits` unless catalog-wide availability was applied (`with_leaf_alive`), and
per-request restrictions derive further tables from it without rebuilding anything.

`step` (`StepTables`, built on first use and cached) re-expresses the structure for the decoding loop:
what each token id does (one column lookup), the bitmaps as 16-bit half-words with the child id base of
each half-word (a child is one gather plus a 64k-entry popcount lookup), and per-mode constants.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from neo.kernels import DONE, FREE, SPAN, UNCONSTRAINED
from neo.sids.table import SIDTable
from neo.vocab import ALIGN, SIDVocab

MASK32 = 0xFFFFFFFF


def popcount32(words: torch.Tensor) -> torch.Tensor:
    """Bits set in each 32-bit value of an int64 tensor (values in [0, 2**32)); SWAR, no lookup table."""
    x = words - ((words >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) & MASK32) >> 24


def to_int32_words(values: torch.Tensor) -> torch.Tensor:
    """Reinterpret int64 values in [0, 2**32) as int32 bit patterns (the packed-bitmask word type)."""
    return values.to(torch.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class ItemTrie:
    """Device tensors of the SID prefix trees of every entity type, plus host maps back to item ids."""

    vocab: SIDVocab
    words: int
    bits: torch.Tensor  # int32 [N, words]: structural child bitmaps
    alive_bits: torch.Tensor  # int32 [N, words]: child bitmaps of what may be emitted
    rank: torch.Tensor  # int64 [N, words]: set bits of `bits` in earlier words
    first_child: torch.Tensor  # int64 [N]
    parent: torch.Tensor  # int64 [N + M]: parent node of a node (-1 for roots) or, at N + leaf, of a leaf
    code: torch.Tensor  # int64 [N + M]: the code that leads from the parent to this node/leaf
    leaf_alive: torch.Tensor  # bool [M]
    leaf_codes: torch.Tensor  # int64 [M, max_levels], -1 past a type's levels
    type_root: torch.Tensor  # int64 [T]
    type_nonempty: torch.Tensor  # bool [T]
    n_levels: torch.Tensor  # int64 [T]
    level_start: torch.Tensor  # int64 [T, max_levels]: token id of code 0 of each level
    open_ids: torch.Tensor  # int64 [T]
    close_ids: torch.Tensor  # int64 [T]
    sid_kind: torch.Tensor  # int64 [total - span_start]: 0 pad, 1 open, 2 close, 3 code
    sid_type: torch.Tensor  # int64 [total - span_start]
    sid_level: torch.Tensor  # int64 [total - span_start]
    sid_code: torch.Tensor  # int64 [total - span_start]
    leaf_offset: dict[str, int]  # first leaf id of each type
    leaf_row: np.ndarray  # int64 [M]: row of the leaf's item in its type's SID table
    item_ids: dict[str, list[str]]  # per type, the SID table's item ids (row order)
    leaf_of_row: dict[str, np.ndarray]  # per type, SID table row -> leaf id

    # ----- construction -----------------------------------------------------------------------
    @classmethod
    def build(
        cls, vocab: SIDVocab, tables: Mapping[str, SIDTable], device: torch.device | str = "cpu"
    ) -> ItemTrie:
        """Build the tries of all `tables` (types absent from `tables` get an empty trie), vectorised."""
        for name in tables:
            vocab.block(name)  # raises a KeyError naming the known types
        words = max(-(-size // ALIGN) for b in vocab.blocks.values() for size in b.codebook_sizes)
        max_levels = vocab.max_levels
        parts = []
        node_base = leaf_base = 0
        for block in vocab.blocks.values():
            table = tables.get(block.name)
            if table is not None and tuple(table.codebook_sizes) != block.codebook_sizes:
                raise ValueError(
                    f"SID table {block.name!r} has codebook sizes {table.codebook_sizes}, "
                    f"the vocabulary expects {block.codebook_sizes}"
                )
            codes = table.codes if table is not None else np.zeros((0, block.levels), np.int32)
            part = _build_type(block.name, codes, words, max_levels, node_base, leaf_base)
            parts.append(part)
            node_base += part["n_nodes"]
            leaf_base += len(codes)

        def cat(key: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([p[key] for p in parts])).to(device=device, dtype=dtype)

        bits = cat("bits", torch.int64).view(-1, words)
        layout = vocab.tensors(device)
        n_sid = vocab.total_size - vocab.span_start
        kind, stype, slevel, scode = (np.zeros(n_sid, np.int64) for _ in range(4))
        for block in vocab.blocks.values():
            for token, k in ((block.open_id, 1), (block.close_id, 2)):
                kind[token - vocab.span_start], stype[token - vocab.span_start] = k, block.index
            for level, (start, size) in enumerate(zip(block.level_starts, block.codebook_sizes, strict=True)):
                span = slice(start - vocab.span_start, start - vocab.span_start + size)
                kind[span], stype[span], slevel[span], scode[span] = 3, block.index, level, np.arange(size)
        n_leaves = leaf_base
        leaf_offset, item_ids, leaf_of_row = {}, {}, {}
        for block, part in zip(vocab.blocks.values(), parts, strict=True):
            leaf_offset[block.name] = part["leaf_base"]
            table = tables.get(block.name)
            item_ids[block.name] = table.item_ids if table is not None else []
            leaf_of_row[block.name] = part["leaf_of_row"]
        word_bits = bits & MASK32
        word_counts = torch.from_numpy(
            np.bitwise_count(word_bits.cpu().numpy().astype(np.uint32)).astype(np.int64)
        )
        as_tensor = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64)).to(device)  # noqa: E731
        return cls(
            vocab=vocab,
            words=words,
            bits=to_int32_words(word_bits),
            alive_bits=to_int32_words(word_bits),
            rank=(torch.cumsum(word_counts, dim=1) - word_counts).to(device),
            first_child=cat("first_child", torch.int64),
            parent=torch.cat([cat("node_parent", torch.int64), cat("leaf_parent", torch.int64)]),
            code=torch.cat([cat("node_code", torch.int64), cat("leaf_code", torch.int64)]),
            leaf_alive=torch.ones(n_leaves, dtype=torch.bool, device=device),
            leaf_codes=cat("leaf_codes", torch.int64).view(-1, max_levels),
            type_root=as_tensor([p["node_base"] for p in parts]),
            type_nonempty=torch.tensor([p["n_leaves"] > 0 for p in parts], device=device),
            n_levels=layout["n_levels"].long(),
            level_start=layout["level_start"].long(),
            open_ids=layout["open_ids"].long(),
            close_ids=layout["close_ids"].long(),
            sid_kind=as_tensor(kind),
            sid_type=as_tensor(stype),
            sid_level=as_tensor(slevel),
            sid_code=as_tensor(scode),
            leaf_offset=leaf_offset,
            leaf_row=np.concatenate([p["leaf_row"] for p in parts]),
            item_ids=item_ids,
            leaf_of_row=leaf_of_row,
        )

    # ----- sizes and lookups ------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.bits.device

    @property
    def n_nodes(self) -> int:
        return self.bits.shape[0]

    @property
    def n_leaves(self) -> int:
        return self.leaf_alive.shape[0]

    @property
    def window(self) -> int:
        """Tokens in a row's candidate window inside a span (whole words, so aligned to 32)."""
        return self.words * ALIGN

    def type_index(self, entity_type: str) -> int:
        return self.vocab.block(entity_type).index

    def nbytes(self) -> int:
        """Bytes of the trie's tensors, including the step lookup tables (`step`)."""
        tensors = [f for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]
        own = sum(getattr(self, f.name).nbytes for f in tensors) + self.leaf_row.nbytes
        return own + self.step.nbytes()

    def child(self, node: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Child (node id, or leaf id below the last level) of `node` along `code` (broadcast), by gathers.

        Meaningful only where the code's bit is set; elsewhere it is clamped into range so that dead
        beams or masked rows never index out of bounds.
        """
        word_index = code >> 5
        below = (self.bits[node, word_index].long() & MASK32) & ((1 << (code & 31)) - 1)
        child = self.first_child[node] + self.rank[node, word_index] + popcount32(below)
        return child.clamp(0, max(self.n_nodes, self.n_leaves) - 1)

    def has_child(
        self, node: torch.Tensor, code: torch.Tensor, bits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Whether `code` may follow `node` (broadcast) under `bits` (default: `alive_bits`)."""
        table = self.alive_bits if bits is None else bits
        return ((table[node, code >> 5].long() >> (code & 31)) & 1).bool()

    def resolve(self, leaf: int) -> tuple[str, str, tuple[int, ...]]:
        """(entity type, item id, codes) of a leaf id (host side, for results)."""
        for name in reversed(self.vocab.type_names):
            if leaf >= self.leaf_offset[name]:
                codes = self.leaf_codes[leaf, : self.vocab.block(name).levels].tolist()
                return name, self.item_ids[name][int(self.leaf_row[leaf])], tuple(codes)
        raise IndexError(f"leaf {leaf} outside the trie's {self.n_leaves} leaves")

    def leaves_of(self, entity_type: str, item_ids: list[str] | tuple[str, ...] | set[str]) -> list[int]:
        """Leaf ids of the given items of one type; ids without a SID of that type are skipped."""
        rows = self._row_of_item(entity_type)
        return [int(self.leaf_of_row[entity_type][rows[item]]) for item in item_ids if item in rows]

    def leaf_ids(self, entity_type: str, item_ids: Sequence[str]) -> torch.Tensor:
        """int64 leaf id of each of `item_ids` of one type, in order; -1 where the item has no SID."""
        rows, of_row = self._row_of_item(entity_type), self.leaf_of_row[entity_type]
        leaves = [int(of_row[rows[item]]) if item in rows else -1 for item in item_ids]
        return torch.tensor(leaves, dtype=torch.int64, device=self.device)

    @functools.cache  # noqa: B019 - one small dict per type, built on the first ban, lives with the trie
    def _row_of_item(self, entity_type: str) -> dict[str, int]:
        return {item: row for row, item in enumerate(self.item_ids[entity_type])}

    # ----- tables of the step functions (derived once, cached on the trie) -------------------
    @functools.cached_property
    def step(self) -> StepTables:
        """Lookup tables that make one decoding step a handful of gathers (see `StepTables`)."""
        return StepTables.of(self)

    @functools.cached_property
    def node_depth(self) -> torch.Tensor:
        """int64 [N]: level of each node (0 for a type's root), by walking parent pointers."""
        depth = torch.zeros(self.n_nodes, dtype=torch.int64, device=self.device)
        parent = self.parent[: self.n_nodes]
        has_parent = parent >= 0
        for _ in range(max(0, self.level_start.shape[1] - 1)):
            depth = torch.where(has_parent, depth[parent.clamp(min=0)] + 1, 0)
        return depth

    @functools.cached_property
    def node_is_last(self) -> torch.Tensor:
        """bool [N]: the node's children are leaves (it is at its type's last level)."""
        node_type = (
            torch.searchsorted(self.type_root, torch.arange(self.n_nodes, device=self.device), right=True) - 1
        )
        return self.node_depth == self.n_levels[node_type] - 1

    def leaf_type_mask(self, entity_types: Sequence[str]) -> torch.Tensor:
        """float32 `[B, M]`: 1 on the leaves of each request's type (a type's leaves are contiguous)."""
        mask = torch.zeros(len(entity_types), self.n_leaves, dtype=torch.float32, device=self.device)
        for row, entity_type in enumerate(entity_types):
            first = self.leaf_offset[entity_type]
            mask[row, first : first + len(self.item_ids[entity_type])] = 1.0
        return mask

    def subtree_mass(self, leaf_mass: torch.Tensor) -> torch.Tensor:
        """`[B, N + M]` sums of `leaf_mass [B, M]` over every node's subtree, then the leaves themselves.

        The layout a beam search's prior reads (`neo.decoding.fusion.FusionBatch`): the ratio of a child's
        mass to its node's is the prior of the child's code, and their product along an item's path is
        the item's own mass.
        """
        nodes = self.n_nodes
        mass = leaf_mass.new_zeros(leaf_mass.shape[0], nodes + self.n_leaves)
        mass[:, nodes:] = leaf_mass
        mass[:, :nodes].index_add_(1, self.parent[nodes:], leaf_mass)
        for level in self._levels_bottom_up:  # deepest nodes first: each adds into its parent
            mass[:, :nodes].index_add_(1, self.parent[level], mass[:, level])
        return mass

    @functools.cached_property
    def _levels_bottom_up(self) -> list[torch.Tensor]:
        """Non-root node ids grouped by depth, deepest first."""
        depth = self.node_depth
        deepest = int(depth.max().item()) if len(depth) else 0
        return [torch.nonzero(depth == d).squeeze(1) for d in range(deepest, 0, -1)]

    def alive_leaf_counts(self, bits: torch.Tensor | None = None) -> torch.Tensor:
        """int64 [N]: leaves each node's subtree keeps under `bits` (default `alive_bits`), bottom-up."""
        table = self.alive_bits if bits is None else bits
        if table is self.alive_bits:
            return self._alive_counts
        return self._leaf_counts(table)

    @functools.cached_property
    def _alive_counts(self) -> torch.Tensor:
        return self._leaf_counts(self.alive_bits)

    def _leaf_counts(self, table: torch.Tensor) -> torch.Tensor:
        last_level = torch.where(self.node_is_last, popcount32(table.long() & MASK32).sum(1), 0)
        child = torch.nonzero(self.parent[: self.n_nodes] >= 0).squeeze(1)
        parent, code = self.parent[child], self.code[child]
        edge_alive = (table[parent, code >> 5].long() >> (code & 31)) & 1
        count = last_level
        for _ in range(max(0, self.level_start.shape[1] - 1)):
            count = last_level.index_add(0, parent, count[child] * edge_alive)
        return count

    # ----- restrictions without rebuilding ----------------------------------------------------
    def bits_for_alive(self, leaf_alive: torch.Tensor) -> torch.Tensor:
        """Child bitmaps that keep exactly the leaves in `leaf_alive`, propagated up the levels.

        A node survives only if some leaf below it survives, so decoding never walks into a subtree
        with nothing left to emit.
        """
        leaf_alive = leaf_alive.to(self.device)
        accumulated = torch.zeros(self.n_nodes * self.words, dtype=torch.int64, device=self.device)
        children = self.n_nodes + torch.nonzero(leaf_alive).squeeze(1)
        while children.numel():
            parents = self.parent[children]
            codes = self.code[children]
            # children are distinct, so (parent, code) pairs are distinct and a sum of bits equals an OR
            accumulated.index_add_(0, parents * self.words + (codes >> 5), 1 << (codes & 31))
            children = torch.unique(parents)
            children = children[self.parent[children] >= 0]
        return to_int32_words(accumulated.view(self.n_nodes, self.words))

    def without_leaves(self, bits: torch.Tensor, leaves: torch.Tensor) -> torch.Tensor:
        """A copy of `bits` with `leaves` removed; a subtree whose leaves are all removed is removed too.

        Touches only the ancestors of the removed leaves, so banning a few items of a 1M-item catalog
        costs a copy of the bitmaps and a handful of small gathers.
        """
        bits = bits.clone()
        flat = bits.view(-1)
        children = self.n_nodes + torch.unique(leaves.to(self.device))
        while children.numel():
            parents = self.parent[children]
            codes = self.code[children]
            cells, inverse = torch.unique(parents * self.words + (codes >> 5), return_inverse=True)
            cleared = torch.zeros(cells.shape[0], dtype=torch.int64, device=self.device)
            cleared.index_add_(0, inverse, 1 << (codes & 31))
            flat[cells] &= ~to_int32_words(cleared)
            emptied = torch.unique(parents)
            emptied = emptied[(bits[emptied] == 0).all(dim=1) & (self.parent[emptied] >= 0)]
            children = emptied
        return bits

    def with_leaf_alive(self, leaf_alive: torch.Tensor) -> ItemTrie:
        """The same trie with catalog-wide availability applied (shares every structural tensor)."""
        leaf_alive = leaf_alive.to(device=self.device, dtype=torch.bool)
        if leaf_alive.shape != (self.n_leaves,):
            raise ValueError(f"leaf_alive must have shape ({self.n_leaves},), got {tuple(leaf_alive.shape)}")
        return dataclasses.replace(self, leaf_alive=leaf_alive, alive_bits=self.bits_for_alive(leaf_alive))


def _build_type(
    name: str, codes: np.ndarray, words: int, max_levels: int, node_base: int, leaf_base: int
) -> dict[str, np.ndarray | int]:
    """Numpy arrays of one type's trie, with ids already offset by `node_base` / `leaf_base`."""
    n, levels = codes.shape
    order = np.lexsort(codes.T[::-1]) if n else np.zeros(0, np.int64)
    ordered = codes[order].astype(np.int64)
    # starts[i, l]: row i begins a new prefix of length l (a new node at level l; l == levels: a leaf)
    starts = np.ones((n, levels + 1), dtype=bool)
    if n > 1:
        starts[1:, 0] = False
        starts[1:, 1:] = np.logical_or.accumulate(ordered[1:] != ordered[:-1], axis=1)
        duplicated = np.flatnonzero(~starts[1:, levels])
        if duplicated.size:
            raise ValueError(
                f"SID table {name!r}: code {tuple(ordered[duplicated[0] + 1])} is used by more than "
                "one item; resolve collisions before building the trie"
            )
    local = np.cumsum(starts, axis=0) - 1  # [n, levels+1]: index of the row's node within its level
    per_level = local[-1] + 1 if n else np.r_[1, np.zeros(levels, np.int64)]
    level_offset = node_base + np.concatenate(
        [[0], np.cumsum(per_level[:levels])]
    )  # global id of level l node 0
    n_nodes = int(per_level[:levels].sum())
    bit_sum = np.zeros(n_nodes * words, dtype=np.float64)
    first_child = np.zeros(n_nodes, dtype=np.int64)
    node_parent = np.full(n_nodes, -1, dtype=np.int64)
    node_code = np.zeros(n_nodes, dtype=np.int64)
    leaf_parent = np.zeros(n, dtype=np.int64)
    for level in range(levels):
        edge = starts[:, level + 1]  # rows that introduce a new child of their level-`level` node
        parent = local[edge, level] + level_offset[level]
        code = ordered[edge, level]
        # distinct (parent, code) edges: a float sum of distinct powers of two is exact and equals an OR
        bit_sum += np.bincount(
            (parent - node_base) * words + (code >> 5), weights=2.0 ** (code & 31), minlength=n_nodes * words
        )
        first = starts[:, level]
        child_base = leaf_base if level == levels - 1 else level_offset[level + 1]
        first_child[local[first, level] + level_offset[level] - node_base] = (
            local[first, level + 1] + child_base
        )
        if level == levels - 1:
            leaf_parent[:] = parent
        else:
            node_parent[local[edge, level + 1] + level_offset[level + 1] - node_base] = parent
            node_code[local[edge, level + 1] + level_offset[level + 1] - node_base] = code
    leaf_codes = np.full((n, max_levels), -1, dtype=np.int64)
    leaf_codes[:, :levels] = ordered
    leaf_of_row = np.empty(n, dtype=np.int64)
    leaf_of_row[order] = leaf_base + np.arange(n)
    return {
        "n_nodes": n_nodes,
        "n_leaves": n,
        "node_base": node_base,
        "leaf_base": leaf_base,
        "bits": bit_sum.astype(np.int64),
        "first_child": first_child,
        "node_parent": node_parent,
        "node_code": node_code,
        "leaf_parent": leaf_parent,
        "leaf_code": ordered[:, levels - 1] if n else np.zeros(0, np.int64),
        "leaf_codes": leaf_codes.reshape(-1),
        "leaf_row": order.astype(np.int64),
        "leaf_of_row": leaf_of_row,
    }


# what a token does, one row of `StepTables.token_info` each
START = 0  # code tokens: token id of code 0 of their level (the window they belong to); others -1
HALF = 1  # code tokens: the 16-bit half-word of the node's bitmap that holds the code (code >> 4)
BELOW = 2  # code tokens: bits of that half-word below the code ((1 << (code & 15)) - 1)
BIT = 3  # code tokens: the code's own bit in that half-word (1 << (code & 15))
NEXT = 4  # window start after the token: next level's code 0, the close id after the last level;
#           for an open token its type's level 0
TO_MODE = 5  # mode after the token if it opens (open) or continues (code) a span: SPAN, or DONE
OPENS = 6  # 1 for open tokens, 0 otherwise
TYPE = 7  # entity type of open and code tokens
ROOT = 8  # open tokens: the type's root node
LEVEL_AFTER = 9  # codes emitted in the span after the token (level + 1 for codes, 0 for open tokens)
INFO_ROWS = 10


@dataclasses.dataclass(frozen=True, eq=False)
class StepTables:
    """What `DecodeState.advance` and `constrain` look up instead of recomputing it every step.

    Everything here depends only on the trie (and `alive_bits`), so it is built once per trie and a
    decoding step becomes a few dozen small ops on [rows] tensors plus one window copy per row. Constants
    are tensors because a binary op with a Python scalar costs a few microseconds more on the CPU.
    """

    token_info: torch.Tensor  # int64 [INFO_ROWS, n_sid + 2]: column 0 and the last: text and other ids
    info_offset: int  # span_start - 1: token id t reads column t - info_offset (clamped)
    info_last: int  # last column of `token_info`
    halves: torch.Tensor  # int32 [N * 2 * words]: structural child bitmaps as 16-bit half-words, flat
    child_base: torch.Tensor  # int32 [N * 2 * words] (int64 past 2**31 ids): first child + set bits in
    #                           earlier half-words of the node
    popcount16: torch.Tensor  # int64 [65536]
    zero: torch.Tensor  # int64 scalar 0
    max_cell: int  # N * 2 * words - 1
    window_arange: torch.Tensor  # int64 [window]
    max_window_end: int  # one past the last token any span window can cover
    open_ids: torch.Tensor  # int64 [T]
    type_bits: torch.Tensor  # int64 [T]: 1 << t
    open_allowed_types: torch.Tensor  # int64 scalar, bit t: type t has an alive item in `alive_bits`
    free_cap: torch.Tensor  # float32 [4] by mode: -inf for FREE (SID region banned), +inf otherwise
    mode_after: torch.Tensor  # int64 [4] by mode: mode after a token that neither opens nor steps
    not_free_bits: torch.Tensor  # int64 [4] by mode: 0 for FREE, all bits otherwise
    opens_key: torch.Tensor  # int64 [4] by mode: 1 for FREE (equals OPENS of an open token), else 2
    _caps: dict = dataclasses.field(default_factory=dict)  # (what, dtype) -> cap table of that dtype
    _row_offsets: dict = dataclasses.field(default_factory=dict)  # (rows, stride) -> int64 [rows]

    @classmethod
    def of(cls, trie: ItemTrie) -> StepTables:
        vocab, device = trie.vocab, trie.device
        n_sid = vocab.total_size - vocab.span_start
        info = np.zeros((INFO_ROWS, n_sid + 2), dtype=np.int64)
        info[START] = -1
        roots = trie.type_root.tolist()
        for block in vocab.blocks.values():
            column = block.open_id - vocab.span_start + 1
            for row, value in (
                (NEXT, block.level_starts[0]),
                (TO_MODE, SPAN),
                (OPENS, 1),
                (TYPE, block.index),
                (ROOT, roots[block.index]),
            ):
                info[row, column] = value
            for level, (start, size) in enumerate(zip(block.level_starts, block.codebook_sizes, strict=True)):
                columns = slice(start - vocab.span_start + 1, start - vocab.span_start + 1 + size)
                codes = np.arange(size)
                last = level == block.levels - 1
                info[START, columns] = start
                info[HALF, columns] = codes >> 4
                info[BELOW, columns] = (1 << (codes & 15)) - 1
                info[BIT, columns] = 1 << (codes & 15)
                info[NEXT, columns] = block.close_id if last else block.level_starts[level + 1]
                info[TO_MODE, columns] = DONE if last else SPAN
                info[TYPE, columns] = block.index
                info[LEVEL_AFTER, columns] = level + 1
        ends = [s + trie.window for b in vocab.blocks.values() for s in b.level_starts]
        counts = np.bitwise_count(np.arange(1 << 16, dtype=np.uint32)).astype(np.int64)
        words = trie.bits.long() & MASK32
        halves = torch.stack([words & 0xFFFF, words >> 16], dim=2).view(trie.n_nodes, -1)
        set_bits = torch.from_numpy(counts).to(device)[halves]
        child_base = trie.first_child.unsqueeze(1) + torch.cumsum(set_bits, dim=1) - set_bits
        index_dtype = torch.int32 if max(trie.n_nodes, trie.n_leaves) < 2**31 else torch.int64
        root_alive = (trie.alive_bits[trie.type_root] != 0).any(1).tolist()
        by_mode = lambda values, dtype=torch.int64: torch.tensor(  # noqa: E731
            [values[m] for m in (FREE, SPAN, DONE, UNCONSTRAINED)], dtype=dtype, device=device
        )
        scalar = lambda value: torch.tensor(value, dtype=torch.int64, device=device)  # noqa: E731
        assert (FREE, SPAN, DONE, UNCONSTRAINED) == (0, 1, 2, 3)
        return cls(
            token_info=torch.from_numpy(info).to(device),
            info_offset=vocab.span_start - 1,
            info_last=n_sid + 1,
            halves=halves.to(torch.int32).reshape(-1).contiguous(),
            child_base=child_base.to(index_dtype).reshape(-1).contiguous(),
            popcount16=torch.from_numpy(counts).to(device),
            zero=scalar(0),
            max_cell=trie.n_nodes * 2 * trie.words - 1,
            window_arange=torch.arange(trie.window, device=device),
            max_window_end=max(ends),
            open_ids=trie.open_ids,
            type_bits=torch.tensor([1 << t for t in range(len(roots))], dtype=torch.int64, device=device),
            open_allowed_types=scalar(sum(1 << t for t, alive in enumerate(root_alive) if alive)),
            free_cap=by_mode(
                {FREE: float("-inf"), SPAN: float("inf"), DONE: float("inf"), UNCONSTRAINED: float("inf")},
                torch.float32,
            ),
            mode_after=by_mode({FREE: FREE, SPAN: FREE, DONE: FREE, UNCONSTRAINED: UNCONSTRAINED}),
            not_free_bits=by_mode({FREE: 0, SPAN: -1, DONE: -1, UNCONSTRAINED: -1}),
            opens_key=by_mode({FREE: 1, SPAN: 2, DONE: 2, UNCONSTRAINED: 2}),
        )

    def nbytes(self) -> int:
        return sum(
            getattr(self, f.name).nbytes
            for f in dataclasses.fields(self)
            if f.name[0] != "_" and isinstance(getattr(self, f.name), torch.Tensor)
        )

    def window_caps(self, dtype: torch.dtype) -> torch.Tensor:
        """[256, 8] of `dtype`: for each byte of a child bitmap, +inf where the bit is set, -inf elsewhere.

        `minimum(window, caps[bytes])` keeps allowed logits and makes the rest -inf (+inf logits too).
        """
        if ("window", dtype) not in self._caps:
            bit = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
            caps = torch.where(bit == 1, float("inf"), float("-inf"))
            self._caps["window", dtype] = caps.to(device=self.popcount16.device, dtype=dtype)
        return self._caps["window", dtype]

    def free_caps(self, dtype: torch.dtype) -> torch.Tensor:
        """[4] of `dtype` by mode: the cap of the SID region (-inf for FREE rows, +inf otherwise)."""
        if ("free", dtype) not in self._caps:
            self._caps["free", dtype] = self.free_cap.to(dtype)
        return self._caps["free", dtype]

    def minus_inf(self, dtype: torch.dtype) -> torch.Tensor:
        """A 0-dim -inf of `dtype`."""
        if ("-inf", dtype) not in self._caps:
            self._caps["-inf", dtype] = torch.tensor(float("-inf"), dtype=dtype, device=self.zero.device)
        return self._caps["-inf", dtype]

    def row_offsets(self, rows: int, stride: int) -> torch.Tensor:
        """int64 [rows]: r * stride (the first element of each row of a [rows, *] tensor), cached."""
        key = (rows, stride)
        if key not in self._row_offsets:
            if len(self._row_offsets) > 64:
                self._row_offsets.clear()
            self._row_offsets[key] = torch.arange(rows, device=self.popcount16.device) * stride
        return self._row_offsets[key]
