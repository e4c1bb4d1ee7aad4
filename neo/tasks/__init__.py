"""Tasks and prompts: (prompt, completion) examples per task, templates, and the `datasets` pipeline."""

from neo.tasks.base import Example, Task, TaskContext
from neo.tasks.pipeline import (
    TASKS,
    build_examples,
    build_training_dataset,
    check_leakage,
    context,
    pack,
    task_examples,
    tokenize_examples,
)
from neo.tasks.prompts import (
    ChatFormat,
    HistoryLine,
    HistoryStyle,
    generic_prompt,
    profile_prompt,
    rec_sequence_continuation,
    rec_sequence_prompt,
    recommend_prompt,
    recsplain_prompt,
    search_prompt,
)

__all__ = [
    "TASKS",
    "ChatFormat",
    "Example",
    "HistoryLine",
    "HistoryStyle",
    "Task",
    "TaskContext",
    "build_examples",
    "build_training_dataset",
    "check_leakage",
    "context",
    "generic_prompt",
    "pack",
    "profile_prompt",
    "rec_sequence_continuation",
    "rec_sequence_prompt",
    "recommend_prompt",
    "recsplain_prompt",
    "search_prompt",
    "task_examples",
    "tokenize_examples",
]
