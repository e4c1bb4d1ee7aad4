"""Templates, chat wrapping and the inference-side builders."""

from __future__ import annotations

import pytest

from neo.tasks.prompts import (
    FAMILIARITY_PHRASES,
    FORMAT_PHRASES,
    TEMPLATES,
    ChatFormat,
    HistoryLine,
    HistoryStyle,
    count_phrase,
    history_lines,
    plural,
    profile_prompt,
    recommend_prompt,
    recsplain_prompt,
    search_prompt,
    templates,
)

SPAN = "<|sid:episode|><|episode:0:1|><|episode:1:2|><|episode:2:3|><|/sid:episode|>"
MAIN_TASKS = ("recommend", "search", "recsplain", "profile")


@pytest.mark.parametrize("task", sorted(TEMPLATES))
def test_pools_are_disjoint_and_distinct(task):
    train, heldout = templates(task, "train"), templates(task, "heldout")
    assert len(set(train)) == len(train) and len(set(heldout)) == len(heldout)
    assert not set(train) & set(heldout)
    assert len(train) >= (20 if task in MAIN_TASKS else 8)


@pytest.mark.parametrize("phrases", [FORMAT_PHRASES, FAMILIARITY_PHRASES])
def test_control_phrase_pools_are_disjoint(phrases):
    for pools in phrases.values():
        assert not set(pools["train"]) & set(pools["heldout"])


@pytest.mark.parametrize("pool", ["train", "heldout"])
def test_every_template_renders_to_a_different_prompt(pool):
    history = [HistoryLine(SPAN, 0.0, {"surface": "home"})]
    builders = {
        "recommend": lambda i: recommend_prompt(
            history, "show", 3, "ids", "unfamiliar", template=i, pool=pool
        ),
        "search": lambda i: search_prompt("space podcast", "show", 2, template=i, pool=pool),
        "recsplain": lambda i: recsplain_prompt(history, "show", template=i, pool=pool),
        "profile": lambda i: profile_prompt(history, template=i, pool=pool),
    }
    for task, build in builders.items():
        rendered = [build(i) for i in range(len(templates(task, pool)))]
        assert len(set(rendered)) == len(rendered), task
        assert all("{" not in p.replace("{%", "") for p in rendered), task


def test_recommend_prompt_puts_history_last_and_names_every_control():
    history = [
        HistoryLine(SPAN, 0.0, {"surface": "home"}),
        HistoryLine(SPAN, 3.5 * 86400, {"surface": "radio"}),
    ]
    prompt = recommend_prompt(history, "show", 5, "mixed", "unfamiliar", template=0, phrasing=0)
    assert prompt == (
        "### Instruction:\nRecommend 5 shows for this user. Give each ID followed by its title. "
        "Only suggest things new to the user.\n\nHistory:\n"
        f"{SPAN} home\n{SPAN} +3d radio\n\n### Response:\n"
    )


def test_history_lines_gap_is_days_since_previous_and_optional():
    history = [
        HistoryLine("A", 100.0, {"surface": "x", "device": "tv"}),
        HistoryLine("B", 100.0 + 86400 * 2.9),
        HistoryLine("C", 100.0 + 86400 * 3),
    ]
    assert history_lines(history) == ["A x", "B +2d", "C +0d"]
    assert history_lines(history, HistoryStyle(False, ("device",))) == ["A tv", "B", "C"]
    assert history_lines(["A", "B"]) == ["A", "B"]


def test_count_and_plural():
    assert count_phrase("audiobook", 1) == "an audiobook"
    assert count_phrase("show", 1) == "a show"
    assert count_phrase("category", 3) == "3 categories"
    assert plural("brush") == "brushes"


def test_chat_format_matches_the_tokenizer_template(chat_tokenizer):
    tokenizer, _ = chat_tokenizer
    chat = ChatFormat.from_tokenizer(tokenizer)
    message = "Recommend a show."
    assert chat.wrap(message) == tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
    )
    assert chat.end == "<|im_end|>"


def test_plain_format_without_chat_template(plain_tokenizer):
    tokenizer, _ = plain_tokenizer
    chat = ChatFormat.from_tokenizer(tokenizer)
    assert chat.wrap("Hi") == "### Instruction:\nHi\n\n### Response:\n"
    assert chat.end == "<|endoftext|>"


def test_bad_controls_are_rejected():
    with pytest.raises(ValueError, match="output format"):
        recommend_prompt([SPAN], "show", 1, "json")
    with pytest.raises(ValueError, match="k must be"):
        search_prompt("q", "show", 0)
    with pytest.raises(ValueError, match="familiarity"):
        recommend_prompt([SPAN], "show", 1, "ids", "sometimes")
