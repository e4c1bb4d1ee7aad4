"""Train / validation / test splits of the interaction sequences, the one place that defines them.

Two protocols, chosen in `dataset.yaml` (`split.protocol`):

- `leave_one_out`: per user, the last interaction is the test target, the second-last the validation
  target, the rest training history. Users with fewer than 3 interactions keep everything in train
  (they contribute training examples but no evaluation target).
- `temporal`: global cut-offs `split.valid_time` / `split.test_time` (default: the 80th / 90th percentile
  of all timestamps). Interactions before `valid_time` are training; a user's first interaction in
  [valid_time, test_time) is the validation target and the first one at or after `test_time` the test
  target. Later interactions are never used, so nothing from the future leaks into a history.

Histories follow one rule for both: validation sees train; test sees train plus the validation target.
Only `train` may produce training examples.

`split.hold_back: N` (leave_one_out) sets each user's last N interactions aside before splitting: a
*tuning run*. Its test part is the real validation target, predicted from a history whose last item the
model never saw in that user's context, as at test. The real validation part cannot give that: its
history is exactly a training sequence, so it rewards what the model memorised of each user, and
decoding settings chosen there (how much the transition prior counts) favour the model more than test
does (docs/benchmarks.md, sessions 15 and 17). A tuning run never sees the real test target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from neo.data.catalog import Catalog

PARTS = ("train", "valid", "test")


class Interaction(NamedTuple):
    item: str
    timestamp: float
    context: dict[str, Any]


@dataclass
class Split:
    protocol: str
    train: dict[str, list[Interaction]]
    valid: dict[str, Interaction]
    test: dict[str, Interaction]

    def history(self, part: str, user: str) -> list[Interaction]:
        """What the model may see when predicting `user`'s target in `part` (time-ordered)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        train = self.train.get(user, [])
        if part == "test" and user in self.valid:
            return [*train, self.valid[user]]
        return list(train)


def make_split(catalog: Catalog) -> Split:
    """Split `catalog`'s interactions with the protocol of its dataset.yaml. Deterministic."""
    protocol = catalog.spec.split.get("protocol", "leave_one_out")
    sequences = {
        user: [Interaction(*event) for event in events] for user, events in catalog.sequences().items()
    }
    if protocol == "leave_one_out":
        hold_back = int(catalog.spec.split.get("hold_back", 0))
        if hold_back:
            sequences = {user: events[:-hold_back] for user, events in sequences.items() if len(events) > hold_back}
        return leave_one_out(sequences)
    if protocol == "temporal":
        return temporal(sequences, catalog.spec.split.get("valid_time"), catalog.spec.split.get("test_time"))
    raise ValueError(f"{catalog.root / 'dataset.yaml'}: unknown split protocol {protocol!r}")


def leave_one_out(sequences: dict[str, list[Interaction]]) -> Split:
    train: dict[str, list[Interaction]] = {}
    valid: dict[str, Interaction] = {}
    test: dict[str, Interaction] = {}
    for user, events in sequences.items():
        if len(events) < 3:
            train[user] = list(events)
            continue
        train[user] = events[:-2]
        valid[user] = events[-2]
        test[user] = events[-1]
    return Split("leave_one_out", train, valid, test)


def temporal(
    sequences: dict[str, list[Interaction]], valid_time: float | None = None, test_time: float | None = None
) -> Split:
    stamps = np.fromiter((e.timestamp for events in sequences.values() for e in events), dtype=np.float64)
    if valid_time is None:
        valid_time = float(np.percentile(stamps, 80)) if stamps.size else 0.0
    if test_time is None:
        test_time = float(np.percentile(stamps, 90)) if stamps.size else 0.0
    if valid_time > test_time:
        raise ValueError(f"split.valid_time ({valid_time}) must not be after split.test_time ({test_time})")
    train: dict[str, list[Interaction]] = {}
    valid: dict[str, Interaction] = {}
    test: dict[str, Interaction] = {}
    for user, events in sequences.items():
        history = [e for e in events if e.timestamp < valid_time]
        if history:
            train[user] = history
        in_valid = next((e for e in events if valid_time <= e.timestamp < test_time), None)
        if in_valid is not None:
            valid[user] = in_valid
        in_test = next((e for e in events if e.timestamp >= test_time), None)
        if in_test is not None:
            test[user] = in_test
    return Split("temporal", train, valid, test)


def target_of(catalog: Catalog, item_id: str, entity_type: str) -> str | None:
    """The item itself if it is of `entity_type`, else its most specific linked item of that type (or None).

    E.g. a product's brand, its leaf category, or an episode's show: one interaction gives a target for
    every entity type. Links of one type are listed from the most general to the most specific (a
    category path runs root to leaf), so the last one is taken: the root category would make every
    product's category target the same.
    """
    row = catalog.item_row.get(item_id)
    if row is None:
        raise KeyError(f"unknown item {item_id!r} in dataset {catalog.name!r}")
    if catalog.item_types[row] == entity_type:
        return item_id
    linked = catalog.links.get(item_id, {}).get(entity_type)
    return linked[-1] if linked else None


def targets(catalog: Catalog, split: Split, part: str, entity_type: str) -> dict[str, str]:
    """User -> the `entity_type` target of their `part` interaction; users without one are left out."""
    if part not in ("valid", "test"):
        raise ValueError(f"targets exist for 'valid' and 'test' only, got {part!r}")
    out = {}
    for user, interaction in getattr(split, part).items():
        target = target_of(catalog, interaction.item, entity_type)
        if target is not None:
            out[user] = target
    return out
