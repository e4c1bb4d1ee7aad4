"""Search: a text query -> the items of a type that answer it.

Logged queries (the `queries` table) are used where the catalog has them; only those with
`split == "train"` ever become training examples. Catalogs without logged queries (the Amazon
data) get **synthetic** queries derived from metadata, marked `synthetic=True`:

- keyword queries: 2-4 content words of an item's title (its description where the title is too
  short); per item, one of them is held out (`split="test"`) for evaluation;
- attribute queries: the names of an item's most specific linked entities (e.g. leaf category +
  brand), answered by every item sharing them; a stable hash of the text holds out about 1 in 5.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from neo.data.catalog import Catalog
from neo.tasks.base import Example, Task, TaskContext, render_items, rng_for, weighted_choice
from neo.tasks.prompts import FORMAT_PHRASES, search_prompt, templates

DEFAULT_FORMATS = {"ids": 0.8, "mixed": 0.1, "text": 0.1}
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "with",
        "without",
        "this",
        "that",
        "these",
        "those",
        "x",
        "pack",
        "pcs",
        "pc",
        "set",
        "new",
        "inch",
        "inches",
        "mm",
        "cm",
        "ft",
        "oz",
        "lb",
        "lbs",
    }
)
_WORD = re.compile(r"[a-z][a-z0-9'&+-]*[a-z0-9]|[a-z]{2,}")


class Query(NamedTuple):
    id: str
    text: str
    type: str
    items: list[str]
    split: str
    synthetic: bool


def content_words(text: str) -> list[str]:
    """Lower-cased words worth searching for, in order, without repeats or stopwords."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) > 2 and word not in STOPWORDS and word not in out:
            out.append(word)
    return out


def _stable_fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def synthetic_queries(
    catalog: Catalog, seed: int = 0, per_item: int = 3, types: list[str] | None = None
) -> list[Query]:
    """Queries derived from item metadata for catalogs that log none (see the module docstring)."""
    linked_types = {t for links in catalog.links.values() for t in links}
    types = types or [t for t in catalog.type_names if t not in linked_types]
    items = catalog.items
    title_of = dict(zip(items["id"], items["title"], strict=True))
    out: list[Query] = []
    by_attributes: dict[tuple[str, str], list[str]] = {}
    for item, entity_type, text in zip(items["id"], items["type"], items["text"], strict=True):
        if entity_type not in types:
            continue
        rng = rng_for(seed, "search", item)
        words = content_words(title_of[item])
        if len(words) < 3:
            words += [w for w in content_words(text) if w not in words]
        texts: list[str] = []
        for _ in range(per_item * 4):
            if len(texts) == per_item or len(words) < 2:
                break
            picked = sorted(rng.sample(range(len(words)), min(len(words), rng.randint(2, 4))))
            query = " ".join(words[i] for i in picked)
            if query not in texts:
                texts.append(query)
        for n, query in enumerate(texts):
            split = "test" if n == len(texts) - 1 and len(texts) > 1 else "train"
            out.append(Query(f"syn:{item}:{n}", query, entity_type, [item], split, True))
        links = catalog.links.get(item, {})
        names = [title_of[ids[-1]] for t, ids in sorted(links.items()) if ids and ids[-1] in title_of]
        if names:
            by_attributes.setdefault((entity_type, " ".join(names)), []).append(item)
    for (entity_type, text), members in by_attributes.items():
        split = "test" if _stable_fraction(f"{seed}:{text}") < 0.2 else "train"
        out.append(
            Query(
                f"syn:attr:{hashlib.sha256(text.encode()).hexdigest()[:12]}",
                text,
                entity_type,
                members,
                split,
                True,
            )
        )
    return out


def logged_queries(catalog: Catalog) -> list[Query]:
    table = catalog.queries
    if table is None:
        return []
    return [
        Query(q["id"], q["text"], q["type"], list(q["items"]), q["split"] or "test", False) for q in table
    ]


def queries(catalog: Catalog, part: str | None = None, seed: int = 0, per_item: int = 3) -> list[Query]:
    """The catalog's logged queries, or synthetic ones if it logs none; only `part` ('train', 'test') if given.

    Evaluation calls this with `part="test"` to get exactly the queries that training never saw.
    """
    found = logged_queries(catalog) or synthetic_queries(catalog, seed, per_item)
    return [q for q in found if part is None or q.split == part]


SYNTHETIC_MODES = ("auto", "always", "never")


def training_queries(
    catalog: Catalog, synthetic: str = "auto", seed: int = 0, per_item: int = 3
) -> list[Query]:
    """The queries search examples are made of: only `split == "train"` ones.

    `synthetic` says when metadata-derived queries join the logged ones: `auto` only for a catalog that
    logs none (for its unlinked types, as `synthetic_queries` does), `always` in addition to logged
    queries and for every type (they tie each item's own words to its SID, which logged queries, a few
    per topic, cannot), `never` logged queries only. Evaluation always uses
    `queries(catalog, "test")`, so the extra synthetic queries never change what is scored.
    """
    if synthetic not in SYNTHETIC_MODES:
        raise ValueError(
            f"tasks.search.synthetic: expected one of {list(SYNTHETIC_MODES)}, got {synthetic!r}"
        )
    logged = logged_queries(catalog)
    found = list(logged)
    if synthetic == "always":
        found += synthetic_queries(catalog, seed, per_item, types=list(catalog.type_names))
    elif synthetic == "auto" and not logged:
        found += synthetic_queries(catalog, seed, per_item)
    return [q for q in found if q.split == "train"]


def _query_settings(cfg: Mapping[str, Any] | None) -> tuple[str, int, int]:
    """(synthetic mode, generator seed, queries per item) of a search task config, with their defaults."""
    cfg = cfg or {}
    return str(cfg.get("synthetic", "auto")), int(cfg.get("synthetic_seed", 0)), int(cfg.get("per_item", 3))


def configured_training_queries(catalog: Catalog, cfg: Mapping[str, Any] | None) -> list[Query]:
    """The training queries of a search task configured by `cfg` (`tasks.tasks.search`): what training
    fits the checkpoint's search index on (`neo.decoding.lexical.fit_index`), as well as the examples."""
    synthetic, seed, per_item = _query_settings(cfg)
    return training_queries(catalog, synthetic, seed=seed, per_item=per_item)


def _train_index(ctx: TaskContext, cfg: Mapping[str, Any]) -> dict[str, Query]:
    key = ("search", *_query_settings(cfg))
    if key not in ctx.memo:
        found = configured_training_queries(ctx.catalog, cfg)
        ctx.memo[key] = {q.id: q for q in found if q.type in ctx.tables}
    return ctx.memo[key]


def keys(ctx: TaskContext, cfg: Mapping[str, Any]) -> list[str]:
    return sorted(_train_index(ctx, cfg))


def examples(ctx: TaskContext, query_id: str, cfg: Mapping[str, Any], seed: int) -> list[Example]:
    query = _train_index(ctx, cfg)[query_id]
    if query.split != "train":
        raise ValueError(
            f"query {query_id!r} is in split {query.split!r}; only training queries make examples"
        )
    answer = [i for i in query.items if i in ctx.span][: int(cfg.get("max_k", 5))]
    if not answer:
        return []
    rng = rng_for(seed, "search", query_id)
    output_format = weighted_choice(rng, cfg.get("formats", DEFAULT_FORMATS), "tasks.search.formats")
    prompt = search_prompt(
        query.text,
        query.type,
        len(answer),
        output_format,
        chat=ctx.chat,
        template=rng.randrange(len(templates("search"))),
        phrasing=rng.randrange(len(FORMAT_PHRASES["ids"]["train"])),
    )
    return [
        Example(
            prompt,
            render_items(ctx, answer, output_format),
            "search",
            {
                "query": query.id,
                "synthetic": query.synthetic,
                "target_type": query.type,
                "format": output_format,
                "targets": answer,
                "items": answer,
            },
        )
    ]


TASK = Task("search", keys, examples)
