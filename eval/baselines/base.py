"""The interface every recommendation baseline implements, and the id <-> index bookkeeping they share.

A baseline is fitted on the training histories of one target type and ranks the *full* catalog of
that type, so its numbers are directly comparable with neo's full-ranking evaluation. Subclasses
only implement `fit_indices` and `score` on integer item indices; this class does the id mapping,
batching, exclusion and top-K selection once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import torch
from neo.eval.metrics import ranks_from_scores

History = Sequence[str]


class ItemIndex:
    """Item ids of one entity type <-> contiguous indices 0..n-1 (the columns of a score matrix)."""

    def __init__(self, item_ids: Sequence[str]):
        self.ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise ValueError("item ids of a baseline's catalog must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, items: Sequence[str]) -> np.ndarray:
        """Indices of the known items, in order; ids outside this type's catalog are dropped."""
        return np.fromiter((self.index[i] for i in items if i in self.index), dtype=np.int64)

    def encode_all(self, histories: Sequence[History]) -> list[np.ndarray]:
        return [self.encode(h) for h in histories]


class Recommender(ABC):
    """Ranks every item of one entity type given a user's history of items of that type."""

    name: ClassVar[str]

    def __init__(self, item_ids: Sequence[str]):
        if not item_ids:
            raise ValueError(f"{type(self).__name__}: the target type has no items to rank")
        self.items = ItemIndex(item_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def fit(
        self, histories: Sequence[History], valid: tuple[Sequence[History], Sequence[str]] | None = None
    ) -> Self:
        """Learn from training histories; `valid` = (histories, one target each) lets a model stop early."""
        encoded_valid = None
        if valid is not None:
            valid_histories, valid_targets = valid
            encoded_valid = (self.items.encode_all(valid_histories), self.items.encode(valid_targets))
        self.fit_indices(self.items.encode_all(histories), encoded_valid)
        return self

    @abstractmethod
    def fit_indices(
        self, histories: list[np.ndarray], valid: tuple[list[np.ndarray], np.ndarray] | None
    ) -> None:
        """Fit on integer histories (see `fit`)."""

    @abstractmethod
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores [len(histories), n_items] (higher is better) for a batch of integer histories."""

    def _batches(
        self, histories: list[np.ndarray], batch_size: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """(rows, scores of those rows), in batches of similar-length histories: a sequence model pads
        a batch to its longest history, so mixing one long history into short ones wastes most work."""
        order = np.argsort(
            np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories)), kind="stable"
        )
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield rows, self.score([histories[i] for i in rows]).float()

    def recommend(
        self,
        histories: Sequence[History],
        k: int,
        exclude: Sequence[History] | None = None,
        batch_size: int = 1024,
    ) -> list[list[str]]:
        """Top-`k` item ids per history, best first, never naming an item listed in its `exclude` row."""
        encoded = self.items.encode_all(histories)
        excluded = self.items.encode_all(exclude) if exclude is not None else None
        out: list[list[str]] = [[] for _ in encoded]
        for rows, scores in self._batches(encoded, batch_size):
            scores = _mask_excluded(scores, rows, excluded)
            top = _stable_topk(scores, min(k, self.n_items))
            for position, (row, items) in enumerate(zip(rows, top.tolist(), strict=True)):
                out[row] = [self.items.ids[i] for i in items if torch.isfinite(scores[position, i])]
        return out

    def rank(
        self,
        histories: Sequence[History],
        targets: Sequence[str],
        exclude: Sequence[History] | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """0-based rank of each target in the full ranking for its history.

        -1 (a miss at every K) if the target is not an item of this type, or is excluded for its row.
        """
        if len(histories) != len(targets):
            raise ValueError(f"{len(histories)} histories but {len(targets)} targets")
        return self.rank_indices(
            self.items.encode_all(histories),
            np.array([self.items.index.get(t, -1) for t in targets], dtype=np.int64),
            self.items.encode_all(exclude) if exclude is not None else None,
            batch_size,
        )

    def rank_indices(
        self,
        histories: list[np.ndarray],
        targets: np.ndarray,
        excluded: list[np.ndarray] | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        ranks = np.full(len(histories), -1, dtype=np.int64)
        for rows, scores in self._batches(histories, batch_size):
            scores = _mask_excluded(scores, rows, excluded)
            wanted = targets[rows]
            known = wanted >= 0
            known[known] = torch.isfinite(scores[np.flatnonzero(known), wanted[known]]).numpy()
            if known.any():
                ranks[rows[known]] = ranks_from_scores(scores[torch.as_tensor(known)], wanted[known])
        return ranks


def _mask_excluded(scores: torch.Tensor, rows: np.ndarray, excluded: list[np.ndarray] | None) -> torch.Tensor:
    """`scores` with each row's excluded items set to -inf (a copy: scores may be a shared view)."""
    if excluded is None:
        return scores
    scores = scores.clone()
    for position, row in enumerate(rows):
        scores[position, torch.as_tensor(excluded[row])] = -torch.inf
    return scores


def _stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best scores per row, ties broken by lower index (the order `ranks_from_scores` uses)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def popularity_counts(histories: list[np.ndarray], n_items: int) -> np.ndarray:
    """How often each item occurs in the training histories."""
    if not histories:
        return np.zeros(n_items, dtype=np.float64)
    return np.bincount(np.concatenate(histories), minlength=n_items).astype(np.float64)


# ----- search ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchQuery:
    """A text query for items of one entity type, with the ids a perfect system would return."""

    text: str
    entity_type: str
    relevant: tuple[str, ...]


class SearchBaseline(ABC):
    """Ranks the items of one entity type for free-text queries, over each item's title and text."""

    name: ClassVar[str]
    # Whether the indexed text also names the item's linked items (`Catalog.search_texts`): each baseline
    # gets the text it ranks best with.
    indexes_links: ClassVar[bool] = True
    # Whether the title counts as many times as in neo's fitted search index (`run_search_baselines`'s
    # `title_weight`) rather than once.
    counts_fitted_title: ClassVar[bool] = False

    def __init__(self, item_ids: Sequence[str], texts: Sequence[str]):
        if len(item_ids) != len(texts):
            raise ValueError(f"{len(item_ids)} item ids but {len(texts)} texts")
        if not item_ids:
            raise ValueError(f"{type(self).__name__}: no items to search")
        self.item_ids = list(item_ids)

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        """Top-`k` item ids per query, best first."""
