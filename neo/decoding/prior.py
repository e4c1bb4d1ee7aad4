"""The transition prior: shallow fusion of the model's item scores with counted "what came next".

A first-order Markov chain over the training histories (what users took right after an item) is a
strong recommender on its own: on Beauty it beats TIGER and a full-softmax SASRec, where the trained
model, which must learn every transition by gradient descent, stays below both (docs/benchmarks.md,
session 10). Counting knows a transition from one sighting; the model knows the whole history and the
prompt. Shallow fusion -- as with an n-gram language model in speech recognition -- adds the two in
log space at decoding time:

    score(item) = log p_model(item | prompt) + weight * log q(item | recent history)

with `q = (1 - smoothing) * successors(recent items) + smoothing * popularity` over the target type's
items: the successor shares of the last `recent` history items, each earlier one `decay` times less
weighty (the co-occurrence baseline's recency rule), and popularity add-one smoothed, so every item
keeps a finite score and a history with no recorded successor falls back to popularity. The beam search
applies it token by token: at a trie node the prior of code `c` is `mass(child) / mass(node)`, whose
product along an item's codes is exactly `q(item)`. Below a node with a child added after training
the prior is neutral, so the model alone ranks those siblings.

`ItemPrior.count` builds the counts per target type from training histories (cross-type targets via
the catalog's links: after an episode came an episode of show S, so show S follows that episode), by
`CountSettings` (the `transitions` config group): the next interaction only, or, as the co-occurrence
baseline, also the ones a few steps later at a decayed weight;
the training recipe writes them next to the checkpoint (`PRIOR_FILE`), so serving needs no catalog.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from neo.data.catalog import Catalog
from neo.data.splits import Split, target_of
from neo.decoding.fusion import FusionBatch, PriorEntries, request_weights, sparse_fusion
from neo.decoding.trie import ItemTrie
from neo.io import read_json, write_json

PRIOR_FILE = "item_prior.json"
PRIOR_VERSION = 1
SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class TypePrior:
    """One target type: popularity of its items and, per source item (any type), its successors' weighted
    counts."""

    popularity: dict[str, int]
    successors: dict[str, dict[str, float]]


def settings_from_config(cls: type[SettingsT], options: Mapping[str, Any] | None, section: str) -> SettingsT:
    """A frozen settings dataclass from a (Hydra) mapping: each given value cast to its field default's
    type, unknown keys refused with `section` named."""
    options = dict(options or {})
    defaults = cls()
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {unknown}; expected {sorted(known)}")
    values = {}
    for name in (n for n in known if n in options):
        kind = type(getattr(defaults, name))
        try:
            values[name] = kind(options[name])
        except (TypeError, ValueError):
            raise ValueError(f"{section}.{name}: expected {kind.__name__}, got {options[name]!r}") from None
    return cls(**values)


@dataclass(frozen=True)
class FusionSettings:
    """`eval.settings.prior`: how much the transition prior counts (per target type where `type_weights`
    names it: counts that help one type may drown another's), its popularity share, and how many recent
    history items it follows (each `decay` times the weight of the one after it)."""

    weight: float = 1.0
    type_weights: Mapping[str, float] = field(default_factory=dict)
    smoothing: float = 0.1
    recent: int = 3
    decay: float = 0.3

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"prior.weight must be >= 0 (0 switches the prior off), got {self.weight}")
        type_weights = {}
        for entity_type, value in self.type_weights.items():
            try:
                type_weights[str(entity_type)] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"prior.type_weights.{entity_type}: expected a number, got {value!r}") from None
            if type_weights[str(entity_type)] < 0:
                raise ValueError(f"prior.type_weights.{entity_type} must be >= 0, got {value}")
        object.__setattr__(self, "type_weights", type_weights)
        if not 0 < self.smoothing <= 1:
            raise ValueError(
                f"prior.smoothing must lie in (0, 1]: the popularity share that keeps every item reachable, "
                f"got {self.smoothing}"
            )
        if self.recent < 1:
            raise ValueError(f"prior.recent must be >= 1 (history items whose successors count), got {self.recent}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"prior.decay must lie in (0, 1], got {self.decay}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> FusionSettings:
        return settings_from_config(cls, options, "prior")

    def weight_for(self, entity_type: str) -> float:
        """The prior's weight for recommendations of `entity_type`."""
        return self.type_weights.get(entity_type, self.weight)

    @property
    def active(self) -> bool:
        """Whether any recommendation adds the prior (a weight above 0 somewhere)."""
        return self.weight > 0 or any(value > 0 for value in self.type_weights.values())


@dataclass(frozen=True)
class CountSettings:
    """`transitions`: how training counts the prior it writes into a checkpoint. Pairs up to `window`
    steps apart count `gap_decay ** (gap - 1)`; `backward` > 0 also counts each pair the other way round
    at that share; each source keeps its `max_successors` heaviest successors per type."""

    window: int = 1
    gap_decay: float = 0.3
    backward: float = 0.0
    max_successors: int = 64

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_successors < 1:
            raise ValueError(
                f"transitions.window and transitions.max_successors must be >= 1, got {self.window} and "
                f"{self.max_successors}"
            )
        if not 0 < self.gap_decay <= 1:
            raise ValueError(f"transitions.gap_decay must lie in (0, 1], got {self.gap_decay}")
        if self.backward < 0:
            raise ValueError(f"transitions.backward must be >= 0, got {self.backward}")

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> CountSettings:
        return settings_from_config(cls, options, "transitions")


class ItemPrior:
    """Transition and popularity counts per target type, built from training histories."""

    def __init__(self, types: Mapping[str, TypePrior], max_successors: int = 64):
        self.types = dict(types)
        self.max_successors = max_successors
        # lookups of the latest (trie, fresh items) pair
        self._leaf_tables: tuple[ItemTrie, frozenset[str], dict[str, Any]] | None = None

    # ----- building and files ------------------------------------------------------------------
    @classmethod
    def count(
        cls,
        histories: Iterable[Sequence[str]],
        target_types: Sequence[str],
        target_of: Callable[[str, str], str | None],
        counting: CountSettings = CountSettings(),
    ) -> ItemPrior:
        """Count, for each type T, `T-target of item t` after `item t-gap` and the T-targets' popularity.

        `target_of(item, T)` maps an interaction to type T (the item itself, a linked item, or None).
        A pair `gap` steps apart (1..`counting.window`) counts `gap_decay ** (gap - 1)`; with `backward`
        > 0 the later item also counts that much times `backward` towards the earlier one's target (bought
        together in the other order), as the co-occurrence baseline counts.
        """
        window, gap_decay, backward = counting.window, counting.gap_decay, counting.backward
        popularity = {t: Counter() for t in target_types}
        follow: dict[str, dict[str, Counter]] = {t: {} for t in target_types}
        mapped: dict[tuple[str, str], str | None] = {}

        def target(item: str, entity_type: str) -> str | None:
            key = (item, entity_type)
            if key not in mapped:
                mapped[key] = target_of(item, entity_type)
            return mapped[key]

        def add(source: str, item: str, entity_type: str, weight: float) -> None:
            found = target(item, entity_type)
            if found is not None:
                follow[entity_type].setdefault(source, Counter())[found] += weight

        for history in histories:
            for position, item in enumerate(history):
                for entity_type in target_types:
                    found = target(item, entity_type)
                    if found is not None:
                        popularity[entity_type][found] += 1
                    for gap in range(1, min(window, position) + 1):
                        earlier, weight = history[position - gap], gap_decay ** (gap - 1)
                        add(earlier, item, entity_type, weight)
                        if backward:
                            add(item, earlier, entity_type, backward * weight)
        types = {
            t: TypePrior(
                dict(popularity[t]),
                {source: dict(counts.most_common(counting.max_successors)) for source, counts in follow[t].items()},
            )
            for t in target_types
        }
        return cls(types, counting.max_successors)

    @classmethod
    def from_split(cls, catalog: Catalog, split: Split, target_types: Sequence[str],
                   counting: CountSettings = CountSettings()) -> ItemPrior:
        """Counts over the training part of `split` (what a model trained on that split has seen)."""
        return cls.count(
            ([x.item for x in history] for history in split.train.values()),
            target_types,
            lambda item, entity_type: target_of(catalog, item, entity_type),
            counting,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write `path` atomically (JSON: version, max_successors, per type popularity and successors)."""
        write_json(
            path,
            {
                "version": PRIOR_VERSION,
                "max_successors": self.max_successors,
                "types": {
                    t: {"popularity": p.popularity, "successors": p.successors} for t, p in self.types.items()
                },
            },
            indent=None,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ItemPrior:
        """Read a file written by `save`; a malformed one is refused with the file and field named."""
        path = Path(path)
        raw = read_json(path, "item prior")
        version = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
        if version != PRIOR_VERSION:
            raise ValueError(f"{path}: expected an item prior of version {PRIOR_VERSION}, got {version!r}")
        types = {}
        for entity_type, body in (raw.get("types") or {}).items():
            body = body if isinstance(body, dict) else {}
            popularity, successors = body.get("popularity"), body.get("successors")
            if not isinstance(popularity, dict) or not isinstance(successors, dict):
                raise ValueError(f"{path}: types.{entity_type} needs 'popularity' and 'successors' objects")
            types[entity_type] = TypePrior(
                {k: int(v) for k, v in popularity.items()},
                {s: {k: float(v) for k, v in c.items()} for s, c in successors.items()},
            )
        return cls(types, int(raw.get("max_successors", 64)))

    # ----- masses for the beam search ----------------------------------------------------------
    def _tables(self, trie: ItemTrie, fresh: frozenset[str]) -> dict[str, Any]:
        """Per-trie lookups: every type's smoothed popularity over its own leaves (one `[M]` vector, each
        type summing to 1) and its subtree masses, leaf ids of items, and the leaves below parents of
        `fresh` items."""
        cached = self._leaf_tables
        if cached is not None and cached[0] is trie and cached[1] is fresh:
            return cached[2]
        device = trie.device
        popularity = torch.zeros(trie.n_leaves, dtype=torch.float32)
        leaf_of, fresh_leaves = {}, []
        for entity_type in trie.vocab.type_names:
            ids = trie.item_ids.get(entity_type, [])
            if not ids:
                continue
            counts = self.types.get(entity_type, TypePrior({}, {})).popularity
            rows = trie.leaves_of(entity_type, ids)
            weights = torch.tensor([counts.get(item, 0) + 1.0 for item in ids], dtype=torch.float32)
            popularity[torch.tensor(rows)] = weights / weights.sum()
            leaf_of[entity_type] = dict(zip(ids, rows, strict=True))
            fresh_leaves.extend(leaf for item, leaf in zip(ids, rows, strict=True) if item in fresh)
        popularity = popularity.to(device)
        # Siblings of an item added after training are ranked by the model alone: the counts cannot weigh
        # an item that did not exist against its siblings, so below that parent they only say how likely
        # the parent is (a show's new episode competes with the show's other episodes on the model's
        # scores, behind the show's prior).
        parent = trie.parent[trie.n_nodes:]
        open_parents = parent[torch.tensor(fresh_leaves, dtype=torch.int64, device=device)].unique()
        neutral = torch.isin(parent, open_parents).nonzero().squeeze(1)
        tables = {"popularity": popularity, "shared": trie.subtree_mass(popularity.unsqueeze(0))[0],
                  "leaf_of": leaf_of, "neutral": (trie.n_nodes + neutral, parent[neutral])}
        self._leaf_tables = (trie, fresh, tables)
        return tables

    def _successor_entries(self, trie: ItemTrie, histories: Sequence[Sequence[str]], entity_types: Sequence[str],
                           settings: FusionSettings, fresh: frozenset[str]) -> PriorEntries:
        """Each request's popularity share `[B]` and its successor part as (request, leaf, mass) entries.

        The successor part averages the successor shares of the `settings.recent` most recent items
        (oldest last in `histories`), the last one weighted 1, each earlier one `decay` times less;
        items with no recorded successor drop out, and with none left `q` is popularity alone.
        """
        tables = self._tables(trie, fresh)
        shares, rows, leaves, values = [], [], [], []
        for request, (history, entity_type) in enumerate(zip(histories, entity_types, strict=True)):
            if entity_type not in tables["leaf_of"]:
                raise ValueError(f"type {entity_type!r} has no items in the trie")
            follows = self.types.get(entity_type, TypePrior({}, {})).successors
            leaf_of = tables["leaf_of"][entity_type]
            found, total = [], 0.0
            for age, source in enumerate(reversed(list(history)[-settings.recent:])):
                known = [(leaf_of[item], n) for item, n in follows.get(source, {}).items() if item in leaf_of]
                if not known:
                    continue
                share, counted = settings.decay**age, sum(float(n) for _, n in known)
                found.extend((leaf, share * float(n) / counted) for leaf, n in known)
                total += share
            shares.append(settings.smoothing if total else 1.0)
            for leaf, mass in found:
                rows.append(request)
                leaves.append(leaf)
                values.append((1 - settings.smoothing) * mass / total)
        device = trie.device
        return PriorEntries(torch.tensor(shares, dtype=torch.float32, device=device),
                            torch.tensor(rows, dtype=torch.int64, device=device),
                            torch.tensor(leaves, dtype=torch.int64, device=device),
                            torch.tensor(values, dtype=torch.float32, device=device))

    def leaf_mass(self, trie: ItemTrie, histories: Sequence[Sequence[str]], entity_types: Sequence[str],
                  settings: FusionSettings, fresh: frozenset[str] = frozenset()) -> torch.Tensor:
        """`q(leaf | history)` over the leaves of each request's type `[B, M]` (rows sum to 1): what `fusion`
        sums up the trie, whole (for inspection; the beam search reads `fusion`)."""
        entries = self._successor_entries(trie, histories, entity_types, settings, fresh)
        return entries.leaf_mass(trie, self._tables(trie, fresh)["popularity"], entity_types)

    def fusion(self, trie: ItemTrie, histories: Sequence[Sequence[str]], entity_types: Sequence[str],
               settings: FusionSettings, weights: Sequence[float] | None = None,
               fresh: frozenset[str] = frozenset()) -> FusionBatch:
        """The beam search's `prior` argument: subtree masses of every node and leaf, per request.

        `histories` are each request's item ids, oldest first. `weights`, one per request, overrides the
        settings' weight for the request's type (0 for requests the prior must not touch, such as
        searches batched with recommendations). `fresh` are the items added after training (pass the
        same object while it does not change: the lookups derived from it are cached by identity).
        """
        entries = self._successor_entries(trie, histories, entity_types, settings, fresh)
        tables = self._tables(trie, fresh)
        if weights is None:
            weights = [settings.weight_for(entity_type) for entity_type in entity_types]
        weight = request_weights(settings.weight, len(histories), weights, trie.device)
        return sparse_fusion(trie, tables["shared"], entries, weight, tables["neutral"])
