"""No validation or test target ever reaches a training example -- in text or in token ids.

Hypothesis draws random users whose training histories use the catalog's ordinary items and whose
validation / test targets come from the held-out pool (a show with its episodes and artist, and
two audiobooks) that nothing else touches. If any user-derived task read beyond `split.train`, a
held-out span, title or token sequence would show up.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neo.data.splits import Interaction, Split
from neo.tasks.base import TaskContext
from neo.tasks.pipeline import USER_TASKS, build_examples, check_leakage, tokenize_examples

from .conftest import HELD_BOOKS, HELD_SHOW


def _pools(catalog):
    held = {i for i in catalog.item_ids("episode") if i.startswith(f"ep{HELD_SHOW}-")}
    held |= {f"book{b}" for b in HELD_BOOKS}
    ordinary = [i for i in catalog.item_ids("episode") + catalog.item_ids("audiobook") if i not in held]
    return ordinary, sorted(held)


@st.composite
def splits(draw, ordinary, held):
    train, valid, test = {}, {}, {}
    for u in range(draw(st.integers(1, 8))):
        user = f"h{u}"
        items = draw(st.lists(st.sampled_from(ordinary), min_size=2, max_size=12))
        stamps = sorted(
            draw(st.lists(st.floats(1.6e9, 1.7e9), min_size=len(items) + 2, max_size=len(items) + 2))
        )
        train[user] = [Interaction(i, t, {"surface": "home"}) for i, t in zip(items, stamps, strict=False)]
        valid[user] = Interaction(draw(st.sampled_from(held)), stamps[-2], {})
        test[user] = Interaction(draw(st.sampled_from(held)), stamps[-1], {})
    return Split("leave_one_out", train, valid, test)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_heldout_target_in_training_examples(data, catalog, tables, ctx, plain_tokenizer, tasks_cfg):
    tokenizer, vocab = plain_tokenizer
    ordinary, held = _pools(catalog)
    split = data.draw(splits(ordinary, held))
    task_ctx = TaskContext(catalog, split, tables, vocab, ctx.chat, ctx.style)
    cfg = {**tasks_cfg, "stages": {"instruct": {"mixture": {t: 1 for t in USER_TASKS}}}}
    examples = build_examples(task_ctx, cfg, seed=data.draw(st.integers(0, 3)), stage="instruct")
    assert check_leakage(task_ctx, examples) == []
    targets = {x.item for part in (split.valid, split.test) for x in part.values()}
    targets |= {t for i in targets for ty in tables if (t := task_ctx.target(i, ty)) is not None}
    assert targets  # the held-out pool reaches shows / artists too
    forbidden_text = [task_ctx.span[i] for i in targets] + [task_ctx.title[i] for i in targets]
    for example in examples:
        text = example["prompt"] + example["completion"]
        assert not any(f in text for f in forbidden_text)
    forbidden_ids = [
        vocab.span_ids(ty, tables[ty].code_of(i)) for i in targets for ty in [task_ctx.type_of[i]]
    ]
    for ids in tokenize_examples(examples, tokenizer, 100_000, vocab=vocab)["input_ids"]:
        for span in forbidden_ids:
            assert not any(ids[k : k + len(span)] == span for k in range(len(ids) - len(span) + 1))


def test_leakage_check_flags_an_example_built_from_a_test_item(ctx, catalog, tables):
    user = ctx.train_users[0]
    held_episode = f"ep{HELD_SHOW}-0"
    leaky = Split(
        "leave_one_out", {user: ctx.split.train[user] + [Interaction(held_episode, 2e9, {})]}, {}, {}
    )
    leaky_ctx = TaskContext(catalog, leaky, tables, ctx.vocab, ctx.chat, ctx.style)
    built = build_examples(leaky_ctx, {"stages": {"s": {"mixture": {"rec_sequence": 1}}}}, stage="s")
    assert check_leakage(ctx, built) == [0]  # judged against the real split, the held-out item is a leak
