"""Most-popular baseline: the same ranking for everyone, by interaction count in the training histories.

Counting only training histories (not the validation item) reproduces the reference numbers
(Beauty test NDCG@10 0.0053, Scientific 0.0162; see docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import torch
from neo.eval.baselines.base import Recommender, popularity_counts


class Popularity(Recommender):
    name = "popularity"

    def fit_indices(
        self, histories: list[np.ndarray], valid: tuple[list[np.ndarray], np.ndarray] | None
    ) -> None:
        self.counts = torch.as_tensor(popularity_counts(histories, self.n_items), dtype=torch.float32)

    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        return self.counts.expand(len(histories), -1)
