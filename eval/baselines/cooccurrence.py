"""Item-to-item transition baseline: "what do people take next after the items you just took?"

Transitions a -> b are counted for every pair where b follows a within `window` steps of a training
history, weighted `gap_decay ** (gap - 1)`, and each source row is normalised to sum to one (so
a hugely popular source item does not drown the others). A user's score for item j sums the rows
of their recent items, weighted `recency_decay ** (steps from the end)`. With window 1 and
recency 0 this is the first-order Markov chain. A tiny popularity term breaks ties and ranks
items for users whose history has no known transitions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from neo.eval.baselines.base import Recommender, popularity_counts

POPULARITY_WEIGHT = 1e-6


class Cooccurrence(Recommender):
    name = "cooccurrence"

    def __init__(
        self,
        item_ids: Sequence[str],
        window: int = 3,
        gap_decay: float = 0.3,
        recency_decay: float = 0.3,
        max_history: int = 10,
        symmetric_weight: float = 0.1,
    ):
        super().__init__(item_ids)
        if window < 1 or max_history < 1:
            raise ValueError(f"window and max_history must be >= 1, got {window} and {max_history}")
        self.window = window
        self.gap_decay = gap_decay
        self.recency_decay = recency_decay
        self.max_history = max_history
        self.symmetric_weight = symmetric_weight

    def fit_indices(
        self, histories: list[np.ndarray], valid: tuple[list[np.ndarray], np.ndarray] | None
    ) -> None:
        sources, targets, weights = [], [], []
        for gap in range(1, self.window + 1):
            for seq in histories:
                if len(seq) > gap:
                    sources.append(seq[:-gap])
                    targets.append(seq[gap:])
                    weights.append(np.full(len(seq) - gap, self.gap_decay ** (gap - 1)))
        n = self.n_items
        if sources:
            src, dst, w = np.concatenate(sources), np.concatenate(targets), np.concatenate(weights)
            forward = sp.csr_matrix((w, (src, dst)), shape=(n, n))
        else:
            forward = sp.csr_matrix((n, n))
        # Items bought together but in the other order still say something: a small backward share.
        transitions = (forward + self.symmetric_weight * forward.T).tocsr()
        transitions.setdiag(0)
        transitions.eliminate_zeros()
        row_sums = np.asarray(transitions.sum(axis=1)).ravel()
        self.transitions = sp.diags(1.0 / np.maximum(row_sums, 1e-12)) @ transitions
        counts = popularity_counts(histories, n)
        self.prior = torch.as_tensor(POPULARITY_WEIGHT * counts / max(counts.max(), 1.0), dtype=torch.float32)

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        rows, cols, weights = [], [], []
        for row, seq in enumerate(histories):
            recent = seq[-self.max_history :]
            rows.append(np.full(len(recent), row))
            cols.append(recent)
            weights.append(self.recency_decay ** np.arange(len(recent))[::-1])
        user_matrix = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(histories), self.n_items),
        )
        scores = torch.as_tensor((user_matrix @ self.transitions).toarray(), dtype=torch.float32)
        return scores + self.prior
