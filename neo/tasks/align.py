"""Grounding tasks: tie each SID to what the item is, in both directions.

- `sid2text`: SID -> "title: description"; `text2sid`: title + description -> SID;
- `sid2type`: SID -> entity type name;
- `name2sid` / `sid2name`: for types other items link to (brand, category, show, artist), whose
  identity is mostly their name.

These walk over the whole catalog, not over users: every item must be nameable by the decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, clip_text, rng_for, sentence
from neo.tasks.prompts import align_prompt, templates

SUBTASKS = ("sid2text", "text2sid", "sid2type", "name2sid", "sid2name")


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    """Every item with a SID, grouped by type in catalog order."""
    return [item for entity_type in ctx.sid_types for item in ctx.tables[entity_type].item_ids]


def _applicable(ctx: TaskContext, item: str, subtasks: list[str]) -> list[str]:
    """Derived (linked-to) types are grounded by name; described items by title + description."""
    derived = ctx.type_of[item] in ctx.linked_types
    described = bool(ctx.text[item].strip())
    allowed = {"sid2type"}
    if derived:
        allowed |= {"name2sid", "sid2name"}
    if described or not derived:
        allowed |= {"sid2text", "text2sid"}
    return [subtask for subtask in subtasks if subtask in allowed]


def examples(ctx: TaskContext, item: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    subtasks = list(cfg.get("subtasks", SUBTASKS))
    unknown = sorted(set(subtasks) - set(SUBTASKS))
    if unknown:
        raise ValueError(f"tasks.align.subtasks: unknown {unknown}; expected a subset of {SUBTASKS}")
    max_chars = int(cfg.get("max_text_chars", 200))
    entity_type, span, title = ctx.type_of[item], ctx.span[item], ctx.title[item]
    described = bool(ctx.text[item].strip())
    description = clip_text(f"{sentence(title)}. {ctx.text[item]}" if described else title, max_chars)
    rng = rng_for(seed, "align", item)
    out = []
    for subtask in _applicable(ctx, item, subtasks):
        template = rng.randrange(len(templates(subtask)))
        prompt = align_prompt(
            subtask,
            entity_type,
            item=span,
            description=description,
            name=title,
            type_names=ctx.sid_types,
            chat=ctx.chat,
            template=template,
        )
        completion = {
            "sid2text": clip_text(f"{sentence(title)}: {ctx.text[item]}", max_chars) if described else title,
            "text2sid": span,
            "sid2type": entity_type,
            "name2sid": span,
            "sid2name": title,
        }[subtask]
        out.append(Example(prompt, completion, "align", {"subtask": subtask, "items": [item]}))
    return out


TASK = Task("align", keys, examples)
