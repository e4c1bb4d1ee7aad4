"""Recsplanation: history -> one item of a target type, then a short explanation of why.

The explanation is built from facts, never invented: the recommended item's own text, and the
history item that connects to it best -- one that links to the same entity (same show, artist,
brand or category), or that *is* linked to it (the episode of a recommended show), else the most
recent one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, clip_text, rng_for, sentence
from neo.tasks.prompts import recsplain_prompt, templates
from neo.tasks.recommend import target_types


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return ctx.train_users


def explanation(ctx: TaskContext, target: str, history: Sequence[Any], max_chars: int = 160) -> str:
    """One or two sentences tying `target` to the most related history item."""
    about = clip_text(ctx.text[target], max_chars) if ctx.text[target].strip() else ""
    opening = f"{sentence(ctx.title[target])}: {about}" if about else f"{sentence(ctx.title[target])}."
    target_type = ctx.type_of[target]
    target_links = {t: set(ctx.linked(target, t)) for t in ctx.linked_types}
    for interaction in reversed(history):
        item = interaction.item
        if item == target:
            return f"{opening} It is already in your recent history."
        for entity_type in ctx.linked_types:
            if target in ctx.linked(item, entity_type):
                return f"{opening} It is the {target_type} of {sentence(ctx.title[item])}, from your recent history."
            shared = [x for x in ctx.linked(item, entity_type) if x in target_links[entity_type]]
            if shared:
                return (
                    f"{opening} It shares the {entity_type} {sentence(ctx.title[shared[-1]])} with "
                    f"{sentence(ctx.title[item])}, from your recent history."
                )
    return f"{opening} It suits your recent interest in {sentence(ctx.title[history[-1].item])}."


def examples(ctx: TaskContext, user: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    history = ctx.train_history(user)
    if len(history) < 2:
        return []
    rng = rng_for(seed, "recsplain", user)
    max_items = int(cfg.get("max_history", 20))
    types = [t for t in target_types(ctx, cfg) if ctx.target(history[-1].item, t) is not None]
    if not types:
        return []
    entity_type = rng.choice(types)
    start = max(0, len(history) - 1 - max_items)
    context = history[start:-1]
    target = ctx.target(history[-1].item, entity_type)
    prompt = recsplain_prompt(
        ctx.history_text(user, start, len(history) - 1),
        entity_type,
        chat=ctx.chat,
        template=rng.randrange(len(templates("recsplain"))),
        style=ctx.style,
    )
    completion = (
        f"{ctx.span[target]}\n{explanation(ctx, target, context, int(cfg.get('max_text_chars', 160)))}"
    )
    return [
        Example(
            prompt,
            completion,
            "recsplain",
            {
                "user": user,
                "target_type": entity_type,
                "targets": [target],
                "items": [x.item for x in context] + [target],
            },
        )
    ]


TASK = Task("recsplain", keys, examples)
