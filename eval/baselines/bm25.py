"""BM25 lexical search over item title + text (bm25s, Lucene variant, English stopwords)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from neo.eval.baselines.base import SearchBaseline

from neo.decoding.lexical import import_bm25s

bm25s = import_bm25s()


class BM25(SearchBaseline):
    name = "bm25"

    def __init__(self, item_ids: Sequence[str], texts: Sequence[str], k1: float = 1.5, b: float = 0.75):
        super().__init__(item_ids, texts)
        self.index = bm25s.BM25(k1=k1, b=b)
        self.index.index(
            bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False
        )

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        if not queries:
            return []
        k = min(k, len(self.item_ids))
        tokens = bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        rows, scores = self.index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        # A query sharing no term with an item scores 0 there: those are not retrieved, just padding.
        return [
            [self.item_ids[i] for i, s in zip(row, row_scores, strict=True) if s > 0]
            for row, row_scores in zip(np.asarray(rows), np.asarray(scores), strict=True)
        ]


class BM25Fitted(BM25):
    """BM25 over the same text with each title counted as many times as neo's search index counts it (the
    title weight the checkpoint fit on its training queries, `search_index.json`; the one-field form of
    BM25F). The evaluate recipe adds it next to `bm25` whenever that weight is above 1, so a report shows
    how much of neo's search is the index's field weighting rather than the model."""

    name = "bm25f"
    counts_fitted_title = True
