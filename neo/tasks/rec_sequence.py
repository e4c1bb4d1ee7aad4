"""The whole training history as one answer: next-item prediction at every position at once.

The completion is the user's (most recent `max_history`) training history in exactly the line format
that `recommend` puts right before its answer, and the tokeniser puts loss on every SID span of it
(not on the gap/context words between them). Learning "which span follows these lines" here is what
`recommend` asks at inference, at a fraction of the examples.

`variants` > 1 adds copies of the history with each item dropped with probability `item_dropout`
(CL4SRec's item deletion). The mixture repeats a user's row whenever the task's share exceeds its user
count, and identical copies teach the model to recite each training sequence; a test history ends in
an item the model never saw in that user's context. Thinned copies show new contexts each time, and
their skipped steps are the pairs two or three steps apart that the co-occurrence counts also use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from neo.tasks.base import Example, Task, TaskContext, rng_for
from neo.tasks.prompts import rec_sequence_prompt, templates

if TYPE_CHECKING:
    from neo.data.splits import Interaction


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return ctx.train_users


def _augmentation(cfg: Mapping[str, Any]) -> tuple[int, float]:
    variants, dropout = int(cfg.get("variants", 1)), float(cfg.get("item_dropout", 0.0))
    if variants < 1:
        raise ValueError(f"tasks.rec_sequence.variants must be >= 1, got {variants}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"tasks.rec_sequence.item_dropout must be in [0, 1), got {dropout}")
    if variants > 1 and dropout == 0.0:
        raise ValueError("tasks.rec_sequence.variants > 1 repeats the same history unless item_dropout > 0")
    return variants, dropout


def examples(ctx: TaskContext, user: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    variants, dropout = _augmentation(cfg)
    max_history, min_history = int(cfg.get("max_history", 50)), int(cfg.get("min_history", 2))
    full = ctx.train_history(user)
    start = max(0, len(full) - max_history)
    if len(full) - start < min_history:
        return []
    rng = rng_for(seed, "rec_sequence", user)
    count = len(templates("rec_sequence"))
    # the whole history reads the user's lines rendered once (`history_text`)
    out = [_example(ctx, user, rng.randrange(count), ctx.history_text(user, start, len(full)), full[start:])]
    for _ in range(variants - 1):
        kept = [x for x in full if rng.random() >= dropout][-max_history:]
        template = rng.randrange(count)  # drawn before the check, so one short copy does not shift the rest
        if len(kept) >= min_history:
            out.append(_example(ctx, user, template, ctx.history_text_of(kept), kept))
    return out


def _example(ctx: TaskContext, user: str, template: int, completion: str, history: Sequence[Interaction]
             ) -> Example:
    prompt = rec_sequence_prompt(chat=ctx.chat, template=template)
    return Example(prompt, completion, "rec_sequence", {"user": user, "items": [x.item for x in history]})


TASK = Task("rec_sequence", keys, examples)
