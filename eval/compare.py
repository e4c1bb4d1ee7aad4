"""Two evaluations, or two systems of one, compared on the examples both scored: is run B better than run A?

`neo run evaluate` keeps every user's rank and every query's ranked list next to its metrics
(`<output_dir>/eval/per_example.json`), for neo fused, the model alone and every baseline. Two runs on the
same split (two checkpoints, two decoding settings, two samples of users) then compare pairwise, with the
same 95% bootstrap interval the report gives each "neo / baseline" ratio, and no model is run again:

    python -m neo.eval.compare <run B>/eval <run A>/eval [--ours neo] [--theirs neo]

prints, per task, type and metric, B's `ours` against A's `theirs` on the users (queries) both ranked.
One directory twice compares two systems of one run (`--ours neo --theirs model_alone`).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from neo.eval.metrics import DEFAULT_KS, MIN_PAIRED, paired_comparison, rank_gains, set_gains

from neo.io import read_json, write_json

PER_EXAMPLE_FILE = "per_example.json"
PER_EXAMPLE_VERSION = 1


def per_example_record(rec_ranks: Mapping[str, Mapping[str, int]],
                       queries: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
                       ranked_lists: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, Any]:
    """What `per_example.json` holds: `rec` maps `<system>/<type>` to {user: 0-based rank of the target},
    `queries` maps a type to its (text, relevant items) in order and `search` maps `<system>/<type>` to
    the ranked lists of those queries."""
    return {
        "version": PER_EXAMPLE_VERSION,
        "rec": {key: dict(ranks) for key, ranks in rec_ranks.items()},
        "queries": {t: [[text, list(items)] for text, items in typed] for t, typed in queries.items()},
        "search": {key: [list(items) for items in lists] for key, lists in ranked_lists.items()},
    }


def save_per_example(eval_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    path = Path(eval_dir) / PER_EXAMPLE_FILE
    write_json(path, record, indent=None)
    return path


def load_per_example(path: str | os.PathLike) -> dict[str, Any]:
    """`per_example.json` from a file or an eval directory, checked, with an error that names the file."""
    path = Path(path)
    if path.is_dir():
        path = path / PER_EXAMPLE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-example results here (written by `neo run evaluate` since "
                                f"per_example.json version {PER_EXAMPLE_VERSION}; older runs must be re-evaluated)")
    record = read_json(path, "per-example results file")
    if not isinstance(record, dict) or record.get("version") != PER_EXAMPLE_VERSION:
        found = record.get("version") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: expected per-example results of version {PER_EXAMPLE_VERSION}, found {found!r}")
    for field in ("rec", "queries", "search"):
        if not isinstance(record.get(field), dict):
            raise ValueError(f"{path}: field {field!r} must be an object")
    for key, lists in record["search"].items():
        entity_type = key.split("/", 1)[-1]
        expected = len(record["queries"].get(entity_type, ()))
        if len(lists) != expected:
            raise ValueError(f"{path}: search[{key!r}] has {len(lists)} ranked lists for {expected} "
                             f"{entity_type} queries")
    return record


@dataclass(frozen=True)
class Comparison:
    """One metric of `ours` against `theirs` on the `n` examples both scored; no interval below MIN_PAIRED
    examples or where `theirs` scores 0."""

    task: str
    entity_type: str
    metric: str
    n: int
    ours: float
    theirs: float
    ratio: float | None
    low: float | None
    high: float | None

    def row(self) -> str:
        if self.ratio is None:
            versus = "-"
        elif self.low is None:
            versus = f"{self.ratio:.2f}x"
        else:
            versus = f"{self.ratio:.2f}x [{self.low:.2f}, {self.high:.2f}]"
        return (f"| {self.task} | {self.entity_type} | {self.metric} | {self.n} | {self.ours:.4f} | "
                f"{self.theirs:.4f} | {versus} |")


def _paired(task: str, entity_type: str, ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray],
            metrics: Sequence[str]) -> list[Comparison]:
    return [Comparison(task, entity_type, metric, len(ours[metric]), float(ours[metric].mean()),
                       float(theirs[metric].mean()), *paired_comparison(ours[metric], theirs[metric]))
            for metric in metrics if metric in ours and metric in theirs and len(ours[metric])]


def _query_keys(queries: Iterable[Sequence[Any]]) -> list[tuple[str, tuple[str, ...], int]]:
    """A key per query that pairs it across runs: its text, its relevant items, and which repeat it is."""
    seen: Counter = Counter()
    keys = []
    for text, items in queries:
        base = (text, tuple(sorted(items)))
        keys.append((*base, seen[base]))
        seen[base] += 1
    return keys


def compare(ours_record: Mapping[str, Any], theirs_record: Mapping[str, Any], ours: str = "neo",
            theirs: str = "neo", ks: Sequence[int] = DEFAULT_KS,
            metrics: Sequence[str] = ("recall@10", "ndcg@10")) -> list[Comparison]:
    """System `ours` of one run against system `theirs` of another (or the same) run, per task and type, on
    the users and queries both ranked."""
    out: list[Comparison] = []
    for key, mine in sorted(ours_record["rec"].items()):
        system, entity_type = key.split("/", 1)
        other = theirs_record["rec"].get(f"{theirs}/{entity_type}")
        if system != ours or other is None:
            continue
        users = [u for u in mine if u in other]
        if users:
            out += _paired("rec", entity_type, rank_gains([mine[u] for u in users], ks),
                           rank_gains([other[u] for u in users], ks), metrics)
    for key, mine in sorted(ours_record["search"].items()):
        system, entity_type = key.split("/", 1)
        other = theirs_record["search"].get(f"{theirs}/{entity_type}")
        if system != ours or other is None:
            continue
        our_queries = ours_record["queries"][entity_type]
        their_index = {k: i for i, k in enumerate(_query_keys(theirs_record["queries"][entity_type]))}
        shared = [(i, their_index[k]) for i, k in enumerate(_query_keys(our_queries)) if k in their_index]
        if shared:
            relevant = [our_queries[i][1] for i, _ in shared]
            out += _paired("search", entity_type, set_gains([mine[i] for i, _ in shared], relevant, ks),
                           set_gains([other[j] for _, j in shared], relevant, ks), metrics)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ours", help="an eval directory (or its per_example.json): run B")
    parser.add_argument("theirs", help="the eval directory to compare against: run A (may be the same)")
    parser.add_argument("--ours", dest="ours_system", default="neo",
                        help="system of run B: neo, model_alone or a baseline's name (default: neo)")
    parser.add_argument("--theirs", dest="theirs_system", default="neo", help="system of run A (default: neo)")
    args = parser.parse_args(argv)
    rows = compare(load_per_example(args.ours), load_per_example(args.theirs), args.ours_system,
                   args.theirs_system)
    if not rows:
        raise SystemExit(f"nothing to compare: {args.ours} has no {args.ours_system!r} results on a type or "
                         f"users that {args.theirs} has {args.theirs_system!r} results for")
    print(f"{args.ours_system} of {args.ours} against {args.theirs_system} of {args.theirs} "
          f"(95% paired bootstrap intervals; none below {MIN_PAIRED} examples)\n")
    print("| task | type | metric | n | ours | theirs | ratio |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.row())


if __name__ == "__main__":
    main()
