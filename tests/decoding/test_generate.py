"""Mixed generation and the HF logits processor: every guarantee, on random models and random logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList

from neo.decoding.filters import ItemFilters, with_availability
from neo.decoding.generate import ItemSegment, TextSegment, generate_mixed, parse_segments
from neo.decoding.processor import SIDConstraintLogitsProcessor
from neo.decoding.synthetic import random_sid_tables, tiny_llama
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab


def assert_well_formed(vocab: SIDVocab, tables: dict, token_ids: list[int], allowed: set[str]) -> list[str]:
    """No SID token outside a span, every span a catalog item of an allowed type; returns the items."""
    items, position = [], 0
    while position < len(token_ids):
        kind = vocab.describe(token_ids[position])
        assert kind[0] in ("text", "open"), f"{kind} outside a span at {position}: {token_ids}"
        if kind[0] == "open":
            entity_type = kind[1]
            assert entity_type in allowed
            levels = vocab.block(entity_type).levels
            span = token_ids[position : position + levels + 2]
            assert len(span) == levels + 2, f"the answer ends inside a span: {token_ids}"
            codes = []
            for level, token in enumerate(span[1:-1]):
                described = vocab.describe(token)
                assert described[:3] == ("code", entity_type, level)
                codes.append(described[3])
            assert span[-1] == vocab.close_id(entity_type)
            item = tables[entity_type].item_of(codes)
            assert item is not None, f"codes {codes} name no {entity_type!r} item"
            items.append(item)
            position += levels + 2
        else:
            position += 1
    return items


class RandomLM(torch.nn.Module):
    """Random logits every call (biased towards open tokens), for property tests of the constraint."""

    def __init__(self, vocab: SIDVocab, seed: int, open_bias: float = 4.0):
        super().__init__()
        self.vocab = vocab
        self.generator = torch.Generator().manual_seed(seed)
        self.open_ids = [block.open_id for block in vocab.blocks.values()]
        self.open_bias = open_bias

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True, logits_to_keep=0
    ):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        logits = torch.randn(*input_ids.shape, self.vocab.total_size, generator=self.generator) * 3
        logits[..., self.vocab.span_start : self.vocab.span_start + 4] += 4
        logits[..., self.open_ids] += self.open_bias
        return CausalLMOutputWithPast(logits=logits, cache=cache)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    types=st.sampled_from([["a"], ["b"], ["a", "b"]]),
    max_items=st.sampled_from([None, 0, 1, 3]),
    do_sample=st.booleans(),
    budget=st.integers(1, 24),
)
def test_mixed_generation_guarantees(vocab, tables, trie, seed, types, max_items, do_sample, budget) -> None:
    outputs = generate_mixed(
        RandomLM(vocab, seed),
        torch.tensor([[1, 2], [3, 4], [5, 6]]),
        None,
        trie,
        types,
        max_new_tokens=budget,
        max_items=max_items,
        do_sample=do_sample,
        generator=torch.Generator().manual_seed(seed),
    )
    for output in outputs:
        assert len(output.token_ids) == budget
        items = assert_well_formed(vocab, tables, output.token_ids, set(types))
        opened = sum(vocab.describe(t)[0] == "open" for t in output.token_ids)
        assert max_items is None or opened <= max_items
        assert [s.item_id for s in output.items] == items


codebooks = st.lists(st.integers(1, 40), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    sizes_a=codebooks,
    sizes_b=codebooks,
    fill=st.floats(0.0, 1.0),
    allowed=st.sampled_from([["a"], ["b"], ["a", "b"]]),
    max_items=st.sampled_from([None, 2, 6]),
    do_sample=st.booleans(),
    kind=st.sampled_from(["none", "allow", "deny", "both", "per_request"]),
    availability=st.booleans(),
)
def test_mixed_answers_are_distinct_and_filtered(
    seed, sizes_a, sizes_b, fill, allowed, max_items, do_sample, kind, availability
) -> None:
    """Random catalogs (tiny ones get exhausted), random logits, random filters: every named item exists,
    has an allowed type, passes the filters, and no answer names an item twice (no dead ends either:
    a span that ran out of children would break `assert_well_formed`)."""
    rng = np.random.default_rng(seed)
    vocab = SIDVocab(int(rng.integers(3, 30)), {"a": sizes_a, "b": sizes_b})
    counts = {
        name: max(1, int(fill * min(int(np.prod(b.codebook_sizes)), 40))) for name, b in vocab.blocks.items()
    }
    tables = random_sid_tables(vocab, counts, seed=seed)
    trie = ItemTrie.build(vocab, tables)
    every = [item for table in tables.values() for item in table.item_ids]
    available = set(every)
    if availability:
        flags = {name: rng.random(len(table)) < 0.7 for name, table in tables.items()}
        trie = with_availability(trie, flags)
        available = {
            item
            for name, table in tables.items()
            for item, ok in zip(table.item_ids, flags[name], strict=True)
            if ok
        }

    def random_filters() -> ItemFilters | None:
        pick = lambda n: set(rng.choice(every, size=min(n, len(every)), replace=False).tolist())  # noqa: E731
        if kind == "allow":
            return ItemFilters(allow=pick(len(every) // 2 + 1))
        if kind == "deny":
            return ItemFilters(deny=pick(len(every) // 3 + 1))
        if kind == "both":
            return ItemFilters(allow=pick(len(every) // 2 + 1), deny=pick(len(every) // 4 + 1))
        return None

    rows = 4
    if kind == "per_request":
        filters = [None, ItemFilters(deny=set(every[:3])), None, ItemFilters(allow=set(every[-4:]))]
    else:
        filters = [random_filters() for _ in range(rows)]
    budget = 48
    outputs = generate_mixed(
        RandomLM(vocab, seed, open_bias=float(rng.uniform(2, 8))),
        torch.from_numpy(rng.integers(0, vocab.base_size, (rows, 3))),
        None,
        trie,
        allowed,
        max_new_tokens=budget,
        max_items=max_items,
        do_sample=do_sample,
        generator=torch.Generator().manual_seed(seed),
        filters=filters,
    )
    for output, request_filters in zip(outputs, filters, strict=True):
        assert len(output.token_ids) == budget
        items = assert_well_formed(vocab, tables, output.token_ids, set(allowed))
        assert len(items) == len(set(items)), f"an item named twice: {items}"
        assert set(items) <= available
        if request_filters is not None:
            assert not set(items) & set(request_filters.deny)
            if request_filters.allow is not None:
                assert set(items) <= set(request_filters.allow)
        assert max_items is None or len(items) <= max_items
        assert [s.item_id for s in output.items] == items


def test_an_exhausted_catalog_is_never_opened_again() -> None:
    """Three items, an eager model: each named once, then only text (no span opened into nothing)."""
    vocab = SIDVocab(6, {"a": [3, 2, 2]})
    tables = random_sid_tables(vocab, {"a": 3}, seed=4)
    trie = ItemTrie.build(vocab, tables)
    model = RandomLM(vocab, 0, open_bias=30.0)
    for distinct in (True, False):
        output = generate_mixed(model, torch.tensor([[1]]), None, trie, ["a"], 60, distinct_items=distinct)[0]
        items = assert_well_formed(vocab, tables, output.token_ids, {"a"})
        if distinct:
            assert sorted(items) == sorted(tables["a"].item_ids)
            last_close = max(i for i, t in enumerate(output.token_ids) if t == vocab.close_id("a"))
            assert all(vocab.describe(t)[0] == "text" for t in output.token_ids[last_close + 1 :])
        else:
            assert len(items) > 3  # the same items again: the model only wants to open spans


def test_filters_apply_to_every_type_and_an_emptied_type_is_not_opened(vocab, tables, trie) -> None:
    allow = set(tables["b"].item_ids[:2])  # no "a" item allowed at all
    outputs = generate_mixed(
        RandomLM(vocab, 3, open_bias=8.0),
        torch.tensor([[1, 2], [3, 4]]),
        None,
        trie,
        ["a", "b"],
        max_new_tokens=40,
        filters=[ItemFilters(allow=allow), ItemFilters(deny=set(tables["a"].item_ids))],
    )
    for output in outputs:
        items = assert_well_formed(vocab, tables, output.token_ids, {"a", "b"})
        assert all(tables["b"].contains(item) for item in items)
        assert vocab.open_id("a") not in output.token_ids
    assert set(assert_well_formed(vocab, tables, outputs[0].token_ids, {"b"})) == allow
    with pytest.raises(ValueError, match="filters has 1 entries"):
        generate_mixed(RandomLM(vocab, 0), torch.tensor([[1], [2]]), None, trie, ["a"], 4, filters=[None])


def test_prompt_ending_inside_a_span_and_eos(vocab, tables, trie) -> None:
    codes = tables["b"].codes[0].tolist()
    prompt = torch.tensor([[1, vocab.open_id("b"), vocab.code_id("b", 0, codes[0])]])
    model = RandomLM(vocab, 0)
    output = generate_mixed(model, prompt, None, trie, ["a"], max_new_tokens=40, eos_token_id=[3, 4])[0]
    first = output.segments[0]
    assert isinstance(first, ItemSegment) and first.entity_type == "b" and first.codes[0] == codes[0]
    assert output.token_ids[-1] in (3, 4) or len(output.token_ids) == 40
    assert 3 not in output.token_ids[:-1] and 4 not in output.token_ids[:-1]


def test_parse_segments(vocab, tables, trie) -> None:
    item = tables["a"].item_ids[0]
    span = vocab.span_ids("a", tables["a"].code_of(item))
    segments = parse_segments(trie, [1, 2, *span, 3, *span[:2]])
    assert segments == [
        TextSegment([1, 2]),
        ItemSegment(item, "a", tables["a"].code_of(item)),
        TextSegment([3]),
    ]
    used = {tuple(c) for c in tables["a"].codes.tolist()}
    unused = next((x, y) for x in range(6) for y in range(5) if (x, y) not in used)  # 17 of 30 codes used
    with pytest.raises(ValueError, match="names no catalog item"):
        parse_segments(trie, vocab.span_ids("a", unused))


@pytest.mark.parametrize("mode", ["greedy", "sample", "beam"])
def test_hf_generate_with_processor(vocab, tables, trie, mode: str) -> None:
    model = tiny_llama(vocab.total_size, seed=1)
    with torch.no_grad():
        model.lm_head.weight[vocab.base_size :] *= 20  # make the random model eager to open spans
    prompts = torch.tensor([[0, 5, 6], [7, 8, 9]])
    processor = SIDConstraintLogitsProcessor(trie, ["a", "b"], max_items=2, prompt_length=3)
    generated = model.generate(
        input_ids=prompts,
        attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
        max_new_tokens=16,
        do_sample=mode == "sample",
        num_beams=3 if mode == "beam" else 1,
        pad_token_id=0,
        eos_token_id=2,
        logits_processor=LogitsProcessorList([processor]),
    )
    opened_any = False
    for row in generated[:, 3:].tolist():
        items = assert_well_formed(vocab, tables, row, {"a", "b"})
        assert sum(vocab.describe(t)[0] == "open" for t in row) <= 2
        opened_any |= bool(items)
    assert opened_any


def test_processor_validates_arguments(trie) -> None:
    with pytest.raises(ValueError, match="prompt_length"):
        SIDConstraintLogitsProcessor(trie, ["a"], max_items=2)
    with pytest.raises(KeyError, match="unknown entity type"):
        SIDConstraintLogitsProcessor(trie, ["nope"])
