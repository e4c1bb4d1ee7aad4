"""Evaluation metrics shared by neo's model and its baselines.

Ranking metrics work on *ranks* (0-based position of a target in a full ranking) so that a model
never has to materialise a top-K list to be scored, and so that the model and every baseline are
scored by one piece of code. Ties in a score vector are broken by item index (lower first), which
makes every number here deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neo.sids.table import SIDTable
from neo.vocab import SIDVocab

DEFAULT_KS = (5, 10)


# ----- single-target ranking ------------------------------------------------------------------
def ranks_from_scores(scores: torch.Tensor | np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """0-based rank of each row's target in its full score row (higher score ranks first).

    Ties are broken by item index, exactly as a stable descending sort would order them.
    """
    scores = torch.as_tensor(scores)
    target_index = torch.as_tensor(np.asarray(targets, dtype=np.int64)).view(-1, 1)
    if scores.ndim != 2 or scores.shape[0] != target_index.shape[0]:
        raise ValueError(
            f"scores must be [n_rows, n_items] with one target per row; got {tuple(scores.shape)} "
            f"and {target_index.shape[0]} targets"
        )
    target_score = scores.gather(1, target_index)
    columns = torch.arange(scores.shape[1]).view(1, -1)
    ahead = (scores > target_score) | ((scores == target_score) & (columns < target_index))
    return ahead.sum(dim=1).numpy().astype(np.int64)


def rank_metrics(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean Recall@K (= HR@K for one target), NDCG@K and MRR over examples with one target each.

    `ranks` are 0-based; a target that is not ranked at all has rank >= the catalog size (or -1,
    treated the same way), which scores 0 everywhere.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return {}
    found = ranks >= 0
    out: dict[str, float] = {}
    for k in ks:
        hit = found & (ranks < k)
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(np.where(hit, ranks, 0) + 2.0), 0.0).mean())
    out["mrr"] = float(np.where(found, 1.0 / (np.where(found, ranks, 0) + 1.0), 0.0).mean())
    return out


# ----- multi-relevant ranking (search) ---------------------------------------------------------
def set_metrics(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean Recall@K, HR@K, NDCG@K (binary gains) and MRR of ranked lists against sets of relevant items.

    Recall@K divides by the number of relevant items, so a query with 30 relevant items cannot reach
    1 at K=10; NDCG@K normalises by the best achievable DCG with min(|relevant|, K) hits instead.
    """
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} ranked lists but {len(relevant)} relevant sets")
    sums: dict[str, float] = defaultdict(float)
    counted = 0
    for items, rel in zip(ranked, relevant, strict=True):
        rel = set(rel)
        if not rel:
            continue
        counted += 1
        hits = np.array([item in rel for item in items], dtype=bool)
        discounts = 1.0 / np.log2(np.arange(max(len(items), len(rel), *ks)) + 2.0)
        for k in ks:
            top = hits[:k]
            sums[f"recall@{k}"] += top.sum() / len(rel)
            sums[f"hr@{k}"] += float(top.any())
            ideal = discounts[: min(len(rel), k)].sum()
            sums[f"ndcg@{k}"] += float((discounts[: len(top)] * top).sum() / ideal)
        first = np.flatnonzero(hits)
        sums["mrr"] += 1.0 / (first[0] + 1.0) if first.size else 0.0
    return {name: value / counted for name, value in sums.items()} if counted else {}


# ----- aggregation -----------------------------------------------------------------------------
def flat_keys(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """`{"recall@10": x}` under prefix `baseline/pop/rec/product` -> `{"baseline/pop/rec/product/recall@10": x}`."""
    return {f"{prefix}/{name}": float(value) for name, value in metrics.items()}


def rank_metrics_by_type(
    ranks: Sequence[int], entity_types: Sequence[str], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """Rank metrics per target type, plus the example count (`n`) each mean is over."""
    ranks = np.asarray(ranks)
    types = np.asarray(entity_types, dtype=object)
    out = {}
    for entity_type in dict.fromkeys(entity_types):
        mask = types == entity_type
        out[entity_type] = {**rank_metrics(ranks[mask], ks), "n": int(mask.sum())}
    return out


# ----- catalog validity of decoded token ids ---------------------------------------------------
@dataclass(frozen=True)
class ValidityReport:
    """What a decoded output names, checked against the catalog's SID tables."""

    spans: int = 0
    valid_items: int = 0
    unknown_items: int = 0
    malformed_spans: int = 0
    stray_sid_tokens: int = 0

    @property
    def invalid_rate(self) -> float:
        """Share of spans that do not name a catalog item (unknown code tuple or malformed span)."""
        return (self.unknown_items + self.malformed_spans) / self.spans if self.spans else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "spans": self.spans,
            "valid_items": self.valid_items,
            "unknown_items": self.unknown_items,
            "malformed_spans": self.malformed_spans,
            "stray_sid_tokens": self.stray_sid_tokens,
            "invalid_rate": self.invalid_rate,
        }


def catalog_validity(
    outputs: Iterable[Sequence[int]], vocab: SIDVocab, tables: Mapping[str, SIDTable]
) -> ValidityReport:
    """Parse SID spans out of decoded token ids and count those that name no catalog item.

    A span is `open(type) code(type, 0) ... code(type, L-1) close(type)`. It is *malformed* if a
    token of another type or level appears inside, it ends early, or it is never closed; it is
    *unknown* if well formed but its code tuple is absent from the type's table. Code or close
    tokens outside any span are *stray*. A constrained decoder must score zero on all three.
    """
    counts = defaultdict(int)
    for token_ids in outputs:
        open_type: str | None = None
        codes: list[int] = []
        broken = False
        for token in token_ids:
            kind = vocab.describe(int(token))
            if kind[0] == "open":
                if open_type is not None:
                    counts["malformed_spans"] += 1
                open_type, codes, broken = kind[1], [], False
                counts["spans"] += 1
            elif open_type is None:
                counts["stray_sid_tokens"] += kind[0] in ("code", "close")
            elif kind[0] == "code":
                broken |= kind[1] != open_type or kind[2] != len(codes)
                codes.append(kind[3])
            elif kind[0] == "close":
                table = tables.get(open_type)
                if broken or kind[1] != open_type or table is None or len(codes) != table.levels:
                    counts["malformed_spans"] += 1
                elif table.item_of(codes) is None:
                    counts["unknown_items"] += 1
                else:
                    counts["valid_items"] += 1
                open_type = None
            else:
                broken = True
        if open_type is not None:
            counts["malformed_spans"] += 1
    return ValidityReport(**counts)


# ----- steerability ----------------------------------------------------------------------------
def steerability(
    requested_types: Sequence[str],
    produced_types: Sequence[Sequence[str]],
    requested_counts: Sequence[int] | None = None,
    format_ok: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Share of outputs that obey the request: every named item of the requested type
    (`type_accuracy`), exactly the requested number of items (`count_accuracy`), and the requested
    output format as judged by the caller (`format_accuracy`). An output naming no item fails the
    type check: a recommendation request answered with prose did not follow the request.
    """
    if len(requested_types) != len(produced_types):
        raise ValueError(f"{len(requested_types)} requests but {len(produced_types)} outputs")
    if not requested_types:
        return {}
    out = {
        "type_accuracy": float(
            np.mean(
                [
                    bool(got) and all(t == want for t in got)
                    for want, got in zip(requested_types, produced_types, strict=True)
                ]
            )
        )
    }
    if requested_counts is not None:
        if len(requested_counts) != len(produced_types):
            raise ValueError(f"{len(requested_counts)} requested counts but {len(produced_types)} outputs")
        out["count_accuracy"] = float(
            np.mean([len(got) == want for want, got in zip(requested_counts, produced_types, strict=True)])
        )
    if format_ok is not None:
        if len(format_ok) != len(produced_types):
            raise ValueError(f"{len(format_ok)} format checks but {len(produced_types)} outputs")
        out["format_accuracy"] = float(np.mean(np.asarray(format_ok, dtype=bool)))
    return out


# ----- user understanding ----------------------------------------------------------------------
_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalise_term(term: str) -> str:
    """Case-, accent-, punctuation- and spacing-insensitive form of a topic, so 'Sci-Fi ' == 'sci fi'."""
    text = unicodedata.normalize("NFKD", term).encode("ascii", "ignore").decode().lower()
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()


def term_overlap(predicted: Sequence[Iterable[str]], truth: Sequence[Iterable[str]]) -> dict[str, float]:
    """Macro-averaged precision / recall / F1 of predicted vs ground-truth terms (e.g. profile topics).

    Terms are compared after `normalise_term`; duplicates count once. A user with no ground-truth
    terms is skipped (nothing to recover); an empty prediction scores 0 precision and recall.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions but {len(truth)} ground-truth term lists")
    precision, recall, f1 = [], [], []
    for pred_terms, true_terms in zip(predicted, truth, strict=True):
        want = {normalise_term(t) for t in true_terms} - {""}
        if not want:
            continue
        got = {normalise_term(t) for t in pred_terms} - {""}
        hit = len(got & want)
        p = hit / len(got) if got else 0.0
        r = hit / len(want)
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    if not f1:
        return {}
    return {
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
        "n": len(f1),
    }


# ----- latency ---------------------------------------------------------------------------------
def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean / max of per-request latencies, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {}
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "n": int(ms.size),
    }
