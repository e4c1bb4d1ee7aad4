"""Run the recommendation and search baselines on a catalog and return flat, comparable metrics.

Keys follow neo's metric naming, so model and baselines sit side by side in one metrics.json:
`baseline/<name>/rec/<type>/recall@10`, `baseline/<name>/search/<type>/ndcg@10`, ...

Recommendation protocol (the one the reference numbers in docs/benchmarks.md use): baselines
fit on the training histories; the validation target's history is the training history, the test
target's history is training + the validation item; every item of the target type is ranked
(full ranking, ties broken by item index) and items already in the history are *not* excluded
unless `exclude_history=True`. For a target type other than the interacted one (e.g. brand), every
history interaction is mapped to that type with `neo.data.splits.target_of` (product -> its brand).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from neo.eval.baselines.base import Recommender, SearchBaseline, SearchQuery
from neo.eval.baselines.bm25 import BM25, BM25Fitted
from neo.eval.baselines.cooccurrence import Cooccurrence
from neo.eval.baselines.dense import Dense
from neo.eval.baselines.popularity import Popularity
from neo.eval.baselines.sasrec import SASRec, SASRecConfig
from neo.eval.metrics import DEFAULT_KS, flat_keys, rank_metrics, set_metrics

from neo.data.catalog import Catalog
from neo.data.splits import Split, target_of, targets

log = logging.getLogger(__name__)

REC_BASELINES: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "cooccurrence": Cooccurrence,
    "sasrec": SASRec,
}
SEARCH_BASELINES: dict[str, type[SearchBaseline]] = {"bm25": BM25, "bm25f": BM25Fitted, "dense": Dense}


@dataclass
class TypedSplit:
    """One target type's view of a split: item ids, training histories and (history, target) pairs, with
    the users of the evaluated pairs (so a baseline's ranks pair up with neo's)."""

    entity_type: str
    item_ids: list[str]
    train: list[list[str]]
    valid: tuple[list[list[str]], list[str]]
    evaluation: tuple[list[list[str]], list[str]]
    evaluation_users: list[str]


class _Pairs(NamedTuple):
    histories: list[list[str]]
    targets: list[str]
    users: list[str]


def typed_split(catalog: Catalog, split: Split, entity_type: str, part: str) -> TypedSplit:
    """Map every interaction of `split` to `entity_type` (dropping those with no such link)."""
    mapped: dict[str, str | None] = {}

    def as_type(interactions) -> list[str]:
        out = []
        for interaction in interactions:
            if interaction.item not in mapped:
                mapped[interaction.item] = target_of(catalog, interaction.item, entity_type)
            if mapped[interaction.item] is not None:
                out.append(mapped[interaction.item])
        return out

    def pairs(which: str) -> _Pairs:
        """The users with a `which` target: their histories and targets."""
        wanted = targets(catalog, split, which, entity_type)
        return _Pairs([as_type(split.history(which, user)) for user in wanted], list(wanted.values()), list(wanted))

    valid, evaluated = pairs("valid"), pairs(part)
    return TypedSplit(
        entity_type,
        catalog.item_ids(entity_type),
        [as_type(h) for h in split.train.values()],
        (valid.histories, valid.targets),
        (evaluated.histories, evaluated.targets),
        evaluated.users,
    )


def build_recommender(
    name: str, item_ids: Sequence[str], sasrec_config: SASRecConfig | None = None, progress: bool = True
) -> Recommender:
    if name not in REC_BASELINES:
        raise ValueError(f"unknown recommendation baseline {name!r}; known: {sorted(REC_BASELINES)}")
    if name == "sasrec":
        return SASRec(item_ids, sasrec_config, progress=progress)
    return REC_BASELINES[name](item_ids)


def run_rec_baselines(
    catalog: Catalog,
    split: Split,
    entity_types: Sequence[str],
    part: str = "test",
    names: Sequence[str] = ("popularity", "cooccurrence", "sasrec"),
    ks: Sequence[int] = DEFAULT_KS,
    sasrec_config: SASRecConfig | None = None,
    exclude_history: bool = False,
    progress: bool = True,
    ranks: dict[str, dict[str, int]] | None = None,
) -> dict[str, float]:
    """Fit each baseline per target type and score it on `part` ('valid' or 'test').

    Also reports `.../n` (evaluated users), `.../fit_seconds` and, for SASRec, `.../epochs` and
    `.../best_epoch` per baseline and type. A type with no
    evaluation targets is skipped; SASRec is skipped for a type whose histories never hold two items.
    `ranks`, when given, receives `<name>/<type>` -> {user: 0-based rank of the target}, for paired
    comparisons with neo (`neo.eval.metrics.paired_ratio`).
    """
    out: dict[str, float] = {}
    for entity_type in entity_types:
        data = typed_split(catalog, split, entity_type, part)
        histories, wanted = data.evaluation
        if not wanted:
            log.warning(
                "no %s targets of type %r in %s; skipping its baselines", part, entity_type, catalog.name
            )
            continue
        for name in names:
            if name == "sasrec" and not any(len(h) >= 2 for h in data.train):
                log.warning("sasrec: no training history of type %r has two items; skipped", entity_type)
                continue
            started = time.perf_counter()
            model = build_recommender(name, data.item_ids, sasrec_config, progress).fit(
                data.train, data.valid
            )
            fit_seconds = time.perf_counter() - started
            ranked = model.rank(histories, wanted, exclude=histories if exclude_history else None)
            if ranks is not None:
                ranks[f"{name}/{entity_type}"] = dict(zip(data.evaluation_users, ranked.tolist(), strict=True))
            prefix = f"baseline/{name}/rec/{entity_type}"
            out.update(flat_keys(prefix, rank_metrics(ranked, ks)))
            out[f"{prefix}/n"] = len(wanted)
            out[f"{prefix}/fit_seconds"] = round(fit_seconds, 2)
            if isinstance(model, SASRec):
                summary = model.summary()
                out[f"{prefix}/epochs"], out[f"{prefix}/best_epoch"] = (
                    summary["epochs"],
                    summary["best_epoch"],
                )
            log.info(
                "%s %s: recall@10 %.4f ndcg@10 %.4f (%.0fs)",
                name,
                entity_type,
                out.get(f"{prefix}/recall@10", float("nan")),
                out.get(f"{prefix}/ndcg@10", float("nan")),
                fit_seconds,
            )
    return out


def queries_from_catalog(catalog: Catalog, split: str = "test") -> list[SearchQuery]:
    """The catalog's search queries of one split ('train' or 'test'); empty if it has no queries table."""
    if catalog.queries is None:
        return []
    return [
        SearchQuery(row["text"], row["type"], tuple(row["items"]))
        for row in catalog.queries
        if row["split"] == split
    ]


def run_search_baselines(
    catalog: Catalog,
    queries: Sequence[SearchQuery],
    ks: Sequence[int] = DEFAULT_KS,
    names: Sequence[str] = ("bm25", "dense"),
    title_weight: int = 1,
    ranked_lists: dict[str, list[list[str]]] | None = None,
) -> dict[str, float]:
    """Score each search baseline per target type: `baseline/<name>/search/<type>/<metric>`.
    `title_weight`: how many times `bm25f` counts each title (neo's fitted index weight). `ranked_lists`,
    when given, receives `<name>/<type>` -> each query's top items, in the order of that type's queries."""
    by_type: dict[str, list[SearchQuery]] = {}
    for query in queries:
        by_type.setdefault(query.entity_type, []).append(query)
    out: dict[str, float] = {}
    for entity_type, typed in by_type.items():
        for name in names:
            if name not in SEARCH_BASELINES:
                raise ValueError(f"unknown search baseline {name!r}; known: {sorted(SEARCH_BASELINES)}")
            engine_type = SEARCH_BASELINES[name]
            item_ids, texts = catalog.search_texts(
                entity_type, links=engine_type.indexes_links,
                title_weight=title_weight if engine_type.counts_fitted_title else 1,
            )
            if not item_ids:
                raise ValueError(f"{catalog.root}: queries ask for type {entity_type!r}, which has no items")
            engine = engine_type(item_ids, texts)
            ranked = engine.search([q.text for q in typed], max(ks))
            if ranked_lists is not None:
                ranked_lists[f"{name}/{entity_type}"] = ranked
            prefix = f"baseline/{name}/search/{entity_type}"
            out.update(flat_keys(prefix, set_metrics(ranked, [q.relevant for q in typed], ks)))
            out[f"{prefix}/n"] = len(typed)
    return out


def sasrec_config_from(options: Mapping | None) -> SASRecConfig:
    """A SASRecConfig from a (Hydra) mapping; unknown keys are an error that names them."""
    options = dict(options or {})
    known = set(SASRecConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"baselines.sasrec: unknown option(s) {unknown}; known: {sorted(known)}")
    return SASRecConfig(**options)
