"""The whole training history as one answer: next-item prediction at every position at once.

One example per user; the completion is the user's (most recent `max_history`) training history in
exactly the line format that `recommend` puts right before its answer, and the tokeniser puts loss
on every SID span of it (not on the gap/context words between them). Learning "which span follows
these lines" here is what `recommend` asks at inference, at a fraction of the examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neo.tasks.base import Example, Task, TaskContext, rng_for
from neo.tasks.prompts import rec_sequence_prompt, templates


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return ctx.train_users


def examples(ctx: TaskContext, user: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    full = ctx.train_history(user)
    start = max(0, len(full) - int(cfg.get("max_history", 50)))
    history = full[start:]
    if len(history) < int(cfg.get("min_history", 2)):
        return []
    rng = rng_for(seed, "rec_sequence", user)
    prompt = rec_sequence_prompt(chat=ctx.chat, template=rng.randrange(len(templates("rec_sequence"))))
    completion = ctx.history_text(user, start, len(full))
    return [Example(prompt, completion, "rec_sequence", {"user": user, "items": [x.item for x in history]})]


TASK = Task("rec_sequence", keys, examples)
