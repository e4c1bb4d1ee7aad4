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


def rank_gains(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per example: Recall@K (= HR@K for one target), NDCG@K and MRR, each example with one target; the
    means are `rank_metrics`, and two systems' gains on the same examples compare pairwise
    (`paired_ratio`).

    `ranks` are 0-based; a target that is not ranked at all has rank >= the catalog size (or -1,
    treated the same way), which scores 0 everywhere.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    found = ranks >= 0
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = found & (ranks < k)
        out[f"recall@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(np.where(hit, ranks, 0) + 2.0), 0.0)
    out["mrr"] = np.where(found, 1.0 / (np.where(found, ranks, 0) + 1.0), 0.0)
    return out


def rank_metrics(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean Recall@K (= HR@K for one target), NDCG@K and MRR over examples with one target each
    (`rank_gains` averaged); empty without examples."""
    if np.asarray(ranks).size == 0:
        return {}
    return {name: float(gains.mean()) for name, gains in rank_gains(ranks, ks).items()}


# ----- multi-relevant ranking (search) ---------------------------------------------------------
def set_gains(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per query with at least one relevant item (the others are skipped): Recall@K, HR@K, NDCG@K
    (binary gains) and MRR of its ranked list; the means are `set_metrics`.

    Recall@K divides by the number of relevant items, so a query with 30 relevant items cannot reach
    1 at K=10; NDCG@K normalises by the best achievable DCG with min(|relevant|, K) hits instead.
    """
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} ranked lists but {len(relevant)} relevant sets")
    gains: dict[str, list[float]] = defaultdict(list)
    for items, rel in zip(ranked, relevant, strict=True):
        rel = set(rel)
        if not rel:
            continue
        hits = np.array([item in rel for item in items], dtype=bool)
        discounts = 1.0 / np.log2(np.arange(max(len(items), len(rel), *ks)) + 2.0)
        for k in ks:
            top = hits[:k]
            gains[f"recall@{k}"].append(top.sum() / len(rel))
            gains[f"hr@{k}"].append(float(top.any()))
            ideal = discounts[: min(len(rel), k)].sum()
            gains[f"ndcg@{k}"].append(float((discounts[: len(top)] * top).sum() / ideal))
        first = np.flatnonzero(hits)
        gains["mrr"].append(1.0 / (first[0] + 1.0) if first.size else 0.0)
    return {name: np.asarray(values, dtype=np.float64) for name, values in gains.items()}


def set_metrics(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean Recall@K, HR@K, NDCG@K (binary gains) and MRR of ranked lists against sets of relevant items
    (`set_gains` averaged); empty when no query has a relevant item."""
    return {name: float(values.mean()) for name, values in set_gains(ranked, relevant, ks).items()}


# ----- paired comparison -----------------------------------------------------------------------
def paired_ratio(ours: np.ndarray, theirs: np.ndarray, resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """mean(ours) / mean(theirs) with a percentile bootstrap interval at `level`, resampling the examples
    in pairs: both systems scored the same users or queries, so what varies between resamples is which
    examples were drawn, and a ratio whose interval excludes 1 is more than the luck of the sample.
    A baseline mean of 0 gives an infinite ratio (nan when both are 0)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape or ours.ndim != 1 or not len(ours):
        raise ValueError(f"paired gains must be two equal, non-empty 1-D arrays; got {ours.shape} and {theirs.shape}")
    rng = np.random.default_rng(seed)
    ratios = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, resamples, 100):  # 100 resamples at a time bounds memory at 100 x n indices
            drawn = rng.integers(0, len(ours), size=(min(100, resamples - start), len(ours)))
            ratios.append(ours[drawn].mean(axis=1) / theirs[drawn].mean(axis=1))
        ratio = float(ours.mean() / theirs.mean())
    low, high = np.nanquantile(np.concatenate(ratios), [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return ratio, float(low), float(high)


MIN_PAIRED = 30
"""Fewest examples a paired interval is given for: a bootstrap over a handful of users or queries can
only redraw those few, and its interval would look far narrower than what they can tell."""


def paired_comparison(ours: np.ndarray, theirs: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(ratio, low, high) of mean(ours) / mean(theirs) on the same examples: with its 95% interval
    (`paired_ratio`) from `MIN_PAIRED` examples on, the ratio alone below, and nothing where `theirs` scores
    0 (no ratio)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if not theirs.mean() > 0:
        return None, None, None
    if len(ours) < MIN_PAIRED:
        return float(ours.mean() / theirs.mean()), None, None
    return paired_ratio(ours, theirs)


def paired_keys(prefix: str, ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray],
                metrics: Sequence[str] = ("recall@10", "ndcg@10")) -> dict[str, float]:
    """`<prefix>/<metric>` = neo / baseline on the same examples, with `.../low` and `.../high`, the 95%
    bootstrap interval (`paired_comparison`), for each of `metrics` both systems have; none below `MIN_PAIRED`
    examples, nor where the baseline scores 0 (no ratio, and metrics.json stays plain JSON)."""
    out: dict[str, float] = {}
    for metric in metrics:
        if metric in ours and metric in theirs and len(ours[metric]):
            ratio, low, high = paired_comparison(ours[metric], theirs[metric])
            if low is not None:
                key = f"{prefix}/{metric}"
                out[key], out[f"{key}/low"], out[f"{key}/high"] = ratio, low, high
    return out


def paired_rec(ranks: Mapping[str, Mapping[str, int]], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """`vs/<baseline>/rec/<type>/...` (`paired_keys`) from `<system>/<type>` -> {user: rank} with neo's as
    `neo/<type>`: every baseline against neo on the users both ranked."""
    out: dict[str, float] = {}
    for key, theirs in ranks.items():
        name, entity_type = key.split("/", 1)
        ours = ranks.get(f"neo/{entity_type}")
        users = [user for user in ours or () if user in theirs]
        if name != "neo" and users:
            out.update(paired_keys(f"vs/{name}/rec/{entity_type}", rank_gains([ours[u] for u in users], ks),
                                   rank_gains([theirs[u] for u in users], ks)))
    return out


def paired_search(ranked: Mapping[str, Sequence[Sequence[str]]], relevant: Mapping[str, Sequence[Iterable[str]]],
                  ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """`vs/<baseline>/search/<type>/...` (`paired_keys`) from `<system>/<type>` -> ranked lists in the
    order of that type's queries (`relevant[type]`), neo's as `neo/<type>`."""
    out: dict[str, float] = {}
    for key, theirs in ranked.items():
        name, entity_type = key.split("/", 1)
        ours = ranked.get(f"neo/{entity_type}")
        if name != "neo" and ours is not None:
            out.update(paired_keys(f"vs/{name}/search/{entity_type}", set_gains(ours, relevant[entity_type], ks),
                                   set_gains(theirs, relevant[entity_type], ks)))
    return out


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
