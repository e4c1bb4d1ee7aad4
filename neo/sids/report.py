"""SID quality numbers, the ones NEO compares SID configurations by.

- collision rate: 1 - distinct code tuples / items, before and after the collision policy;
- utilisation per level: fraction of the level's codes in use, and the perplexity of their usage
  (exp of the entropy: the effective number of codes; equals the codebook size when usage is uniform);
- prefix coherence: mean cosine similarity over all pairs of items sharing a level-1 (level-2) prefix,
  next to the same mean over all pairs of items: a good SID puts similar items under one prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neo.sids.collisions import collision_rate


def mean_pair_similarity(unit: np.ndarray, groups: np.ndarray | None = None) -> float | None:
    """Mean cosine over pairs of distinct items (within each group if `groups` given), exact in O(n d).

    Uses sum_{i != j} u_i . u_j = |sum u|^2 - sum |u_i|^2 per group, so no n x n matrix is formed.
    """
    if groups is None:
        groups = np.zeros(len(unit), dtype=np.int64)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), unit.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, unit.astype(np.float64))
    self_sims = np.zeros(len(counts))
    np.add.at(self_sims, inverse, np.einsum("ij,ij->i", unit, unit).astype(np.float64))
    pairs = float((counts * (counts - 1)).sum())
    if pairs == 0:
        return None
    return float(((sums**2).sum(axis=1) - self_sims).sum() / pairs)


def level_usage(codes: np.ndarray, codebook_sizes: Sequence[int]) -> tuple[list[float], list[float]]:
    """Per level: fraction of codes used, and perplexity of the code distribution."""
    utilisation, perplexity = [], []
    for level, size in enumerate(codebook_sizes):
        counts = np.bincount(codes[:, level], minlength=size) if len(codes) else np.zeros(size)
        utilisation.append(float((counts > 0).sum() / size))
        p = counts[counts > 0] / max(counts.sum(), 1)
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0)
    return utilisation, perplexity


def _prefix_groups(codes: np.ndarray, depth: int) -> np.ndarray:
    return np.unique(codes[:, :depth], axis=0, return_inverse=True)[1].ravel()


def quality_report(
    codes_before: np.ndarray,
    codes_after: np.ndarray,
    codebook_sizes: Sequence[int],
    embeddings: np.ndarray | None,
    seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    """The report of one entity type's table (`codes_after` / `codebook_sizes` are the final table's)."""
    utilisation, perplexity = level_usage(codes_after, codebook_sizes)
    report: dict[str, Any] = {
        "items": len(codes_after),
        "levels": len(codebook_sizes),
        "codebook_sizes": list(codebook_sizes),
        "collision_rate_before": collision_rate(codes_before),
        "collision_rate_after": collision_rate(codes_after),
        "utilization": utilisation,
        "perplexity": perplexity,
        "prefix_coherence_l1": None,
        "prefix_coherence_l2": None,
        "random_pair_similarity": None,
    }
    if embeddings is not None and len(embeddings) > 1:
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        unit = (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
        report["prefix_coherence_l1"] = mean_pair_similarity(unit, _prefix_groups(codes_after, 1))
        if codes_after.shape[1] > 1:
            report["prefix_coherence_l2"] = mean_pair_similarity(unit, _prefix_groups(codes_after, 2))
        report["random_pair_similarity"] = mean_pair_similarity(unit)
    report.update(extra)
    report["seconds"] = round(float(seconds), 3)
    return report
