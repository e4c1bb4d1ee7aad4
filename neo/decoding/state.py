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

    @classmethod
    def free(
        cls, trie: ItemTrie, open_types: torch.Tensor, items_left: torch.Tensor | None = None
    ) -> DecodeState:
        """Every row in free text."""
        zeros = torch.zeros_like(open_types)
        left = torch.full_like(open_types, NO_LIMIT) if items_left is None else items_left
        return cls(zeros + FREE, zeros, zeros, zeros, zeros, open_types, left)

    @classmethod
    def from_suffix(
        cls,
        input_ids: torch.Tensor,
        trie: ItemTrie,
        open_types: torch.Tensor,
        items_left: torch.Tensor | None = None,
    ) -> DecodeState:
        """Derive each row's state from its last tokens, vectorised (no per-row Python).

        A row is inside a span when its trailing tokens are an open token followed by a run of codes of
        that type at levels 0, 1, ... that walk an existing path of the trie; anything else (text, a
        close token, a broken or unknown path) is free text. Used by the HF logits processor, which must
        not keep state across calls because HF reorders beams without telling it, and to start neo's
        own loop after a prompt that ends inside a span.
        """
        state = cls.free(trie, open_types, items_left)
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
        for level in range(max_levels):
            position = (opener_at + 1 + level).clamp(max=span - 1).unsqueeze(1)
            code = tcode.gather(1, position).squeeze(1)
            inside = level < run
            right_code = (ttype.gather(1, position).squeeze(1) == etype) & (
                tlevel.gather(1, position).squeeze(1) == level
            )
            walkable = node.clamp(max=trie.n_nodes - 1)  # past the last level `node` is a leaf; unused then
            valid &= ~inside | (right_code & trie.has_child(walkable, code))
            node = torch.where(inside & valid, trie.child(walkable, code), node)
        mode = torch.where(run == trie.n_levels[etype], DONE, SPAN)
        return dataclasses.replace(
            state,
            mode=torch.where(valid, mode, FREE),
            etype=torch.where(valid, etype, 0),
            level=torch.where(valid, run, 0),
            node=torch.where(valid, node, 0),
        )

    def unconstrain(self, rows_unconstrained: torch.Tensor) -> DecodeState:
        """Mark rows (bool [rows]) as unconstrained, e.g. finished rows or requests that opt out."""
        return dataclasses.replace(self, mode=torch.where(rows_unconstrained, UNCONSTRAINED, self.mode))

    def reorder(self, index: torch.Tensor) -> DecodeState:
        """Rows in the order of `index` (beam search's source-beam index), exactly like the KV cache."""
        return DecodeState(*(getattr(self, f.name).index_select(0, index) for f in dataclasses.fields(self)))

    def advance(self, tokens: torch.Tensor, trie: ItemTrie) -> DecodeState:
        """The state after each row emits `tokens` [rows]: one gather per field, no host sync.

        Tokens the state does not allow (possible only if the caller ignored the mask) drop the row back
        to free text rather than walking an invalid path.
        """
        kind, ttype, _, tcode = _describe(trie, tokens)
        free, in_span, done = self.mode == FREE, self.mode == SPAN, self.mode == DONE
        opens = free & (kind == 1)
        child = trie.child(torch.where(in_span, self.node, 0), tcode)
        next_level = self.level + 1
        completes = next_level == trie.n_levels[self.etype]
        steps = in_span & (kind == 3) & (ttype == self.etype)
        mode = torch.where(opens, SPAN, self.mode)
        mode = torch.where(in_span, torch.where(steps, torch.where(completes, DONE, SPAN), FREE), mode)
        mode = torch.where(done, FREE, mode)
        return dataclasses.replace(
            self,
            mode=mode,
            etype=torch.where(opens, ttype, self.etype),
            level=torch.where(opens, 0, torch.where(steps, next_level, self.level)),
            node=torch.where(opens, trie.type_root[ttype], torch.where(steps, child, self.node)),
            items_left=self.items_left - opens.long(),
        )

    # ----- what the kernels read --------------------------------------------------------------
    def kernel_args(self, trie: ItemTrie) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mode, window_start, bit_row, openable) per row, as `neo.kernels` expects them."""
        window_start = torch.where(
            self.mode == SPAN,
            trie.level_start[self.etype, self.level.clamp(max=trie.level_start.shape[1] - 1)],
            torch.where(self.mode == DONE, trie.close_ids[self.etype], 0),
        )
        bit_row = torch.where(self.mode == SPAN, self.table * trie.n_nodes + self.node, 0)
        nonempty = (
            trie.type_nonempty.long() << torch.arange(trie.type_nonempty.shape[0], device=trie.device)
        ).sum()
        openable = torch.where(self.items_left > 0, self.open_types & nonempty, 0)
        return self.mode, window_start, bit_row, openable

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
class Candidates:
    """What neo's own loop needs from one step's logits: span rows choose inside their window only."""

    window_logits: torch.Tensor  # [rows, window], -inf where the code is not an allowed child
    window_start: torch.Tensor  # [rows]


def constrain(
    logits: torch.Tensor, state: DecodeState, trie: ItemTrie, bits: torch.Tensor | None = None
) -> Candidates:
    """Constrain one step without touching whole rows: the cheap path of neo's own decoding loop.

    Free-text rows get `-inf` over the SID region `[base_size, vocab)` except their openable open tokens
    (in place, a few hundred columns); span rows get their masked candidate window gathered. Choosing a
    span row's token from its window (`pick_tokens`) is the same as choosing it from a fully masked row.
    """
    mode, window_start, bit_row, openable = state.kernel_args(trie)
    table = trie.alive_bits if bits is None else bits
    free = (mode == FREE).unsqueeze(1)
    type_ids = torch.arange(trie.open_ids.shape[0], device=logits.device)
    saved_opens = logits[:, trie.open_ids]
    logits[:, trie.vocab.base_size :].masked_fill_(free, float("-inf"))
    may_open = free & (((openable.unsqueeze(1) >> type_ids) & 1) == 1)
    logits[:, trie.open_ids] = torch.where(may_open, saved_opens, logits[:, trie.open_ids])
    positions = window_start.unsqueeze(1) + torch.arange(trie.window, device=logits.device)
    window = logits.gather(1, positions.clamp(max=logits.shape[1] - 1))
    shifts = torch.arange(32, device=logits.device)
    allowed = ((table[bit_row].long().unsqueeze(2) >> shifts) & 1).view(-1, trie.window).bool()
    return Candidates(window.masked_fill(~allowed, float("-inf")), window_start)


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
    return torch.where(state.mode == DONE, trie.close_ids[state.etype], tokens)


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits.float() / temperature, dim=-1).nan_to_num(0.0)
    # rows with nothing allowed (only the non-span rows of a window) fall back to index 0; never chosen
    probs[:, 0] += (probs.sum(dim=-1) == 0).float()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
