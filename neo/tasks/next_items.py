"""Item to item: what users consumed right after an item, gathered from the training histories.

A history teaches each transition once, wherever it sits; this task gathers every user's transitions
out of one item into one example (its most frequent successors, most frequent first), so the model
learns "after X comes Y" from a few thousand short examples instead of rare sightings spread over
long histories. It is item-to-item co-occurrence taught to the model, and what an "up next" surface
asks. Successors come from `ctx.train_history` only (pairs inside one user's training part), so no
validation or test interaction reaches an answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, rng_for
from neo.tasks.prompts import next_items_prompt, templates


def successors(ctx: TaskContext) -> dict[str, Counter[str]]:
    """item -> how often each item directly followed it in a training history (repeats of the item skipped)."""
    if "successors" not in ctx.memo:
        follow: dict[str, Counter[str]] = {}
        for user in ctx.train_users:
            items = [x.item for x in ctx.train_history(user)]
            for before, after in zip(items, items[1:], strict=False):
                if after != before:
                    follow.setdefault(before, Counter())[after] += 1
        ctx.memo["successors"] = follow
    return ctx.memo["successors"]


def _answer(counts: Counter[str], cfg: Mapping[str, Any]) -> list[str]:
    """The `k` most frequent successors seen at least `min_count` times (ties: first seen first)."""
    k, min_count = int(cfg.get("k", 5)), int(cfg.get("min_count", 2))
    if k < 1 or min_count < 1:
        raise ValueError(f"tasks.next_items needs k >= 1 and min_count >= 1, got k={k}, min_count={min_count}")
    return [item for item, n in counts.most_common(k) if n >= min_count]


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    """Items with at least one successor frequent enough to answer with, in catalog order."""
    follow = successors(ctx)
    return [
        item
        for entity_type in ctx.sid_types
        for item in ctx.tables[entity_type].item_ids
        if item in follow and _answer(follow[item], cfg)
    ]


def examples(ctx: TaskContext, item: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    answer = _answer(successors(ctx)[item], cfg)
    rng = rng_for(seed, "next_items", item)
    prompt = next_items_prompt(ctx.span[item], chat=ctx.chat, template=rng.randrange(len(templates("next_items"))))
    completion = "\n".join(ctx.span[x] for x in answer)
    return [Example(prompt, completion, "next_items", {"items": [item, *answer]})]


TASK = Task("next_items", keys, examples)
