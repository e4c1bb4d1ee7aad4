"""Mixture, packing and the cached end-to-end build."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neo.tasks.encoding import PromptEncoder
from neo.tasks.pipeline import (
    IGNORE_INDEX,
    block_causal_mask,
    build_examples,
    build_training_dataset,
    mixture_counts,
    pack,
    pack_plan,
    segment_ids,
    stage_config,
    task_examples,
    tokenize_examples,
)
from neo.tasks.prompts import continues_history, rec_sequence_continuation, rec_sequence_prompt, templates


def test_mixture_counts_exact():
    assert mixture_counts({"a": 10, "b": 5}, {"a": 1, "b": 1}, None) == {"a": 8, "b": 7}
    assert mixture_counts({"a": 10, "b": 5}, {"a": 1, "b": 1}, 30) == {"a": 15, "b": 15}
    assert mixture_counts({"a": 10, "b": 0}, {"a": 1, "b": 3}, 4) == {"a": 4}
    assert mixture_counts({"a": 10}, {"a": 0}, 4) == {}


@given(
    st.dictionaries(st.sampled_from("abcde"), st.integers(1, 50), min_size=1),
    st.dictionaries(st.sampled_from("abcde"), st.floats(0.01, 10), min_size=1),
    st.integers(1, 500),
)
def test_mixture_counts_sum_to_total_and_follow_weights(available, weights, total):
    counts = mixture_counts(available, weights, total)
    active = {t: w for t, w in weights.items() if t in available}
    if not active:
        assert counts == {}
        return
    assert sum(counts.values()) == total
    norm = sum(active.values())
    for task, n in counts.items():
        assert abs(n - total * active[task] / norm) < 1 + 1e-9


def test_mixture_is_deterministic_and_seeded(ctx, tasks_cfg):
    first = build_examples(ctx, tasks_cfg, seed=5, stage="instruct")
    again = build_examples(ctx, tasks_cfg, seed=5, stage="instruct")
    other = build_examples(ctx, tasks_cfg, seed=6, stage="instruct")
    assert first["prompt"] == again["prompt"] and first["completion"] == again["completion"]
    assert first["prompt"] != other["prompt"]
    assert set(first["task"]) == {"recommend", "rec_sequence", "search", "recsplain", "profile", "align"}


def test_mixture_follows_stage_weights(ctx, tasks_cfg):
    cfg = {**tasks_cfg, "stages": {"instruct": {"mixture": {"recommend": 3, "profile": 1}, "total": 40}}}
    mixed = build_examples(ctx, cfg, seed=0, stage="instruct")
    assert sorted(mixed["task"]).count("recommend") == 30 and mixed["task"].count("profile") == 10


def test_unknown_stage_or_task_is_named(tasks_cfg):
    with pytest.raises(KeyError, match="no stage 'pretrain'"):
        stage_config(tasks_cfg, "pretrain")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['recomend'\]"):
        stage_config({"stages": {"x": {"mixture": {"recomend": 1}}}}, "x")


def test_examples_do_not_depend_on_num_proc(ctx, tasks_cfg, monkeypatch):
    monkeypatch.setattr("neo.tasks.pipeline.MIN_KEYS_PER_WORKER", 1)
    used = []
    real_map = datasets.Dataset.map

    def recording_map(self, *args, **kwargs):
        used.append(kwargs.get("num_proc"))
        return real_map(self, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "map", recording_map)
    one = task_examples(ctx, "align", tasks_cfg["tasks"]["align"], seed=2, num_proc=1)
    two = task_examples(ctx, "align", tasks_cfg["tasks"]["align"], seed=2, num_proc=2)
    assert used == [None, 2]
    assert one["prompt"] == two["prompt"] and one["completion"] == two["completion"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), max_size=60), st.integers(64, 128))
def test_pack_plan_places_every_example_once_within_length(lengths, max_length):
    plan = pack_plan(lengths, max_length)
    assert sorted(i for row in plan for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= max_length for row in plan)
    assert len(plan) <= max(1, 2 * -(-sum(lengths) // max_length))  # best fit is never worse than 2x optimal


def test_pack_rows_keep_tokens_labels_and_boundaries(ctx, plain_tokenizer, tasks_cfg):
    tokenizer, vocab = plain_tokenizer
    tokens = tokenize_examples(build_examples(ctx, tasks_cfg, seed=0), tokenizer, 512, vocab=vocab)
    packed = pack(tokens, 512, tokenizer.pad_token_id)
    assert len(packed) < len(tokens)
    originals = sorted(tuple(x) for x in tokens["input_ids"])
    recovered = []
    for row in packed:
        ids, labels = np.asarray(row["input_ids"]), np.asarray(row["labels"])
        mask, positions = np.asarray(row["attention_mask"]), np.asarray(row["position_ids"])
        assert len(ids) == 512
        assert (labels[mask == 0] == IGNORE_INDEX).all() and (ids[mask == 0] == tokenizer.pad_token_id).all()
        tail = int((mask == 0).sum())
        assert (mask[: 512 - tail] == 1).all() and positions[512 - tail :].tolist() == list(range(tail))
        segments = segment_ids(positions, mask)
        for s in range(1, segments.max() + 1):
            recovered.append(tuple(ids[segments == s].tolist()))
    assert sorted(recovered) == originals


def test_block_causal_mask_exact():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    got = block_causal_mask(positions, mask)[0, 0].int().tolist()
    assert got == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ]


def test_long_examples_are_dropped_not_cut(ctx, plain_tokenizer, tasks_cfg, caplog):
    tokenizer, vocab = plain_tokenizer
    examples = task_examples(ctx, "rec_sequence", {}, seed=0)
    full = tokenize_examples(examples, tokenizer, 10_000, vocab=vocab)
    limit = int(np.median([len(x) for x in full["input_ids"]]))
    with caplog.at_level("WARNING", logger="neo.tasks.pipeline"):
        kept = tokenize_examples(examples, tokenizer, limit, vocab=vocab)
    assert 0 < len(kept) < len(full)
    assert all(len(x) <= limit for x in kept["input_ids"])
    assert f"per task: {{'rec_sequence': {len(full) - len(kept)}}}" in caplog.text  # names what to shorten


def test_training_dataset_is_cached_by_inputs(ctx, plain_tokenizer, tasks_cfg, tmp_path):
    tokenizer, _ = plain_tokenizer
    first = build_training_dataset(ctx, tasks_cfg, "align", tokenizer, seed=0, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    again = build_training_dataset(ctx, tasks_cfg, "align", tokenizer, seed=0, cache_dir=tmp_path)
    assert again["input_ids"] == first["input_ids"]
    assert len(list(tmp_path.iterdir())) == 1
    build_training_dataset(
        ctx, {**tasks_cfg, "max_length": 256}, "align", tokenizer, seed=0, cache_dir=tmp_path
    )
    assert len(list(tmp_path.iterdir())) == 2
    assert set(first.column_names) == {"input_ids", "labels", "attention_mask", "position_ids"}


def test_sequence_continuation_is_a_prefix_of_the_rec_sequence_rows(ctx, plain_tokenizer):
    """Next-item prompts in the rec_sequence layout are token-for-token what training saw before line j."""
    tokenizer, vocab = plain_tokenizer
    encoder = PromptEncoder(tokenizer, ctx.chat)
    examples = task_examples(ctx, "rec_sequence", {}, seed=0)
    rows = tokenize_examples(examples, tokenizer, 10_000, vocab=vocab)
    checked = 0
    for example, row in zip(examples, rows, strict=True):
        meta = json.loads(example["meta"])
        template = next(
            t for t in range(len(templates("rec_sequence")))
            if rec_sequence_prompt(chat=ctx.chat, template=t) == example["prompt"]
        )
        lines = ctx.lines(ctx.train_history(meta["user"]))
        assert len(lines) == len(meta["items"])  # whole history: the fixture's users are short
        for j in range(1, len(lines)):
            prompt = rec_sequence_continuation(lines[:j], chat=ctx.chat, template=template, style=ctx.style)
            ids = encoder.encode([prompt])[0]
            assert row["input_ids"][: len(ids)] == ids
            assert row["labels"][len(ids)] == vocab.open_id(ctx.type_of[meta["items"][j]])
            checked += 1
    assert checked >= 10


def test_sequence_continuation_needs_history(ctx):
    with pytest.raises(ValueError, match="at least one history line"):
        rec_sequence_continuation([], chat=ctx.chat)


def test_history_is_continued_only_in_sequence_mode_and_for_a_type_it_holds():
    assert continues_history("sequence", ["episode", "audiobook"], "episode")
    assert not continues_history("sequence", ["episode", "audiobook"], "show")  # would name an episode
    assert not continues_history("recommend", ["episode"], "episode")
    assert not continues_history("sequence", iter([]), "episode")


def test_zero_weight_tasks_are_not_built(ctx):
    """Presets drop a default task with weight 0 (Hydra merges mixtures): it must cost nothing."""
    built = build_examples(ctx, {"stages": {"s": {"mixture": {"rec_sequence": 1, "search": 0}}}}, stage="s")
    assert set(built["task"]) == {"rec_sequence"}
