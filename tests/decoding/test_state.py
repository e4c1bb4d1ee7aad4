"""Per-row state: exact masks on a ten-token-ish vocabulary, and incremental advance == re-derivation."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neo.kernels import DONE, FREE, SPAN

from neo.decoding.filters import with_availability
from neo.decoding.state import DecodeState, ItemBans, constrain, pick_tokens, row_type_masks
from neo.decoding.synthetic import random_sid_tables
from neo.decoding.trie import ItemTrie
from neo.sids.table import SIDTable
from neo.vocab import SIDVocab

# text 0..4; pad 5..31; open/close a = 32/33, b = 34/35; a: level 0 at 64 (3 codes), level 1 at 96 (2 codes);
# b: one level at 128 (2 codes)
TINY = SIDVocab(5, {"a": [3, 2], "b": [2]})
TINY_TRIE = ItemTrie.build(
    TINY,
    {
        "a": SIDTable("a", ["a01", "a20", "a21"], np.array([[0, 1], [2, 0], [2, 1]]), [3, 2]),
        "b": SIDTable("b", ["b1"], np.array([[1]]), [2]),
    },
)


def allowed_after(history: list[int], types: list[str], items_left: int | None = None) -> list[int]:
    ids = torch.tensor([history])
    left = None if items_left is None else torch.tensor([items_left])
    state = DecodeState.from_suffix(ids, TINY_TRIE, row_type_masks(TINY_TRIE, types, 1), left)
    logits = state.mask_(torch.zeros(1, TINY.total_size), TINY_TRIE)
    return torch.nonzero(logits[0] == 0).squeeze(1).tolist()


def test_exact_allowed_positions() -> None:
    assert allowed_after([1, 2], ["a", "b"]) == [0, 1, 2, 3, 4, 32, 34]
    assert allowed_after([1, 2], ["b"]) == [0, 1, 2, 3, 4, 34]
    assert allowed_after([1, 2], ["a", "b"], items_left=0) == [0, 1, 2, 3, 4]
    assert allowed_after([1, 32], ["b"]) == [64, 66]  # inside a span the type list no longer matters
    assert allowed_after([32, 66], ["a"]) == [96, 97]
    assert allowed_after([32, 64], ["a"]) == [97]
    assert allowed_after([32, 64, 97], ["a"]) == [33]  # complete: only the close token
    assert allowed_after([32, 64, 97, 33], ["a"]) == [0, 1, 2, 3, 4, 32]
    assert allowed_after([34, 129], ["a"]) == [35]
    assert allowed_after([1, 65], ["a"]) == [0, 1, 2, 3, 4, 32]  # code 1 of level 0 is no item: free text


def test_advance_and_reorder() -> None:
    state = DecodeState.free(TINY_TRIE, row_type_masks(TINY_TRIE, ["a"], 2), torch.tensor([1, 1]))
    state = state.advance(torch.tensor([32, 3]), TINY_TRIE)
    assert state.mode.tolist() == [SPAN, FREE] and state.items_left.tolist() == [0, 1]
    state = state.advance(torch.tensor([66, 32]), TINY_TRIE).advance(torch.tensor([97, 64]), TINY_TRIE)
    assert state.mode.tolist() == [DONE, SPAN] and state.level.tolist() == [2, 1]
    assert TINY_TRIE.resolve(int(state.node[0]))[1] == "a21"
    swapped = state.reorder(torch.tensor([1, 0, 0]))
    assert swapped.mode.tolist() == [SPAN, DONE, DONE]
    assert state.advance(torch.tensor([33, 97]), TINY_TRIE).mode.tolist() == [FREE, DONE]


def test_window_pick_equals_fully_masked_argmax() -> None:
    logits = torch.randn(4, TINY.total_size, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[1, 2, 3], [1, 2, 32], [2, 32, 66], [32, 64, 97]])
    state = DecodeState.from_suffix(ids, TINY_TRIE, row_type_masks(TINY_TRIE, ["a", "b"], 4))
    expected = state.mask_(logits.clone(), TINY_TRIE).argmax(1)
    window_logits = logits.clone()
    picked = pick_tokens(window_logits, constrain(window_logits, state, TINY_TRIE), state, TINY_TRIE)
    assert picked.tolist() == expected.tolist()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 14))
def test_incremental_state_equals_rederived_state(seed: int, steps: int) -> None:
    """Walk random constrained paths; at every step `advance` agrees with `from_suffix` on the history."""
    generator = torch.Generator().manual_seed(seed)
    rows = 6
    types = row_type_masks(TINY_TRIE, ["a", "b"], rows)
    history = torch.randint(0, TINY.base_size, (rows, 1), generator=generator)
    state = DecodeState.from_suffix(history, TINY_TRIE, types)
    for _ in range(steps):
        logits = torch.randn(rows, TINY.total_size, generator=generator) * 4
        logits[:, 32:36] += 3  # open spans often
        tokens = state.mask_(logits, TINY_TRIE).argmax(1)
        history = torch.cat([history, tokens.unsqueeze(1)], 1)
        state = state.advance(tokens, TINY_TRIE)
        derived = DecodeState.from_suffix(history, TINY_TRIE, types)
        assert torch.equal(state.mode, derived.mode)
        in_span = state.mode != FREE
        for field in ("etype", "level", "node"):
            assert torch.equal(getattr(state, field)[in_span], getattr(derived, field)[in_span])


def random_catalog(
    seed: int, sizes_a: list[int], sizes_b: list[int], fill: float
) -> tuple[SIDVocab, dict, ItemTrie]:
    vocab = SIDVocab(11, {"a": sizes_a, "b": sizes_b})
    counts = {
        n: max(1, int(fill * min(int(np.prod(b.codebook_sizes)), 300))) for n, b in vocab.blocks.items()
    }
    tables = random_sid_tables(vocab, counts, seed=seed)
    return vocab, tables, ItemTrie.build(vocab, tables)


def random_histories(vocab: SIDVocab, tables: dict, rows: int, rng: np.random.Generator) -> torch.Tensor:
    """Histories ending in text, inside spans at every depth, complete spans, and broken spans."""
    out = []
    for _ in range(rows):
        name = str(rng.choice(["a", "b"]))
        codes = tables[name].codes[rng.integers(len(tables[name]))].tolist()
        span = vocab.span_ids(name, codes)[: int(rng.integers(0, len(codes) + 3))]
        if span and rng.random() < 0.15:  # a code that names no path
            span[-1] = int(rng.integers(vocab.span_start, vocab.total_size))
        out.append([int(rng.integers(vocab.base_size))] * (8 - len(span)) + span)
    return torch.tensor(out)


wide = st.lists(st.integers(1, 300), min_size=1, max_size=3)  # several bitmap words and half-words per level


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sizes_a=wide, sizes_b=wide, fill=st.floats(0.01, 1.0))
def test_advance_equals_rederivation_on_wide_codebooks(seed, sizes_a, sizes_b, fill) -> None:
    """Any token but a forbidden open token, from any state: `advance` (lookup tables, half-word popcounts)
    agrees with `from_suffix` (the trie's own child walk) on the extended history."""
    vocab, tables, trie = random_catalog(seed, sizes_a, sizes_b, fill)
    rng = np.random.default_rng(seed)
    history = random_histories(vocab, tables, 32, rng)
    types = row_type_masks(trie, ["a", "b"], 32)
    state = DecodeState.from_suffix(history, trie, types)
    for _ in range(4):
        logits = torch.randn(32, vocab.total_size, generator=torch.Generator().manual_seed(seed))
        allowed = state.mask_(logits.clone(), trie).argmax(1)
        anything = torch.from_numpy(rng.integers(0, vocab.total_size + 3, 32))
        # (an open token the state does not allow starts a span for `from_suffix`, not for `advance`)
        anything = torch.where(torch.isin(anything, trie.open_ids), 1, anything)
        tokens = torch.where(torch.from_numpy(rng.random(32) < 0.8), allowed, anything)
        history = torch.cat([history, tokens.unsqueeze(1)], 1)
        state = state.advance(tokens, trie)
        derived = DecodeState.from_suffix(history, trie, types)
        assert torch.equal(state.mode, derived.mode)
        in_span = state.mode != FREE
        for field in ("etype", "level", "node", "window_start"):
            assert torch.equal(getattr(state, field)[in_span], getattr(derived, field)[in_span]), field


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes_a=wide,
    sizes_b=wide,
    fill=st.floats(0.01, 1.0),
    layout=st.sampled_from(["contiguous", "extra_columns", "transposed", "row_slice"]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_constrain_equals_the_fused_full_row_mask(seed, sizes_a, sizes_b, fill, layout, dtype) -> None:
    """`constrain` (in-place SID-region cap + window) leaves free rows exactly as the full-row mask does,
    and each span row's window holds exactly the allowed tokens, on every memory layout."""
    vocab, tables, trie = random_catalog(seed, sizes_a, sizes_b, fill)
    rng = np.random.default_rng(seed)
    rows = 24
    history = random_histories(vocab, tables, rows, rng)
    types = [sorted(set(rng.choice(["a", "b"], size=int(rng.integers(0, 3))).tolist())) for _ in range(rows)]
    left = torch.from_numpy(rng.integers(0, 3, rows))
    state = DecodeState.from_suffix(history, trie, row_type_masks(trie, types, rows), left)
    columns = vocab.total_size + (7 if layout == "extra_columns" else 0)
    base = torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)).to(dtype)
    if layout == "transposed":
        logits = base.t().contiguous().t()
    elif layout == "row_slice":
        logits = torch.cat([base, base[:, :5]], 1)[:, :columns]
    else:
        logits = base.clone()
    expected = state.mask_(base.clone(), trie, backend="torch")
    candidates = constrain(logits, state, trie)
    free = state.mode == FREE
    assert torch.equal(logits[free], expected[free])
    span = state.mode == SPAN
    positions = candidates.window_start.unsqueeze(1) + torch.arange(trie.window)
    for row in torch.nonzero(span).squeeze(1).tolist():
        allowed = torch.nonzero(expected[row] > float("-inf")).squeeze(1)
        window = candidates.window_logits[row]
        kept = positions[row][window > float("-inf")]
        assert kept.tolist() == allowed.tolist()
        assert torch.equal(window[window > float("-inf")], expected[row, allowed])
    picked = pick_tokens(logits, candidates, state, trie)
    not_free = ~free
    assert torch.equal(picked[not_free], expected.argmax(1)[not_free])


def oracle_children(trie: ItemTrie, tables: dict, name: str, prefix: list[int], gone: set[str]) -> set[int]:
    """Codes that extend `prefix` towards an item of `name` that is neither unavailable nor in `gone`."""
    table = tables[name]
    alive = set(table.item_ids) - gone
    leaf_alive = trie.leaf_alive
    keep = {
        tuple(c)
        for item, c in zip(table.item_ids, table.codes.tolist(), strict=True)
        if item in alive and bool(leaf_alive[trie.leaves_of(name, [item])[0]])
    }
    return {c[len(prefix)] for c in keep if list(c[: len(prefix)]) == prefix}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_item_bans_mask_exactly_the_dead_children_and_types(seed, sizes) -> None:
    """After a row named some items, a span row may take exactly the children that still lead to an
    available item it has not named, and a free row may open exactly the types that still have one."""
    vocab = SIDVocab(5, {"a": sizes, "b": [2, 2]})
    rng = np.random.default_rng(seed)
    counts = {
        n: max(1, int(rng.integers(1, min(int(np.prod(b.codebook_sizes)), 12) + 1)))
        for n, b in vocab.blocks.items()
    }
    tables = random_sid_tables(vocab, counts, seed=seed)
    available = {n: rng.random(len(t)) < 0.8 for n, t in tables.items()}
    trie = with_availability(ItemTrie.build(vocab, tables), available)
    alive_items = [
        (n, item) for n, t in tables.items() for item, ok in zip(t.item_ids, available[n], strict=True) if ok
    ]
    named = [
        alive_items[i]
        for i in rng.permutation(len(alive_items))[: int(rng.integers(0, len(alive_items) + 1))]
    ]
    types = row_type_masks(trie, ["a", "b"], 1)
    bans = ItemBans.start(trie, 1, len(named), [trie.alive_bits])
    for name, item in named:  # the row names each item in turn
        span = vocab.span_ids(name, tables[name].code_of(item))
        before = DecodeState.from_suffix(torch.tensor([span[:-2]]), trie, types)
        after = before.advance(torch.tensor([span[-2]]), trie)
        assert after.mode.tolist() == [DONE]
        bans = bans.record(before, after, trie)
    gone = {item for _, item in named}
    # free text: open tokens of types with something left
    state = DecodeState.from_suffix(torch.tensor([[1]]), trie, types)
    logits = torch.zeros(1, vocab.total_size)
    constrain(logits, state, trie, bans=bans)
    for name in ("a", "b"):
        left = oracle_children(trie, tables, name, [], gone)
        assert bool(logits[0, vocab.open_id(name)] == 0) == bool(left), name
    # inside spans: every prefix of every item
    for name, table in tables.items():
        for codes in table.codes.tolist():
            for depth in range(len(codes)):
                span = vocab.span_ids(name, codes)[: depth + 1]
                state = DecodeState.from_suffix(torch.tensor([span]), trie, types)
                if state.mode.tolist() != [SPAN]:
                    continue  # the prefix is unavailable: not a span at all
                candidates = constrain(torch.zeros(1, vocab.total_size), state, trie, bans=bans)
                kept = torch.nonzero(candidates.window_logits[0] == 0).squeeze(1).tolist()
                expected = oracle_children(trie, tables, name, codes[:depth], gone)
                assert set(kept) == expected, (name, codes[:depth], named)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), nan_share=st.sampled_from([0.3, 1.0]))
def test_nan_logits_never_choose_a_forbidden_token(seed, nan_share) -> None:
    """argmax prefers NaN, so `constrain` must not leave a NaN where a token is forbidden."""
    vocab, tables, trie = random_catalog(seed, [40, 300], [7, 3], 0.3)
    rng = np.random.default_rng(seed)
    rows = 32
    history = random_histories(vocab, tables, rows, rng)
    types = [sorted(set(rng.choice(["a", "b"], size=int(rng.integers(0, 3))).tolist())) for _ in range(rows)]
    state = DecodeState.from_suffix(history, trie, row_type_masks(trie, types, rows))
    allowed = state.mask_(torch.zeros(rows, vocab.total_size), trie) == 0
    logits = torch.randn(rows, vocab.total_size, generator=torch.Generator().manual_seed(seed))
    logits[torch.from_numpy(rng.random((rows, vocab.total_size)) < nan_share)] = float("nan")
    picked = pick_tokens(logits, constrain(logits, state, trie), state, trie)
    assert bool(allowed.gather(1, picked.unsqueeze(1)).all())
