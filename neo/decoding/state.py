"""Per-row decoding state as tensors: advanced by gathers, reordered like the KV cache, never re-parsed.

Modes (`neo.kernels.modes`): FREE text (text tokens and the open tokens of the row's allowed types),
SPAN (type T, level L, node N: only N's allowed children), DONE (all levels emitted: only T's close
token), UNCONSTRAINED (untouched). Nothing in `advance`, `reorder`, `constrain` or `pick_tokens` syncs
with the host, so a step loop built on them can run ahead of the device (and be graph-captured).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from neo.decoding.trie import ItemTrie
from neo.kernels import DONE, FREE, SPAN, UNCONSTRAINED, sid_bitmask, sid_mask_

NO_LIMIT = 1 << 40


def type_mask(trie: ItemTrie, entity_types: Sequence[str]) -> int:
    """Bitmask (bit t = type index t) of the named entity types."""
    mask = 0
    for name in entity_types:
        mask |= 1 << trie.type_index(name)
    return mask


def row_type_masks(
    trie: ItemTrie, allowed_types: Sequence[str] | Sequence[Sequence[str]], rows: int
) -> torch.Tensor:
    """Per-row open-type bitmasks from one list of types (all rows) or one list per request.

    With per-request lists and more rows than requests (beams), row r belongs to request r // (rows // n).
    """
    if not allowed_types or isinstance(allowed_types[0], str):
        masks = [type_mask(trie, allowed_types)]  # type: ignore[arg-type]
    else:
        masks = [type_mask(trie, types) for types in allowed_types]
    if rows % len(masks):
        raise ValueError(f"{len(masks)} allowed-type lists do not divide {rows} rows")
    return torch.tensor(masks, dtype=torch.int64, device=trie.device).repeat_interleave(rows // len(masks))


@dataclasses.dataclass(frozen=True)
class DecodeState:
    """State of each row; every field is an int64 tensor [rows]."""

    mode: torch.Tensor
    etype: torch.Tensor  # type index of the current span
    level: torch.Tensor  # codes already emitted in the current span
    node: torch.Tensor  # trie node (SPAN) or leaf (DONE)
    table: torch.Tensor  # which child-bitmap table the row reads (0: the trie's shared `alive_bits`)
    open_types: torch.Tensor  # bit t: the row may open a span of type t
    items_left: torch.Tensor  # spans the row may still open
    window_start: torch.Tensor  # token id of code 0 of the current level (SPAN), the close id (DONE), else 0

    @classmethod
    def free(
        cls,
        trie: ItemTrie,
        open_types: torch.Tensor,
        items_left: torch.Tensor | None = None,
        table: torch.Tensor | None = None,
    ) -> DecodeState:
        """Every row in free text."""
        zeros = torch.zeros_like(open_types)
        left = torch.full_like(open_types, NO_LIMIT) if items_left is None else items_left
        return cls(
            zeros + FREE, zeros, zeros, zeros, zeros if table is None else table, open_types, left, zeros
        )

    @classmethod
    def from_suffix(
        cls,
        input_ids: torch.Tensor,
        trie: ItemTrie,
        open_types: torch.Tensor,
        items_left: torch.Tensor | None = None,
        bits: torch.Tensor | None = None,
        table: torch.Tensor | None = None,
    ) -> DecodeState:
        """Derive each row's state from its last tokens, vectorised (no per-row Python).

        A row is inside a span when its trailing tokens are an open token followed by a run of codes of
        that type at levels 0, 1, ... that walk an existing path of the trie; anything else (text, a
        close token, a broken or unknown path) is free text. Used by the HF logits processor, which must
        not keep state across calls because HF reorders beams without telling it, and to start neo's
        own loop after a prompt that ends inside a span. With per-row tables (`bits` [tables * N, words]
        and `table` [rows]) a path counts only if it is alive in the row's own table.
        """
        state = cls.free(trie, open_types, items_left, table)
        rows, length = input_ids.shape
        max_levels = trie.level_start.shape[1]
        span = min(max_levels + 1, length)
        if span == 0:
            return state
        tail = input_ids[:, length - span :]
        kind, ttype, tlevel, tcode = _describe(trie, tail)
        is_code = kind == 3
        run = torch.cumprod(is_code.flip(1).long(), dim=1).sum(1)  # trailing codes
        opener_at = (span - 1 - run).clamp(min=0)
        opener_kind = kind.gather(1, opener_at.unsqueeze(1)).squeeze(1)
        etype = ttype.gather(1, opener_at.unsqueeze(1)).squeeze(1)
        valid = (run < span) & (opener_kind == 1) & (run <= trie.n_levels[etype])
        node = trie.type_root[etype]
        table_offset = state.table * trie.n_nodes
        for level in range(max_levels):
            position = (opener_at + 1 + level).clamp(max=span - 1).unsqueeze(1)
            code = tcode.gather(1, position).squeeze(1)
            inside = level < run
            right_code = (ttype.gather(1, position).squeeze(1) == etype) & (
                tlevel.gather(1, position).squeeze(1) == level
            )
            walkable = node.clamp(max=trie.n_nodes - 1)  # past the last level `node` is a leaf; unused then
            valid &= ~inside | (right_code & trie.has_child(walkable + table_offset, code, bits))
            node = torch.where(inside & valid, trie.child(walkable, code), node)
        done = run == trie.n_levels[etype]
        window_start = torch.where(
            done, trie.close_ids[etype], trie.level_start[etype, run.clamp(max=max_levels - 1)]
        )
        return dataclasses.replace(
            state,
            mode=torch.where(valid, torch.where(done, DONE, SPAN), FREE),
            etype=torch.where(valid, etype, 0),
            level=torch.where(valid, run, 0),
            node=torch.where(valid, node, 0),
            window_start=torch.where(valid, window_start, 0),
        )

    def unconstrain(self, rows_unconstrained: torch.Tensor) -> DecodeState:
        """Mark rows (bool [rows]) as unconstrained, e.g. finished rows or requests that opt out."""
        return dataclasses.replace(
            self,
            mode=torch.where(rows_unconstrained, UNCONSTRAINED, self.mode),
            window_start=torch.where(rows_unconstrained, 0, self.window_start),
        )

    def reorder(self, index: torch.Tensor) -> DecodeState:
        """Rows in the order of `index` (beam search's source-beam index), exactly like the KV cache."""
        return DecodeState(*(getattr(self, f.name).index_select(0, index) for f in dataclasses.fields(self)))

    def advance(self, tokens: torch.Tensor, trie: ItemTrie) -> DecodeState:
        """The state after each row emits `tokens` [rows]: a few gathers, no host sync.

        One lookup in `trie.step.token_info` tells what a token does (opens a type, or is a code of the
        block starting at `START`); a code continues a span only if that block is the row's current
        window and the code is a child of the row's node, so a token the state does not allow (possible
        only if the caller ignored the mask) drops the row back to free text instead of walking an
        invalid path.
        """
        step = trie.step
        info = step.token_info.index_select(1, (tokens - step.info_offset).clamp(0, step.info_last))
        start, half, below_mask, bit, next_start, to_mode, opens, ttype, root, level_after = info.unbind(0)
        # the child along the code: the node's first child + set bits of its bitmap below the code,
        # counted per 16-bit half-word (`child_base` holds the count of the earlier halves)
        cell = (self.node * (2 * trie.words) + half).clamp(max=step.max_cell)
        word = step.halves.index_select(0, cell)
        child = step.child_base.index_select(0, cell) + step.popcount16.index_select(0, word & below_mask)
        # a code continues the span if its level block is the row's window (only SPAN rows have a code
        # block there: DONE rows hold a close id, other rows 0) and the node has it as a child
        steps = (start == self.window_start) & ((word & bit) != 0)
        opens = opens == step.opens_key.index_select(0, self.mode)  # an open token in a FREE row
        moved = steps | opens
        return DecodeState(
            mode=torch.where(moved, to_mode, step.mode_after.index_select(0, self.mode)),
            etype=torch.where(moved, ttype, self.etype),
            level=torch.where(moved, level_after, self.level),
            node=torch.where(steps, child, torch.where(opens, root, self.node)),
            table=self.table,
            open_types=self.open_types,
            items_left=self.items_left - opens.long(),
            window_start=torch.where(moved, next_start, step.zero),
        )

    # ----- what the kernels read --------------------------------------------------------------
    def kernel_args(self, trie: ItemTrie) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mode, window_start, bit_row, openable) per row, as `neo.kernels` expects them."""
        bit_row = torch.where(self.mode == SPAN, self.table * trie.n_nodes + self.node, 0)
        openable = torch.where(self.items_left > 0, self.open_types & trie.step.open_allowed_types, 0)
        return self.mode, self.window_start, bit_row, openable

    def mask_(
        self,
        logits: torch.Tensor,
        trie: ItemTrie,
        bits: torch.Tensor | None = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        """Write `-inf` into `logits` [rows, vocab] where the state forbids a token (fused kernel)."""
        vocab = trie.vocab
        return sid_mask_(
            logits,
            *self.kernel_args(trie),
            trie.alive_bits if bits is None else bits,
            vocab.base_size,
            vocab.span_start,
            len(vocab.blocks),
            backend=backend,
        )

    def bitmask(self, trie: ItemTrie, vocab_size: int, bits: torch.Tensor | None = None) -> torch.Tensor:
        """The packed allowed-token bitmask [rows, ceil(vocab_size/32)] (xgrammar / vLLM layout)."""
        vocab = trie.vocab
        return sid_bitmask(
            *self.kernel_args(trie),
            trie.alive_bits if bits is None else bits,
            vocab.base_size,
            vocab.span_start,
            len(vocab.blocks),
            vocab_size,
        )


def _describe(trie: ItemTrie, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(kind, type, level, code) of each token by table lookup; kind 0 for text and pad tokens."""
    relative = tokens - trie.vocab.span_start
    inside = (relative >= 0) & (relative < trie.sid_kind.shape[0])
    index = relative.clamp(0, trie.sid_kind.shape[0] - 1)
    kind = torch.where(inside, trie.sid_kind[index], 0)
    return kind, trie.sid_type[index], trie.sid_level[index], trie.sid_code[index]


@dataclasses.dataclass(frozen=True)
class ItemBans:
    """Items each row has already named in its answer, banned for the rest of it, and per-table counts.

    `paths[r, s]` is the walk of the s-th item row r completed: node ids from the type's root down to the
    leaf (stored as `N + leaf`), -1 past the leaf and in unused slots. `alive[t * N + n]` counts the
    leaves node n keeps in bitmap table t. `constrain` reads both: a child whose alive leaves are all
    banned by the row is masked like a banned leaf (so a row never walks into a dead end), and a type
    whose alive items are all banned, or that the row's table leaves empty, cannot be opened. Nothing
    here syncs with the host.
    """

    paths: torch.Tensor  # int64 [rows, slots, max_levels + 1]
    used: torch.Tensor  # int64 [rows]: slots filled
    alive: torch.Tensor  # int64 [tables * N]

    @classmethod
    def start(cls, trie: ItemTrie, rows: int, slots: int, tables: Sequence[torch.Tensor]) -> ItemBans:
        """No item banned yet; `slots` must be at least the number of items a row can complete."""
        depth = trie.level_start.shape[1] + 1
        device = trie.device
        return cls(
            paths=torch.full((rows, max(1, slots), depth), -1, dtype=torch.int64, device=device),
            used=torch.zeros(rows, dtype=torch.int64, device=device),
            alive=torch.cat([trie.alive_leaf_counts(table) for table in tables]),
        )

    def reorder(self, index: torch.Tensor) -> ItemBans:
        return dataclasses.replace(
            self, paths=self.paths.index_select(0, index), used=self.used.index_select(0, index)
        )

    def record(self, before: DecodeState, after: DecodeState, trie: ItemTrie) -> ItemBans:
        """Ban the items that rows completed in this step (their state went from SPAN to DONE)."""
        completed = (before.mode == SPAN) & (after.mode == DONE)
        n_nodes, depth = trie.n_nodes, self.paths.shape[2]
        ancestors = [(after.node + n_nodes).clamp(max=trie.parent.shape[0] - 1)]  # the leaf, then upwards
        for _ in range(depth - 1):
            ancestors.append(trie.parent.index_select(0, ancestors[-1].clamp(min=0)))
        up = torch.stack(ancestors, dim=1)
        downwards = torch.arange(depth, device=up.device)
        levels = after.level.unsqueeze(1)  # = the type's levels for a completed row
        path = torch.where(downwards <= levels, up.gather(1, (levels - downwards).clamp(min=0)), -1)
        slot = self.used.clamp(max=self.paths.shape[1] - 1).view(-1, 1, 1).expand(-1, 1, depth)
        current = self.paths.gather(1, slot)
        paths = self.paths.scatter(1, slot, torch.where(completed.view(-1, 1, 1), path.unsqueeze(1), current))
        return dataclasses.replace(self, paths=paths, used=self.used + completed.long())

    def closed_types(self, state: DecodeState, trie: ItemTrie) -> torch.Tensor:
        """int64 [rows]: bit t set where the row's table keeps no item of type t that it has not named."""
        roots = trie.type_root
        named = (self.paths[:, :, :1] == roots).sum(1)  # [rows, T]
        alive = self.alive[(state.table * trie.n_nodes).unsqueeze(1) + roots]
        return ((named >= alive).long() * trie.step.type_bits).sum(1)

    def mask_window(self, window: torch.Tensor, state: DecodeState, trie: ItemTrie) -> torch.Tensor:
        """`window` with -inf at every child of a span row's node whose alive leaves the row all named."""
        rows, slots, depth = self.paths.shape
        n_nodes = trie.n_nodes
        here = self.paths.gather(2, state.level.clamp(max=depth - 1).view(-1, 1, 1).expand(rows, slots, 1))
        below = self.paths.gather(
            2, (state.level + 1).clamp(max=depth - 1).view(-1, 1, 1).expand(rows, slots, 1)
        ).squeeze(2)
        under = (
            (here.squeeze(2) == state.node.unsqueeze(1)) & (below >= 0) & (state.mode == SPAN).unsqueeze(1)
        )
        named_below = ((below.unsqueeze(2) == below.unsqueeze(1)) & under.unsqueeze(1)).sum(2)
        table_offset = (state.table * n_nodes).unsqueeze(1)
        alive = torch.where(below >= n_nodes, 1, self.alive[table_offset + below.clamp(0, n_nodes - 1)])
        dead = under & (named_below >= alive)
        caps = torch.where(dead, float("-inf"), float("inf")).to(window.dtype)
        return window.scatter_reduce(1, trie.code[below.clamp(min=0)], caps, "amin")


@dataclasses.dataclass(frozen=True)
class Candidates:
    """What neo's own loop needs from one step's logits: span rows choose inside their window only."""

    window_logits: torch.Tensor  # [rows, window], -inf where the code is not an allowed child
    window_start: torch.Tensor  # [rows]


def constrain(
    logits: torch.Tensor,
    state: DecodeState,
    trie: ItemTrie,
    bits: torch.Tensor | None = None,
    bans: ItemBans | None = None,
) -> Candidates:
    """Constrain one step without touching whole rows: the cheap path of neo's own decoding loop.

    Free-text rows get `-inf` over the SID region `[base_size, vocab)` except their openable open tokens
    (in place, one `minimum` with a per-row cap, a few hundred columns); span rows get their candidate
    window (whole 32-aligned words at `window_start`) copied out and capped to -inf where the node's
    child bitmap has a 0 bit, via a 256-entry byte table. Choosing a span row's token from its window
    (`pick_tokens`) is the same as choosing it from a fully masked row. With per-row tables (`bits`
    [tables * N, words] read through `state.table`) pass `bans` too: it knows which types each table
    leaves empty, and bans the items a row already named (`ItemBans`).
    """
    step = trie.step
    table = trie.alive_bits if bits is None else bits
    rows, columns = logits.shape
    mode = state.mode
    # span rows: the window of whole bitmap words at `window_start` (copied before free rows change the
    # SID region), capped by the node's child bitmap
    window_start = state.window_start
    if logits.stride(1) == 1 and columns >= step.max_window_end and rows > 0:
        stride = logits.stride(0)
        windows = logits.as_strided(((rows - 1) * stride + columns - trie.window + 1, trie.window), (1, 1))
        window = windows.index_select(0, window_start + step.row_offsets(rows, stride))
    else:
        positions = (window_start.unsqueeze(1) + step.window_arange).clamp(max=columns - 1)
        window = logits.gather(1, positions)
    # only SPAN rows read their window; other rows just need a row index in range
    bit_row = (state.table * trie.n_nodes + state.node).clamp(max=table.shape[0] - 1)
    node_bytes = table.index_select(0, bit_row).view(torch.uint8).reshape(-1).int()
    caps = step.window_caps(window.dtype).index_select(0, node_bytes).view(rows, trie.window)
    # a NaN logit may be chosen only where the token is allowed (argmax prefers NaN): lowest finite
    window.nan_to_num_(nan=torch.finfo(window.dtype).min, posinf=float("inf"), neginf=float("-inf"))
    window = torch.minimum(window, caps)
    # free-text rows: the SID region loses everything but the open tokens the row may use
    gate = step.not_free_bits.index_select(0, mode) | (
        (state.open_types & step.open_allowed_types) * state.items_left.clamp(0, 1)
    )
    if bans is not None:
        gate = gate & ~bans.closed_types(state, trie)
    saved_opens = logits.index_select(1, step.open_ids)
    region = logits[:, trie.vocab.base_size :]
    torch.minimum(region, step.free_caps(logits.dtype).index_select(0, mode).unsqueeze(1), out=region)
    region.nan_to_num_(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))  # NaN never wins
    open_ok = (gate.unsqueeze(1) & step.type_bits) != 0
    logits.index_copy_(1, step.open_ids, torch.where(open_ok, saved_opens, step.minus_inf(logits.dtype)))
    if bans is not None:
        window = bans.mask_window(window, state, trie)
    return Candidates(window, window_start)


def pick_tokens(
    logits: torch.Tensor,
    candidates: Candidates,
    state: DecodeState,
    trie: ItemTrie,
    do_sample: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token per row: from the window in a span, the close token when done, the row otherwise."""
    if do_sample:
        row_choice = _sample(logits, temperature, generator)
        window_choice = _sample(candidates.window_logits, temperature, generator)
    else:
        row_choice = logits.argmax(dim=1)
        window_choice = candidates.window_logits.argmax(dim=1)
    tokens = torch.where(state.mode == SPAN, candidates.window_start + window_choice, row_choice)
    return torch.where(state.mode == DONE, candidates.window_start, tokens)


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits.float() / temperature, dim=-1).nan_to_num(0.0)
    # rows with nothing allowed (only the non-span rows of a window) fall back to index 0; never chosen
    probs[:, 0] += (probs.sum(dim=-1) == 0).float()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
