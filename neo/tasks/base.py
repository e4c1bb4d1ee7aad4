"""What every task shares: the `Example` record and the `TaskContext` of catalog, split and SIDs.

Tasks read item references, titles and user histories only through `TaskContext`, which is where
the leakage rule lives: `train_history` hands out the training part of the split and nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from neo.data.catalog import Catalog
from neo.data.splits import target_of
from neo.sids.table import SIDTable
from neo.tasks.prompts import (
    DEFAULT_STYLE,
    PLAIN,
    ChatFormat,
    HistoryLine,
    HistoryStyle,
    history_block,
    history_lines,
)
from neo.vocab import SIDVocab

if TYPE_CHECKING:
    from neo.data.splits import Interaction, Split


class Example(NamedTuple):
    """One training example: the prompt (chat-wrapped), the answer, the task name and free metadata.

    `meta` records which items the example is about (`items`: every item id the example mentions),
    so leakage checks and analyses never have to parse rendered text.
    """

    prompt: str
    completion: str
    task: str
    meta: dict[str, Any]


def rng_for(seed: int, task: str, key: str) -> random.Random:
    """A random stream per (seed, task, user or item): results never depend on sharding or order."""
    return random.Random(f"{seed}:{task}:{key}")


def sentence(title: str) -> str:
    """A title without its trailing full stop, so 'title: text' never reads 'Kit.: text'."""
    return title.rstrip().rstrip(".")


def clip_text(text: str, max_chars: int) -> str:
    """Cut `text` at a word boundary to at most `max_chars` characters, marking the cut."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "..."


@dataclass
class TaskContext:
    """Everything a task renders from: catalog, split, SID tables, vocabulary and prompt wrapping."""

    catalog: Catalog
    split: Split
    tables: Mapping[str, SIDTable]
    vocab: SIDVocab
    chat: ChatFormat = PLAIN
    style: HistoryStyle = DEFAULT_STYLE
    _targets: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Per-context store for data a task derives once (e.g. the query index of `search`)."""

    def __post_init__(self) -> None:
        missing = [t for t in self.tables if t not in self.vocab.blocks]
        if missing:
            raise ValueError(
                f"SID tables for types {missing} have no block in the vocabulary "
                f"(vocabulary types: {self.vocab.type_names})"
            )

    # ----- items --------------------------------------------------------------------------------
    @cached_property
    def span(self) -> dict[str, str]:
        """Item id -> SID span text, for every item that has a SID."""
        out = {}
        for entity_type, table in self.tables.items():
            for item_id, codes in zip(table.item_ids, table.codes.tolist(), strict=True):
                out[item_id] = self.vocab.span_text(entity_type, codes)
        return out

    @cached_property
    def _item_columns(self) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        items = self.catalog.items
        ids = items["id"]
        return (
            dict(zip(ids, items["title"], strict=True)),
            dict(zip(ids, items["text"], strict=True)),
            dict(zip(ids, items["type"], strict=True)),
        )

    @property
    def title(self) -> dict[str, str]:
        return self._item_columns[0]

    @property
    def text(self) -> dict[str, str]:
        return self._item_columns[1]

    @property
    def type_of(self) -> dict[str, str]:
        return self._item_columns[2]

    @cached_property
    def sid_types(self) -> list[str]:
        """Entity types with a SID table, in catalog order."""
        return [t for t in self.catalog.type_names if t in self.tables]

    @cached_property
    def linked_types(self) -> list[str]:
        """Types that other items link to (brand, category, show...): they get name<->SID grounding."""
        seen = {t for links in self.catalog.links.values() for t in links}
        return [t for t in self.sid_types if t in seen]

    @cached_property
    def children(self) -> dict[str, dict[str, list[str]]]:
        """parent item -> nested child type -> its children in sibling order (`neo.sids.nest`).

        Read off the SID tables: a nested code is the parent's code plus the child's rank.
        """
        out: dict[str, dict[str, list[str]]] = {}
        for child_type, table in self.tables.items():
            parent_type = table.parent_type
            if parent_type is None or parent_type not in self.tables:
                continue
            for parent, members in table.families(self.tables[parent_type]).items():
                out.setdefault(parent, {})[child_type] = members
        return out

    def target(self, item_id: str, entity_type: str) -> str | None:
        """`target_of` with a memo: the item itself if of `entity_type`, else its most specific linked item of that type."""
        key = (item_id, entity_type)
        if key not in self._targets:
            found = target_of(self.catalog, item_id, entity_type)
            self._targets[key] = found if found is not None and found in self.span else None
        return self._targets[key]

    def linked(self, item_id: str, entity_type: str) -> list[str]:
        """Items of `entity_type` that `item_id` links to (a product's categories, an episode's show)."""
        return [i for i in self.catalog.links.get(item_id, {}).get(entity_type, []) if i in self.span]

    # ----- users --------------------------------------------------------------------------------
    @cached_property
    def train_users(self) -> list[str]:
        """Users with a training history, sorted so datasets built from them are reproducible."""
        return sorted(self.split.train)

    def train_history(self, user: str) -> list[Interaction]:
        """The user's training interactions with items that have SIDs, oldest first."""
        return [x for x in self.split.train.get(user, ()) if x.item in self.span]

    def lines(self, interactions: Sequence[Interaction]) -> list[HistoryLine]:
        """Interactions as the prompt builders take them."""
        return [HistoryLine(self.span[x.item], float(x.timestamp), x.context or {}) for x in interactions]

    def history_text(self, user: str, start: int, end: int) -> str:
        """`history_block` of `train_history(user)[start:end]`, from lines rendered once per user.

        A line's text depends only on its own interaction and the previous one (the day gap), so a
        window is the gap-less form of its first line followed by the ordinary forms of the rest.
        """
        key = ("history", user)
        if key not in self.memo:
            lines = self.lines(self.train_history(user))
            self.memo[key] = (
                [history_lines([x], self.style)[0] for x in lines],
                history_lines(lines, self.style),
            )
        first, later = self.memo[key]
        if not 0 <= start < end <= len(later):
            raise IndexError(f"history window [{start}, {end}) outside user {user!r}'s {len(later)} items")
        return "\n".join([first[start], *later[start + 1 : end]])

    def history_text_of(self, interactions: Sequence[Interaction]) -> str:
        """`history_block` of any interactions (a thinned history: gaps are between the kept lines)."""
        return history_block(self.lines(interactions), self.style)


@dataclass(frozen=True)
class Task:
    """A task: which keys (users, items, queries) it walks over and how one key becomes examples.

    `examples(ctx, key, cfg, seed)` must be a pure function of its arguments (randomness from
    `rng_for(seed, task, key)`), so the pipeline can shard keys across processes freely.
    """

    name: str
    keys: Callable[[TaskContext, Mapping[str, Any]], list[str]]
    examples: Callable[[TaskContext, str, Mapping[str, Any], int], list[Example]]


def render_items(ctx: TaskContext, items: Sequence[str], output_format: str) -> str:
    """An answer listing items, one per line: SID spans (`ids`), titles (`text`) or both (`mixed`)."""
    if output_format == "ids":
        return "\n".join(ctx.span[i] for i in items)
    if output_format == "text":
        return "\n".join(ctx.title[i] for i in items)
    if output_format == "mixed":
        return "\n".join(f"{ctx.span[i]} {ctx.title[i]}" for i in items)
    raise ValueError(f"output format must be ids, text or mixed, got {output_format!r}")


def weighted_choice(rng: random.Random, weights: Mapping[str, float], what: str) -> str:
    """Draw a key of `weights` in proportion to its value (keys in the mapping's order)."""
    keys = [k for k, w in weights.items() if w > 0]
    if not keys:
        raise ValueError(f"{what}: at least one positive weight is needed, got {dict(weights)}")
    return rng.choices(keys, weights=[float(weights[k]) for k in keys])[0]
