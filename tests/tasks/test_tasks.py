"""Every task renders, and tokenises with SID spans intact and loss exactly on the answer."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from neo.tasks import align, children, next_items, profile, rec_sequence, recommend, search
from neo.tasks.base import TaskContext
from neo.tasks.pipeline import IGNORE_INDEX, TASKS, task_examples, tokenize_examples
from neo.tasks.prompts import ChatFormat, history_block

from .conftest import EPISODES_PER_SHOW, SHOWS, episode_id

SPAN_RE = re.compile(r"<\|sid:(\w+)\|>((?:<\|\w+:\d+:\d+\|>)+)<\|/sid:\1\|>")
CODE_RE = re.compile(r"<\|\w+:\d+:(\d+)\|>")


def spans_in_text(text: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(m.group(1), tuple(int(c) for c in CODE_RE.findall(m.group(2)))) for m in SPAN_RE.finditer(text)]


def spans_in_ids(ids: list[int], vocab) -> list[tuple[str, tuple[int, ...]]]:
    """Parse token ids strictly: every SID token must sit inside a well-formed span of one type."""
    out, current = [], None
    for token in ids:
        kind = vocab.describe(token)
        if kind[0] == "open":
            assert current is None, "nested span"
            current = (kind[1], [])
        elif kind[0] == "code":
            assert current is not None and kind[1] == current[0] and kind[2] == len(current[1])
            current[1].append(kind[3])
        elif kind[0] == "close":
            assert current is not None and kind[1] == current[0]
            out.append((current[0], tuple(current[1])))
            current = None
        else:
            assert current is None, f"text token {token} inside a span"
    assert current is None
    return out


@pytest.fixture(scope="module", params=["plain", "chat"])
def setup(request, catalog, tables, ctx, plain_tokenizer, chat_tokenizer, tasks_cfg):
    tokenizer, vocab = plain_tokenizer if request.param == "plain" else chat_tokenizer
    chat = ChatFormat.from_tokenizer(tokenizer)
    task_ctx = TaskContext(catalog, ctx.split, tables, vocab, chat, ctx.style)
    built = {name: task_examples(task_ctx, name, tasks_cfg["tasks"][name], seed=1) for name in TASKS}
    return task_ctx, tokenizer, vocab, chat, built


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_renders_and_tokenises_spans_intact(setup, name):
    task_ctx, tokenizer, vocab, chat, built = setup
    ds = built[name]
    assert len(ds) > 0
    tokens = tokenize_examples(ds, tokenizer, 4096, vocab=vocab)
    assert len(tokens) == len(ds)
    for example, row in zip(ds, tokens, strict=True):
        assert example["prompt"].startswith(chat.prefix) and example["prompt"].endswith(chat.suffix)
        expected = spans_in_text(example["prompt"] + example["completion"])
        assert spans_in_ids(row["input_ids"], vocab) == expected
        for entity_type, codes in expected:  # the span's ids are exactly vocab.span_ids
            ids = vocab.span_ids(entity_type, codes)
            assert any(row["input_ids"][i : i + len(ids)] == ids for i in range(len(row["input_ids"])))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_labels_cover_exactly_the_completion(setup, name):
    task_ctx, tokenizer, vocab, chat, built = setup
    tokens = tokenize_examples(built[name], tokenizer, 4096, vocab=vocab)
    for example, row in zip(built[name], tokens, strict=True):
        prompt_len = len(tokenizer(example["prompt"], add_special_tokens=False)["input_ids"])
        labels, ids = row["labels"], row["input_ids"]
        assert labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
        answer = [(t, lab) for t, lab in zip(ids[prompt_len:], labels[prompt_len:], strict=True)]
        if name == "rec_sequence":  # loss on every SID token of the history, nowhere else
            assert all((lab == t) == (t >= vocab.base_size) for t, lab in answer)
            assert all(lab == IGNORE_INDEX for t, lab in answer if t < vocab.base_size)
            assert tokenizer.decode(ids[prompt_len:]) == example["completion"]
        else:
            assert all(lab == t for t, lab in answer)
            assert tokenizer.decode(ids[prompt_len:]) == example["completion"] + chat.end
        assert row["attention_mask"] == [1] * len(ids)


def test_recommend_targets_follow_the_history_and_obey_familiarity(ctx, tasks_cfg):
    for user in ctx.train_users:
        history = ctx.train_history(user)
        for example in recommend.examples(ctx, user, tasks_cfg["tasks"]["recommend"], seed=3):
            meta = example.meta
            assert example.prompt.index("History:") < example.prompt.index(ctx.chat.suffix)
            rendered = {"ids": ctx.span, "text": ctx.title}.get(meta["format"])
            if rendered is not None:
                assert example.completion == "\n".join(rendered[t] for t in meta["targets"])
            assert all(ctx.type_of[t] == meta["target_type"] for t in meta["targets"])
            context_items = meta["items"][: len(meta["items"]) - len(meta["targets"])]
            seen = {ctx.target(i, meta["target_type"]) for i in context_items}
            if meta["familiarity"] == "familiar":
                assert set(meta["targets"]) <= seen
            elif meta["familiarity"] == "unfamiliar":
                assert not set(meta["targets"]) & seen
            positions = [x.item for x in history]
            assert context_items == positions[positions.index(context_items[0]) :][: len(context_items)]


def test_recommend_covers_cross_type_targets(ctx, tasks_cfg):
    found = {
        ex.meta["target_type"]
        for u in ctx.train_users
        for ex in recommend.examples(ctx, u, tasks_cfg["tasks"]["recommend"], seed=0)
    }
    assert found == {"show", "episode", "audiobook", "artist"}


def test_align_grounds_linked_types_by_name(ctx):
    subtasks = {ex.meta["subtask"] for ex in align.examples(ctx, "artist0", {}, seed=0)}
    assert subtasks == {"sid2type", "name2sid", "sid2name"}
    examples = {ex.meta["subtask"]: ex for ex in align.examples(ctx, "ep0-1", {}, seed=0)}
    assert set(examples) == {"sid2text", "text2sid", "sid2type"}
    assert examples["text2sid"].completion == ctx.span["ep0-1"]
    assert examples["sid2type"].completion == "episode"
    assert examples["sid2text"].completion.startswith("Space Talk episode 1: ")


def test_search_uses_only_training_queries(ctx):
    ids = search.keys(ctx, {})
    assert ids == ["q1", "q2", "q4"]
    (example,) = search.examples(ctx, "q4", {"formats": {"ids": 1}}, seed=0)
    assert example.completion == f"{ctx.span['ep1-0']}\n{ctx.span['ep1-1']}"
    assert "garden episodes" in example.prompt and "2 episodes" in example.prompt


def test_synthetic_mode_decides_whether_keyword_queries_join_logged_ones(catalog):
    logged = {q.id for q in search.training_queries(catalog, "never")}
    assert logged == {"q1", "q2", "q4"}
    assert {q.id for q in search.training_queries(catalog, "auto")} == logged  # the catalog logs queries
    both = search.training_queries(catalog, "always", per_item=3)
    extra = [q for q in both if q.id not in logged]
    assert extra and all(q.synthetic and q.split == "train" for q in extra)
    assert {q.type for q in extra} == set(catalog.type_names)  # every type, linked ones too
    with pytest.raises(ValueError, match="tasks.search.synthetic"):
        search.training_queries(catalog, "sometimes")


def test_profile_uses_the_profiles_table(ctx):
    (example,) = profile.examples(ctx, "u3", {}, seed=0)
    assert example.completion == "Listener u3 likes talk shows and audiobooks."


def test_meta_is_json(setup):
    for ds in setup[4].values():
        for meta in ds["meta"]:
            assert isinstance(json.loads(meta)["items"], list)


def test_history_text_equals_rendering_each_window(ctx):
    from neo.tasks.prompts import history_block

    for user in ctx.train_users[:5]:
        history = ctx.train_history(user)
        for start in range(len(history)):
            for end in range(start + 1, len(history) + 1):
                assert ctx.history_text(user, start, end) == history_block(
                    ctx.lines(history[start:end]), ctx.style
                )


def test_synthetic_queries_hold_out_one_keyword_query_per_item(catalog):
    found = search.synthetic_queries(catalog, seed=0, per_item=3)
    assert all(q.synthetic for q in found)
    by_item: dict[str, list] = {}
    for query in found:
        if query.id.startswith("syn:attr:"):
            continue
        by_item.setdefault(query.items[0], []).append(query)
    for item, queries in by_item.items():
        assert len(queries) <= 3
        if len(queries) > 1:
            assert [q.split for q in queries].count("test") == 1
            assert len({q.text for q in queries}) == len(queries)
        words = set(search.content_words(catalog.item(item)["title"] + " " + catalog.item(item)["text"]))
        assert all(set(q.text.split()) <= words for q in queries)


def test_attribute_queries_are_answered_by_every_item_sharing_them(catalog):
    attribute = [q for q in search.synthetic_queries(catalog) if q.id.startswith("syn:attr:")]
    assert attribute

    def names(item: str) -> str:
        return " ".join(
            catalog.item(ids[-1])["title"] for _, ids in sorted(catalog.links.get(item, {}).items())
        )

    for query in attribute:
        assert query.items == [i for i in catalog.item_ids(query.type) if names(i) == query.text]


def test_children_lists_a_shows_episodes_in_order_from_the_stated_number(ctx):
    assert ctx.children["show2"] == {"episode": [episode_id(2, n) for n in range(EPISODES_PER_SHOW)]}
    assert children.keys(ctx, {}) == [f"show{s}" for s in range(len(SHOWS))]  # episodes are nested, nothing else
    starts = set()
    for seed in range(20):
        (example,) = children.examples(ctx, "show2", {"max_children": 3}, seed)
        window = example.meta["items"][1:]
        first = int(window[0].split("-")[1])
        assert window == [episode_id(2, n) for n in range(first, first + 3)]
        assert example.completion == "\n".join(ctx.span[e] for e in window)
        assert ctx.span["show2"] in example.prompt
        assert f"{first + 1}" in example.prompt  # 1-based: the first episode is number 1
        starts.add(first)
    assert starts == {0, 1, 2}  # every window position of a 5-episode show occurs


def test_children_rejects_a_window_too_short_to_show_an_order(ctx):
    with pytest.raises(ValueError, match="max_children"):
        children.examples(ctx, "show0", {"max_children": 1}, 0)


def _pair_counts(histories) -> Counter:
    return Counter((a, b) for items in histories for a, b in zip(items, items[1:], strict=False) if a != b)


def test_next_items_lists_an_items_training_successors_most_frequent_first(ctx):
    train = _pair_counts([x.item for x in ctx.train_history(u)] for u in ctx.train_users)
    split = ctx.split
    full = _pair_counts(
        [x.item for x in [*split.history("test", u), split.test[u]] if x.item in ctx.span] for u in split.test
    )
    assert full != train  # validation/test transitions exist, and must not reach any answer
    keys = next_items.keys(ctx, {"min_count": 2})
    assert keys and all(any(train[(k, b)] >= 2 for b in ctx.span) for k in keys)
    for item in keys:
        (example,) = next_items.examples(ctx, item, {"k": 3, "min_count": 2}, seed=0)
        answer = example.meta["items"][1:]
        counts = [train[(item, b)] for b in answer]
        assert 1 <= len(answer) <= 3 and min(counts) >= 2 and counts == sorted(counts, reverse=True)
        best = max(n for (a, _), n in train.items() if a == item)
        assert counts[0] == best
        assert example.completion == "\n".join(ctx.span[b] for b in answer) and ctx.span[item] in example.prompt


def test_rec_sequence_without_variants_is_the_whole_recent_history(ctx):
    cfg = {"max_history": 4, "min_history": 2}
    for user in ctx.train_users:
        history = ctx.train_history(user)
        found = rec_sequence.examples(ctx, user, cfg, seed=0)
        if len(history[-4:]) < 2:
            assert found == []
            continue
        (example,) = found
        assert example.meta["items"] == [x.item for x in history[-4:]]
        assert example.completion == ctx.history_text(user, max(0, len(history) - 4), len(history))


def test_rec_sequence_variants_thin_the_history_in_order(ctx):
    cfg = {"max_history": 6, "min_history": 2, "variants": 5, "item_dropout": 0.5}
    thinned = 0
    for user in ctx.train_users:
        history = ctx.train_history(user)
        found = rec_sequence.examples(ctx, user, cfg, seed=0)
        assert found == rec_sequence.examples(ctx, user, cfg, seed=0)  # a pure function of its arguments
        assert found[0].meta["items"] == [x.item for x in history[-6:]]  # the whole history comes first
        assert 1 <= len(found) <= 5
        for example in found[1:]:
            items = example.meta["items"]
            assert 2 <= len(items) <= 6
            if len({x.item for x in history}) < len(history):
                continue  # a repeated item makes the kept positions ambiguous
            kept, position = [], 0
            for item in items:  # an ordered subsequence of the training history
                while history[position].item != item:
                    position += 1
                kept.append(history[position])
                position += 1
            # gaps are counted between the kept lines, as a sparser history would show them
            assert example.completion == history_block(ctx.lines(kept), ctx.style)
            thinned += items != [x.item for x in history[-6:]]
    assert thinned > 0
    other = [rec_sequence.examples(ctx, u, cfg, seed=1) for u in ctx.train_users]
    assert other != [rec_sequence.examples(ctx, u, cfg, seed=0) for u in ctx.train_users]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variants": 0}, "variants must be >= 1"),
        ({"variants": 3, "item_dropout": 1.0}, r"item_dropout must be in \[0, 1\)"),
        ({"variants": 3}, "repeats the same history"),
    ],
)
def test_rec_sequence_rejects_augmentation_that_cannot_work(ctx, options, message):
    with pytest.raises(ValueError, match=message):
        rec_sequence.examples(ctx, ctx.train_users[0], {"max_history": 6, **options}, seed=0)
