"""Catalog structure: a parent item's children, in order (a show's episodes, an album's tracks).

For every type with nested SIDs (`neo.sids.nest`), a parent item asks for its children and the
answer lists their SID spans one per line in sibling order. Each line is the previous one with the
next rank: the rule "the next episode is the last one's prefix with rank + 1" in its cleanest form,
on catalog facts rather than user behaviour (users' histories teach it only where they binge, mixed
with every other kind of transition). Long families are shown as a window of `max_children`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, rng_for
from neo.tasks.prompts import children_prompt, templates


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    """Parents of at least two children of one nested type, in catalog order of the parent type."""
    families = ctx.children
    return [
        parent
        for entity_type in ctx.sid_types
        for parent in ctx.tables[entity_type].item_ids
        if any(len(members) >= 2 for members in families.get(parent, {}).values())
    ]


def examples(ctx: TaskContext, parent: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    max_children = int(cfg.get("max_children", 16))
    if max_children < 2:
        raise ValueError(f"tasks.children.max_children must be at least 2, got {max_children}")
    rng = rng_for(seed, "children", parent)
    out = []
    for child_type, members in ctx.children.get(parent, {}).items():
        if len(members) < 2:
            continue
        start = rng.randrange(len(members) - min(max_children, len(members)) + 1)
        window = members[start : start + max_children]
        prompt = children_prompt(
            ctx.span[parent],
            child_type,
            first=start + 1,
            chat=ctx.chat,
            template=rng.randrange(len(templates("children"))),
        )
        completion = "\n".join(ctx.span[child] for child in window)
        out.append(Example(prompt, completion, "children", {"items": [parent, *window], "child_type": child_type}))
    return out


TASK = Task("children", keys, examples)
