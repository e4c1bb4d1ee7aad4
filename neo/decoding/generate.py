"""Mixed generation: free text with catalog-grounded item spans ("three items, then a sentence about why").

neo's own loop with a KV cache: per step one forward pass, `constrain` (free-text rows lose the SID
region except allowed open tokens; span rows keep only their node's allowed children, read from a
window), a greedy or sampled pick, and a tensor state `advance`. A span's close token is forced without
looking at the logits. The host is consulted only every `check_every` steps, to stop once all rows end.

Every item an answer completes is banned for the rest of that answer (`ItemBans`: the leaf at the last
level, and any subtree or type whose remaining items the answer has all named), so the items of one
answer are distinct. Serve-time filters restrict what can be named: catalog-wide availability through
the trie (`with_availability`), per-request allow/deny lists through `filters` (one bitmap table per
request, read through `DecodeState.table`; the trie is never rebuilt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from neo.decoding.beam import _forward
from neo.decoding.filters import ItemFilters, request_bits
from neo.decoding.state import NO_LIMIT, DecodeState, ItemBans, constrain, pick_tokens, row_type_masks
from neo.decoding.trie import ItemTrie
from neo.kernels import FREE


@dataclasses.dataclass(frozen=True)
class TextSegment:
    token_ids: list[int]


@dataclasses.dataclass(frozen=True)
class ItemSegment:
    item_id: str
    entity_type: str
    codes: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class MixedOutput:
    """Generated token ids (without the prompt, up to and including EOS) and their parsed segments."""

    token_ids: list[int]
    segments: list[TextSegment | ItemSegment]

    @property
    def items(self) -> list[ItemSegment]:
        return [s for s in self.segments if isinstance(s, ItemSegment)]


def generate_mixed(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    trie: ItemTrie,
    allowed_types: Sequence[str] | Sequence[Sequence[str]],
    max_new_tokens: int,
    max_items: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    check_every: int = 8,
    filters: ItemFilters | Sequence[ItemFilters | None] | None = None,
    distinct_items: bool = True,
) -> list[MixedOutput]:
    """Generate text with item spans for each left-padded prompt.

    `allowed_types`: the entity types whose spans may be opened (one list for all prompts, or one per
    prompt); `max_items`: after that many spans no open token is allowed. A prompt may end inside a
    span (e.g. with a forced open token); decoding then continues that span (if the request's filters
    leave no item below it, the prompt's span counts as text). `filters`: one `ItemFilters` for every
    prompt or one per prompt; item ids in `allow`/`deny` may be of any type, and a type with no allowed
    item left is never opened. `distinct_items`: an answer never names the same item twice (default).
    A span is only opened while the token budget can still close it, so no answer ends inside a span.
    """
    batch, device = input_ids.shape[0], input_ids.device
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be positive when sampling, got {temperature}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("prompts must be left-padded (attention_mask[:, -1] must be 1 for every row)")
    eos = torch.tensor(
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []),
        dtype=torch.long,
        device=device,
    )
    per_request = list(filters) if isinstance(filters, Sequence) else [filters] * batch
    if len(per_request) != batch:
        raise ValueError(f"filters has {len(per_request)} entries for {batch} prompts")
    tables, table_of_row = [trie.alive_bits], []
    for request_filters in per_request:
        bits = request_bits(trie, None, request_filters)
        table_of_row.append(0 if bits is None else len(tables))
        if bits is not None:
            tables.append(bits)
    all_bits = torch.cat(tables) if len(tables) > 1 else tables[0]
    row_table = torch.tensor(table_of_row, dtype=torch.int64, device=device)
    items_left = torch.full((batch,), NO_LIMIT if max_items is None else max_items, device=device)
    state = DecodeState.from_suffix(
        input_ids, trie, row_type_masks(trie, allowed_types, batch), items_left, all_bits, row_table
    )
    # at most one span per (levels + 2) tokens, plus the one the prompt may have opened
    shortest = min(block.levels for block in trie.vocab.blocks.values()) + 2
    slots = -(-max_new_tokens // shortest) + 1
    bans = ItemBans.start(trie, batch, slots if max_items is None else min(slots, max_items + 1), tables)
    # a span the prompt opened is parsed together with its continuation
    carried = torch.where(state.mode == FREE, 0, state.level + 1).tolist()
    positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
    logits, cache = _forward(model, input_ids, attention_mask, positions, None)
    next_position = positions[:, -1] + 1
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    pad = int(eos[0]) if eos.numel() else 0
    generated = []
    # a span must close inside the budget: near the end, types whose span no longer fits cannot be opened
    span_length = {trie.type_index(t): block.levels + 2 for t, block in trie.vocab.blocks.items()}
    for step in range(max_new_tokens):
        logits = logits.float()
        unfit = sum(1 << t for t, length in span_length.items() if length > max_new_tokens - step)
        if unfit:
            state = dataclasses.replace(state, open_types=state.open_types & ~unfit)
        candidates = constrain(logits, state, trie, all_bits, bans)
        tokens = pick_tokens(logits, candidates, state, trie, do_sample, temperature, generator)
        tokens = torch.where(finished, pad, tokens)
        generated.append(tokens)
        finished |= (state.mode == FREE) & torch.isin(tokens, eos)
        advanced = state.advance(tokens, trie)
        if distinct_items:
            bans = bans.record(state, advanced, trie)
        state = advanced
        if step + 1 == max_new_tokens or ((step + 1) % check_every == 0 and bool(finished.all())):
            break
        attention_mask = torch.cat([attention_mask, (~finished).long().unsqueeze(1)], dim=1)
        logits, cache = _forward(
            model, tokens.unsqueeze(1), attention_mask, next_position.unsqueeze(1), cache
        )
        next_position = next_position + 1
    stop = set(eos.tolist())
    outputs = []
    for prompt, carry, row in zip(
        input_ids.tolist(), carried, torch.stack(generated, dim=1).tolist(), strict=True
    ):
        end = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))
        segments = parse_segments(trie, prompt[len(prompt) - carry :] + row[:end])
        outputs.append(MixedOutput(row[:end], segments))
    return outputs


def parse_segments(trie: ItemTrie, token_ids: Sequence[int]) -> list[TextSegment | ItemSegment]:
    """Split ids into text pieces and resolved items (host side, after decoding).

    An unfinished span at the end (the token budget ran out) is dropped: it names no item. A span whose
    codes name no catalog item raises ValueError (it cannot come out of the constrained decoder).
    """
    vocab = trie.vocab
    segments: list[TextSegment | ItemSegment] = []
    text: list[int] = []
    position = 0
    while position < len(token_ids):
        described = vocab.describe(token_ids[position])
        if described[0] != "open":
            text.append(token_ids[position])
            position += 1
            continue
        entity_type = described[1]
        levels = vocab.block(entity_type).levels
        span = list(token_ids[position : position + levels + 2])
        codes = [vocab.describe(t) for t in span[1:-1]]
        complete = len(span) == levels + 2 and span[-1] == vocab.close_id(entity_type)
        if not complete:
            break
        if text:
            segments.append(TextSegment(text))
            text = []
        code_tuple = tuple(c[3] for c in codes)
        item_id = _item_of(trie, entity_type, code_tuple)
        segments.append(ItemSegment(item_id, entity_type, code_tuple))
        position += levels + 2
    if text:
        segments.append(TextSegment(text))
    return segments


def _item_of(trie: ItemTrie, entity_type: str, codes: tuple[int, ...]) -> str:
    node = trie.type_root[trie.type_index(entity_type)]
    for code in codes:
        code_tensor = torch.tensor(code, device=trie.device)
        if not bool(trie.has_child(node, code_tensor, trie.bits)):
            raise ValueError(f"{entity_type!r} span with codes {codes} names no catalog item")
        node = trie.child(node, code_tensor)
    return trie.resolve(int(node))[1]
