"""User understanding: history -> a natural-language profile of the user's interests.

Ground truth is the catalog's `profiles` table where it has one (the demo world). Elsewhere the
profile is derived from the *training* history alone: the most frequent most-specific linked
entities of the history items (top categories, top brands), so it never sees held-out items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, rng_for
from neo.tasks.prompts import plural, profile_prompt, templates


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return ctx.train_users


def _profile_texts(ctx: TaskContext) -> dict[str, str]:
    if "profiles" not in ctx.memo:
        table = ctx.catalog.profiles
        ctx.memo["profiles"] = {} if table is None else dict(zip(table["user"], table["text"], strict=True))
    return ctx.memo["profiles"]


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def derived_profile(ctx: TaskContext, history: Sequence[Any], top: int = 3) -> str:
    """'Mostly products. Favourite categories: A, B and C. Favourite brands: D.' from history metadata."""
    kinds = Counter(ctx.type_of[x.item] for x in history)
    primary_types = [t for t in ctx.sid_types if t not in ctx.linked_types]
    # "Mostly products" says nothing when products are all there is.
    sentences = (
        [f"Mostly {_names([plural(t) for t, _ in kinds.most_common(2)])}."] if len(primary_types) > 1 else []
    )
    for entity_type in ctx.linked_types:
        counts = Counter(
            links[-1] for x in history if (links := ctx.catalog.links.get(x.item, {}).get(entity_type))
        )
        if counts:
            names = [ctx.title[i] for i, _ in counts.most_common(top)]
            sentences.append(f"Favourite {plural(entity_type)}: {_names(names)}.")
    return " ".join(sentences)


def examples(ctx: TaskContext, user: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    full = ctx.train_history(user)
    start = max(0, len(full) - int(cfg.get("max_history", 30)))
    history = full[start:]
    if not history:
        return []
    given = _profile_texts(ctx).get(user)
    if given is None and ctx.catalog.profiles is not None:
        return []
    completion = given if given is not None else derived_profile(ctx, history, int(cfg.get("top", 3)))
    rng = rng_for(seed, "profile", user)
    prompt = profile_prompt(
        ctx.history_text(user, start, len(full)),
        chat=ctx.chat,
        template=rng.randrange(len(templates("profile"))),
    )
    return [
        Example(
            prompt,
            completion,
            "profile",
            {
                "user": user,
                "source": "table" if given is not None else "derived",
                "items": [x.item for x in history],
            },
        )
    ]


TASK = Task("profile", keys, examples)
