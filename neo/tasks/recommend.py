"""Next-item recommendation of a target entity type named in the prompt, cross-type included.

For target type T, a training example sits at a position j of the user's *training* history where
the item maps to a T (`target_of`: the item itself, or its show / brand / category...). The prompt
holds the items before j (most recent `history.max_items`), the answer the next k distinct Ts
from j on. A familiar/unfamiliar control says whether the answer is among the Ts the history
already reaches (familiar) or new to the user (unfamiliar, discovery); when the control is shown,
the answer only holds targets that obey it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, render_items, rng_for, weighted_choice
from neo.tasks.prompts import FAMILIARITY_PHRASES, FORMAT_PHRASES, recommend_prompt, templates

DEFAULT_FORMATS = {"ids": 0.7, "mixed": 0.15, "text": 0.15}


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return ctx.train_users


def target_types(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    """Configured target types, or every type with SIDs."""
    configured = cfg.get("target_types") or ctx.sid_types
    unknown = [t for t in configured if t not in ctx.tables]
    if unknown:
        raise ValueError(f"tasks.recommend.target_types: {unknown} have no SID table; known: {ctx.sid_types}")
    return list(configured)


def forward_targets(ctx: TaskContext, history: Sequence[Any], start: int, entity_type: str) -> list[str]:
    """Distinct targets of `entity_type` from position `start` on, in order of first appearance."""
    out: list[str] = []
    for interaction in history[start:]:
        target = ctx.target(interaction.item, entity_type)
        if target is not None and target not in out:
            out.append(target)
    return out


def examples(ctx: TaskContext, user: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    history = ctx.train_history(user)
    rng = rng_for(seed, "recommend", user)
    max_items = int(cfg.get("max_history", 20))
    k_choices = [int(k) for k in cfg.get("k", [1])]
    formats = cfg.get("formats", DEFAULT_FORMATS)
    control_rate = float(cfg.get("familiarity_rate", 0.5))
    out = []
    for entity_type in target_types(ctx, cfg):
        positions = [
            j for j in range(1, len(history)) if ctx.target(history[j].item, entity_type) is not None
        ]
        if not positions:
            continue
        # The most recent position always, plus earlier ones drawn without replacement.
        chosen = [
            positions[-1],
            *rng.sample(positions[:-1], min(len(positions) - 1, int(cfg.get("examples_per_user", 1)) - 1)),
        ]
        for j in chosen:
            start = max(0, j - max_items)
            context = history[start:j]
            seen = {t for x in context if (t := ctx.target(x.item, entity_type)) is not None}
            upcoming = forward_targets(ctx, history, j, entity_type)
            familiarity = None
            if rng.random() < control_rate:
                familiarity = "familiar" if upcoming[0] in seen else "unfamiliar"
                upcoming = [t for t in upcoming if (t in seen) == (familiarity == "familiar")]
            answer = upcoming[: rng.choice(k_choices)]
            output_format = weighted_choice(rng, formats, "tasks.recommend.formats")
            prompt = recommend_prompt(
                ctx.history_text(user, start, j),
                entity_type,
                len(answer),
                output_format,
                familiarity,
                chat=ctx.chat,
                template=rng.randrange(len(templates("recommend"))),
                phrasing=rng.randrange(
                    max(len(FORMAT_PHRASES["ids"]["train"]), len(FAMILIARITY_PHRASES["familiar"]["train"]))
                ),
                style=ctx.style,
            )
            out.append(
                Example(
                    prompt,
                    render_items(ctx, answer, output_format),
                    "recommend",
                    {
                        "user": user,
                        "target_type": entity_type,
                        "format": output_format,
                        "familiarity": familiarity,
                        "targets": answer,
                        "items": [x.item for x in context] + answer,
                    },
                )
            )
    return out


TASK = Task("recommend", keys, examples)
