"""The lexical prior: shallow fusion of the model's search scores with BM25 over the items' text.

A generative retriever must learn every item's words by gradient descent; a small model trained for
minutes on CPU does not (Scientific: Recall@10 0.04 where BM25 reaches 0.92, docs/benchmarks.md), while
an inverted index knows every word of every item, including items added after training. Searches
therefore score

    score(item) = log p_model(item | prompt) + weight * log q(item | query)

with `q = (1 - smoothing) * softmax(bm25(item, query) / temperature) + smoothing * uniform` over the
target type's items, the softmax taken over the `top` best-scoring items that share a word with the
query (a query that shares none leaves the model alone to rank, under a uniform `q`). Scores are on
Lucene's scale (each matched term adds its idf times a saturating tf below 1). The default weight, 100,
lets BM25 rank and the model break its near-ties: a model that has learned little of the items' text
(the CPU presets) only adds noise at weight 1, while weights 15-100 tie on validation queries
(docs/benchmarks.md, session 12), and the high end keeps a weak model from re-ranking broad queries whose
BM25 scores are close. Lower it for a model that searches well on its own. The beam search applies `q`
token by token through the trie's subtree masses, exactly as the transition prior (`neo.decoding.prior`),
stored sparse (`neo.decoding.fusion`).

The index is built from the catalog's item text when a checkpoint is loaded (title, text and the
titles of linked items, `Catalog.search_texts`: what the BM25 baseline indexes), per entity type, with the
title counted as many times as training found best on its queries (`fit_index`, `search_index.json`);
items added after training join it with their titles, weighted with the index's statistics until a type
has grown by a tenth, when every item is reweighed from the term counts the index keeps instead of the
texts (one CPU core, 12-word items: build 0.9 s / 11 s, reweighing 0.17 s / 2.6 s at 100k / 1M items).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import scipy.sparse
import torch

from neo.data.catalog import Catalog
from neo.decoding.fusion import FusionBatch, PriorEntries, request_weights, sparse_fusion
from neo.decoding.prior import settings_from_config
from neo.decoding.trie import ItemTrie
from neo.io import read_json, write_json

log = logging.getLogger(__name__)
REBUILD_GROWTH = 0.1  # items added since a type's last full build, as a share of it, before the next one


def import_bm25s() -> Any:
    """bm25s, with its logger back at INFO: the library sets DEBUG on import, which floods run logs."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.INFO)
    return bm25s


@dataclass(frozen=True)
class LexicalSettings:
    """`eval.settings.lexical`: how much the BM25 prior counts in searches (0 switches it off), the
    uniform share that keeps every item reachable, the softmax temperature of the scores, and how many
    best-scoring items share the rest."""

    weight: float = 100.0
    smoothing: float = 0.1
    temperature: float = 1.0
    top: int = 100

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"lexical.weight must be >= 0 (0 switches the prior off), got {self.weight}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(
                f"lexical.smoothing must lie in (0, 1]: the uniform share that keeps every item reachable, "
                f"got {self.smoothing}"
            )
        if self.temperature <= 0:
            raise ValueError(f"lexical.temperature must be > 0, got {self.temperature}")
        if self.top < 1:
            raise ValueError(f"lexical.top must be >= 1 (items whose BM25 scores count), got {self.top}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> LexicalSettings:
        return settings_from_config(cls, options, "lexical")


class _TypeIndex(NamedTuple):
    """One entity type's index: item ids, token -> column, BM25 weights `[items, tokens]` (sparse CSC) with
    the term count behind each weight (aligned with `weights.data`) and each item's length, so the index can
    be reweighted exactly without its texts; and the statistics new items are weighted with until then:
    items per token, mean item length and items at the last full weighting."""

    ids: list[str]
    vocab: dict[str, int]
    weights: scipy.sparse.csc_matrix
    counts: np.ndarray
    lengths: np.ndarray
    doc_freq: np.ndarray
    average_length: float
    built: int


class TermCounts(NamedTuple):
    """One type's items counted, not yet weighted: ids, token -> column, term counts `[items, tokens]` (CSC)
    and each item's length in tokens."""

    ids: list[str]
    vocab: dict[str, int]
    counts: scipy.sparse.csc_matrix
    lengths: np.ndarray


def _empty_index() -> _TypeIndex:
    return _TypeIndex([], {}, scipy.sparse.csc_matrix((0, 0), dtype=np.float32), np.zeros(0, dtype=np.uint16),
                      np.zeros(0, dtype=np.float32), np.zeros(0), 1.0, 0)


def _compact_counts(counts: np.ndarray) -> np.ndarray:
    """Term counts as uint16 (2 bytes a term), capped where they would wrap: BM25 has long saturated there."""
    return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)


def _widen(matrix: scipy.sparse.csc_matrix, columns: int) -> scipy.sparse.csc_matrix:
    """`matrix` with empty columns appended up to `columns` (words first seen in newer items)."""
    indptr = np.concatenate([matrix.indptr, np.full(columns - matrix.shape[1], matrix.indptr[-1])])
    return scipy.sparse.csc_matrix((matrix.data, matrix.indices, indptr), shape=(matrix.shape[0], columns))


class LexicalPrior:
    """Per entity type, a BM25 index over item text (Lucene's BM25 with bm25s's tokenizer and English
    stopwords, the BM25 baseline's)."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]], k1: float = 1.5, b: float = 0.75,
                 title_weight: int = 1):
        """Index `texts` (entity type -> item id -> text) now, so no search waits for an index; the texts
        are not kept (the index holds term counts). `title_weight`: how many times the title counts in the
        texts (`Catalog.search_texts`); items added later (`with_items`, known by their titles) are indexed
        with their titles counted as often."""
        if title_weight < 1:
            raise ValueError(f"title_weight must be >= 1, got {title_weight}")
        self.k1, self.b, self.title_weight = k1, b, title_weight
        self._indexes = {entity_type: self._build(entity_type, list(items), list(items.values()))
                         for entity_type, items in texts.items()}
        self._leaves: tuple[ItemTrie, dict[str, torch.Tensor]] | None = None
        self._base: tuple[ItemTrie, tuple[torch.Tensor, torch.Tensor]] | None = None  # uniform masses per trie
        self._lock = threading.Lock()

    @classmethod
    def from_catalog(cls, catalog: Catalog, types: Sequence[str], title_weight: int = 1) -> LexicalPrior:
        """Index every item of `types` by its `Catalog.search_texts` (title, text, linked items' titles)."""
        texts = {t: dict(zip(*catalog.search_texts(t, title_weight=title_weight), strict=True)) for t in types}
        return cls(texts, title_weight=title_weight)

    @classmethod
    def from_counts(cls, counted: Mapping[str, TermCounts], title_weight: int) -> LexicalPrior:
        """An index over texts already counted (entity type -> counts), weighted now: `fit_index` counts
        each field once for every title weight it tries (`FieldCounts`)."""
        prior = cls({}, title_weight=title_weight)
        prior._indexes = {entity_type: prior._weigh(*counts) for entity_type, counts in counted.items()}
        return prior

    def with_items(self, entity_type: str, titles: Mapping[str, str]) -> LexicalPrior:
        """A copy that also indexes items of `entity_type` by their `titles` (item id -> title, counted
        `title_weight` times; an id already indexed is re-indexed by its new title); the other types'
        indexes are shared. New items are weighted with the index's own statistics (its idf, updated for
        them, and mean length), so an addition costs its own items, not the catalog's; once the type has
        grown by more than `REBUILD_GROWTH` since its last full weighting, or an item is re-indexed, every
        item is reweighted from the term counts, so the older items' weights never drift far from an exact
        BM25."""
        if not titles:
            return self
        index = self._index(entity_type)
        vocab = dict(index.vocab)
        # a title counted `title_weight` times: its counts that many times over (`FieldCounts` uses the same)
        added, lengths = self._term_counts(list(titles.values()), vocab)
        added, lengths = self.title_weight * added, self.title_weight * lengths
        old = _widen(index.weights, len(vocab))
        old_counts = scipy.sparse.csc_matrix((index.counts, old.indices, old.indptr), shape=old.shape)
        indexed = {item: row for row, item in enumerate(index.ids)}
        replaced = [indexed[item] for item in titles if item in indexed]
        items = len(index.ids) - len(replaced) + len(titles)
        grown = copy.copy(self)
        if replaced or items - index.built > REBUILD_GROWTH * index.built:
            keep = np.ones(len(index.ids), dtype=bool)
            keep[replaced] = False
            counts = scipy.sparse.vstack([old_counts[keep], added], format="csc")
            ids = [item for item, kept in zip(index.ids, keep, strict=True) if kept] + list(titles)
            grown_index = self._weigh(ids, vocab, counts, np.concatenate([index.lengths[keep], lengths]))
        else:
            doc_freq = np.zeros(len(vocab))
            doc_freq[: len(index.doc_freq)] = index.doc_freq
            doc_freq += np.diff(added.indptr)  # items per column among the new ones
            new_weights = self._bm25(added, lengths, doc_freq, items, index.average_length)
            weights = scipy.sparse.vstack([old, new_weights], format="csc")
            counts = scipy.sparse.vstack([old_counts, added], format="csc")
            grown_index = _TypeIndex(index.ids + list(titles), vocab, weights, _compact_counts(counts.data),
                                     np.concatenate([index.lengths, lengths]), doc_freq, index.average_length,
                                     index.built)
        grown._indexes = {**self._indexes, entity_type: grown_index}
        grown._leaves, grown._base, grown._lock = None, None, threading.Lock()
        return grown

    def _index(self, entity_type: str) -> _TypeIndex:
        return self._indexes.get(entity_type) or _empty_index()

    def terms(self, entity_type: str, item_id: str) -> dict[str, int]:
        """The words one item is indexed by, with their counts: what a query can find it by."""
        index = self._index(entity_type)
        try:
            row = index.ids.index(item_id)
        except ValueError:
            raise KeyError(f"{item_id!r} is not in the {entity_type!r} search index") from None
        counts = scipy.sparse.csc_matrix((index.counts, index.weights.indices, index.weights.indptr),
                                         shape=index.weights.shape).getrow(row)
        words = {column: word for word, column in index.vocab.items()}
        return {words[column]: int(count) for column, count in zip(counts.indices, counts.data, strict=True)}

    @staticmethod
    def _term_counts(texts: Sequence[str], vocab: dict[str, int]) -> tuple[scipy.sparse.csc_matrix, np.ndarray]:
        """Term counts `[texts, vocab]` (CSC) and token lengths of `texts`, tokenized as bm25s does; words not
        in `vocab` are added to it."""
        tokens = import_bm25s().tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)
        rows = np.repeat(np.arange(len(tokens)), [len(words) for words in tokens])
        columns = np.fromiter((vocab.setdefault(word, len(vocab)) for words in tokens for word in words),
                              dtype=np.int64, count=len(rows))
        counts = scipy.sparse.csc_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)),
                                         shape=(len(tokens), len(vocab)))
        counts.sum_duplicates()
        return counts, np.array([len(words) for words in tokens], dtype=np.float32)

    def _bm25(self, counts: scipy.sparse.csc_matrix, lengths: np.ndarray, doc_freq: np.ndarray, items: int,
              average_length: float) -> scipy.sparse.csc_matrix:
        """Lucene's BM25 weight of every counted term: idf = ln(1 + (N - df + 0.5) / (df + 0.5)) times
        tf / (tf + k1 * (1 - b + b * length / mean length)), on the structure of `counts`."""
        idf = np.log1p((items - doc_freq + 0.5) / (doc_freq + 0.5))
        column = np.repeat(np.arange(counts.shape[1]), np.diff(counts.indptr))
        tf = counts.data.astype(np.float64)
        norm = self.k1 * (1 - self.b + self.b * lengths[counts.indices] / average_length)
        weights = (idf[column] * tf / (tf + norm)).astype(np.float32)
        return scipy.sparse.csc_matrix((weights, counts.indices, counts.indptr), shape=counts.shape)

    def _weigh(self, ids: list[str], vocab: dict[str, int], counts: scipy.sparse.csc_matrix,
               lengths: np.ndarray) -> _TypeIndex:
        """A fully weighted index: statistics over every item, weights computed from them."""
        doc_freq = np.diff(counts.indptr).astype(np.float64)
        average_length = max(float(lengths.mean()), 1.0) if len(ids) else 1.0
        weights = self._bm25(counts, lengths, doc_freq, len(ids), average_length)
        return _TypeIndex(ids, vocab, weights, _compact_counts(counts.data), lengths, doc_freq, average_length,
                          len(ids))

    def _build(self, entity_type: str, ids: list[str], texts: list[str]) -> _TypeIndex:
        """The index of one type from its texts: one sparse matrix of weights, so a batch of queries is
        scored with one sparse product (bm25s's own `retrieve` takes ~0.2 s per query at 1M items)."""
        if not ids:
            return _empty_index()
        started = time.perf_counter()
        vocab: dict[str, int] = {}
        counts, lengths = self._term_counts(texts, vocab)
        index = self._weigh(ids, vocab, counts, lengths)
        log.info("search index of %d %s items built in %.1f s", len(ids), entity_type, time.perf_counter() - started)
        return index

    def _top_scores(self, entity_type: str, queries: Sequence[str], top: int
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the (item positions, BM25 scores) of at most `top` best items sharing a word with it,
        in rank order: by score, ties to the earlier item, so the result does not hang on the order of the
        index's words (`fit_index` builds the same scores with the words in another order)."""
        index = self._index(entity_type)
        tokens = import_bm25s().tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        token_rows, query_cols = [], []
        for column, words in enumerate(tokens):
            for word in words:  # a repeated word counts again, as in bm25s
                if (token := index.vocab.get(word)) is not None:
                    token_rows.append(token)
                    query_cols.append(column)
        counts = scipy.sparse.csc_matrix(
            (np.ones(len(token_rows), dtype=np.float32), (token_rows, query_cols)),
            shape=(index.weights.shape[1], len(queries)),
        )
        scored = (index.weights @ counts).tocsc()  # [items, queries], only items sharing a word
        out = []
        for column in range(len(queries)):
            span = slice(scored.indptr[column], scored.indptr[column + 1])
            items, values = scored.indices[span], scored.data[span]
            keep = values > 0
            items, values = items[keep], values[keep]
            if len(items) > top:  # only candidates at least as good as the `top`-th are ranked below
                tied = values >= np.partition(values, len(values) - top)[len(values) - top]
                items, values = items[tied], values[tied]
            best = np.lexsort((items, -values))[:top]  # ties go to the earlier item, as in the metrics
            items, values = items[best], values[best]
            out.append((items.astype(np.int64), values.astype(np.float32)))
        return out

    def _leaf_ids(self, trie: ItemTrie, entity_type: str) -> torch.Tensor:
        """Leaf id of each indexed item of `entity_type` (-1 for an item the trie cannot name)."""
        with self._lock:
            if self._leaves is None or self._leaves[0] is not trie:
                self._leaves = (trie, {})
            cached = self._leaves[1]
        if entity_type not in cached:
            cached[entity_type] = trie.leaf_ids(entity_type, self._index(entity_type).ids)
        return cached[entity_type]

    def _uniform(self, trie: ItemTrie) -> tuple[torch.Tensor, torch.Tensor]:
        """Each type's uniform distribution over its own leaves (one `[M]` vector) and its subtree masses."""
        with self._lock:
            if self._base is not None and self._base[0] is trie:
                return self._base[1]
        uniform = torch.zeros(trie.n_leaves, dtype=torch.float32, device=trie.device)
        for entity_type, first in trie.leaf_offset.items():
            count = len(trie.item_ids.get(entity_type, []))
            if count:
                uniform[first : first + count] = 1.0 / count
        base = (uniform, trie.subtree_mass(uniform.unsqueeze(0))[0])
        with self._lock:
            self._base = (trie, base)
        return base

    def _match_entries(self, trie: ItemTrie, queries: Sequence[str], entity_types: Sequence[str],
                       settings: LexicalSettings) -> PriorEntries:
        """Each request's uniform share `[B]` and its BM25 part as (request, leaf, mass) entries: a softmax
        over the `top` best items that share a word with the query, or nothing (share 1) without one."""
        share = torch.ones(len(queries), dtype=torch.float32, device=trie.device)
        rows, leaves, values = [], [], []
        for entity_type in dict.fromkeys(entity_types):
            if not trie.item_ids.get(entity_type):
                raise ValueError(f"type {entity_type!r} has no items in the trie")
            requests = [r for r, t in enumerate(entity_types) if t == entity_type]
            named_leaves = self._leaf_ids(trie, entity_type)
            for request, (items, scores) in zip(
                requests, self._top_scores(entity_type, [queries[r] for r in requests], settings.top), strict=True
            ):
                named = named_leaves[torch.from_numpy(items)]
                hit = named >= 0
                if not bool(hit.any()):
                    continue
                weights = torch.softmax(torch.from_numpy(scores)[hit.cpu()] / settings.temperature, 0)
                share[request] = settings.smoothing
                rows.append(torch.full((int(hit.sum()),), request, dtype=torch.int64))
                leaves.append(named[hit].cpu())
                values.append((1 - settings.smoothing) * weights)
        device = trie.device
        if not rows:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return PriorEntries(share, empty, empty, torch.zeros(0, dtype=torch.float32, device=device))
        return PriorEntries(share, torch.cat(rows).to(device), torch.cat(leaves).to(device),
                            torch.cat(values).to(device))

    def leaf_mass(self, trie: ItemTrie, queries: Sequence[str], entity_types: Sequence[str],
                  settings: LexicalSettings) -> torch.Tensor:
        """`q(leaf | query)` over the leaves of each request's type `[B, M]` (rows sum to 1): what `fusion`
        sums up the trie, whole (for inspection; the beam search reads `fusion`)."""
        entries = self._match_entries(trie, queries, entity_types, settings)
        return entries.leaf_mass(trie, self._uniform(trie)[0], entity_types)

    def fusion(self, trie: ItemTrie, queries: Sequence[str], entity_types: Sequence[str],
               settings: LexicalSettings, weights: Sequence[float] | None = None) -> FusionBatch:
        """The beam search's `prior` argument for searches: subtree masses of `q(. | query)` per request.

        `weights` overrides `settings.weight` per request (0 for rows the prior must not touch).
        """
        entries = self._match_entries(trie, queries, entity_types, settings)
        weight = request_weights(settings.weight, len(queries), weights, trie.device)
        return sparse_fusion(trie, self._uniform(trie)[1], entries, weight)


INDEX_FILE = "search_index.json"  # in a checkpoint: the title weight training fit for its search index


@dataclass(frozen=True)
class IndexSettings:
    """`search_index`: the title weights training tries for the checkpoint's search index (each item's
    title counted that many times in its indexed text) and how many training queries judge them. BM25 over
    one concatenated text weighs a word of the title like a word of a long description; queries are mostly
    written against titles (Scientific: title x1 -> x3 lifts BM25's NDCG@10 from 0.81 to 0.86,
    docs/benchmarks.md, session 13), and the training queries say by how much."""

    title_weights: tuple[int, ...] = (1, 2, 3, 5, 8, 13)
    max_queries: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.title_weights or min(self.title_weights) < 1:
            raise ValueError(f"search_index.title_weights: expected integers >= 1, got {list(self.title_weights)}")
        if self.max_queries < 1:
            raise ValueError(f"search_index.max_queries must be >= 1, got {self.max_queries}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> IndexSettings:
        options = dict(options or {})
        if "title_weights" in options:
            try:
                options["title_weights"] = tuple(int(w) for w in options["title_weights"])
            except (TypeError, ValueError):
                raise ValueError(f"search_index.title_weights: expected integers >= 1, "
                                 f"got {options['title_weights']!r}") from None
        return settings_from_config(cls, options, "search_index")


@dataclass(frozen=True)
class IndexFit:
    """A checkpoint's search index settings as training chose them (`search_index.json`), with the evidence:
    BM25's NDCG@10 on the training queries at each title weight tried."""

    title_weight: int = 1
    ndcg: Mapping[int, float] = dataclasses.field(default_factory=dict)
    queries: int = 0

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"title_weight": self.title_weight, "queries": self.queries,
                          "ndcg@10": {str(w): round(v, 6) for w, v in self.ndcg.items()}})

    @classmethod
    def load(cls, path: str | os.PathLike) -> IndexFit:
        """Read a file written by `save`; a malformed one is refused with the file and field named."""
        path = Path(path)
        raw = read_json(path, "search index file")
        weight = raw.get("title_weight") if isinstance(raw, dict) else None
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ValueError(f"{path}: title_weight: expected an integer >= 1, got {weight!r}")
        try:
            ndcg = {int(w): float(v) for w, v in (raw.get("ndcg@10") or {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"{path}: ndcg@10: expected {{title weight: score}}, got {raw.get('ndcg@10')!r}") from None
        return cls(weight, ndcg, int(raw.get("queries") or 0))


class LabelledQuery(Protocol):
    """A query with the items that answer it (`neo.tasks.search.Query` is one)."""

    text: str
    type: str
    items: Sequence[str]


def _ndcg_at_10(ranked: Sequence[str], relevant: set[str]) -> float:
    gain = sum(1 / math.log2(rank + 2) for rank, item in enumerate(ranked[:10]) if item in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
    return gain / ideal if ideal else 0.0


def mean_ndcg(prior: LexicalPrior, queries: Sequence[LabelledQuery]) -> float:
    """BM25 alone (the prior's index) ranking `queries`: mean NDCG@10, ties broken by catalog order."""
    total = 0.0
    for entity_type in dict.fromkeys(q.type for q in queries):
        typed = [q for q in queries if q.type == entity_type]
        ids = prior._index(entity_type).ids
        for query, (items, _) in zip(typed, prior._top_scores(entity_type, [q.text for q in typed], 10),
                                     strict=True):
            total += _ndcg_at_10([ids[i] for i in items], set(query.items))
    return total / len(queries) if queries else 0.0


class FieldCounts(NamedTuple):
    """One type's items counted once per field: the text without its title, and the titles on the same
    columns. Tokens never cross the ". " that joins the fields, so the counts of an item indexed with its
    title `w` times are `rest + w * title` (`at`): trying a title weight costs one BM25 weighting, not a
    tokenization of the catalog."""

    rest: TermCounts
    titles: scipy.sparse.csc_matrix
    title_lengths: np.ndarray

    @classmethod
    def of(cls, catalog: Catalog, entity_type: str) -> FieldCounts:
        ids, titles, rests = catalog.search_fields(entity_type)
        vocab: dict[str, int] = {}
        title_counts, title_lengths = LexicalPrior._term_counts(titles, vocab)
        rest_counts, rest_lengths = LexicalPrior._term_counts(rests, vocab)
        return cls(TermCounts(ids, vocab, rest_counts, rest_lengths), _widen(title_counts, len(vocab)), title_lengths)

    def at(self, title_weight: int) -> TermCounts:
        """The counts of the texts `Catalog.search_texts(..., title_weight=title_weight)` gives."""
        return self.rest._replace(counts=(self.rest.counts + title_weight * self.titles).tocsc(),
                                  lengths=self.rest.lengths + title_weight * self.title_lengths)


def fit_index(catalog: Catalog, types: Sequence[str], queries: Sequence[LabelledQuery],
              settings: IndexSettings = IndexSettings()) -> IndexFit:
    """The title weight under which BM25 alone ranks the training `queries` best (NDCG@10; the smaller
    weight on a tie). Without queries of `types` the title counts once. The catalog is tokenized once;
    each weight tried costs one BM25 weighting and the queries' scoring."""
    usable = [q for q in queries if q.type in types and q.items]
    if not usable:
        log.info("search index: no training queries for %s, the title counts once", list(types))
        return IndexFit()
    picked = random.Random(settings.seed).sample(usable, min(len(usable), settings.max_queries))
    fields = {entity_type: FieldCounts.of(catalog, entity_type) for entity_type in dict.fromkeys(q.type for q in picked)}
    ndcg: dict[int, float] = {}
    for weight in dict.fromkeys(settings.title_weights):
        prior = LexicalPrior.from_counts({entity_type: f.at(weight) for entity_type, f in fields.items()}, weight)
        ndcg[weight] = mean_ndcg(prior, picked)
        log.info("search index: title x%d, NDCG@10 %.4f on %d training queries", weight, ndcg[weight], len(picked))
    best = max(ndcg, key=lambda w: (ndcg[w], -w))
    return IndexFit(best, ndcg, len(picked))
