"""Fitting the search index's title weight: every field counted once (`FieldCounts`) against one index
built from the joined texts per weight tried (what `fit_index` did before).

A random catalog of `--items` products (a 4-word title and a 12-word text each, out of 2,000 words, so
many items share a query's words) is written to a temporary dataset; `--queries` training queries name two
words of an item's title. Side by side in one process, for the default weights (1, 2, 3, 5, 8, 13): the
time to have every weight's index, and BM25's NDCG@10 on the queries under both, which must agree.

    python -m neo.eval.bench_index [--items 1000000] [--queries 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from neo.data.catalog import Catalog
from neo.decoding.lexical import FieldCounts, IndexSettings, LexicalPrior, mean_ndcg


class _Query(NamedTuple):
    text: str
    type: str
    items: list[str]


def _write_catalog(root: Path, items: int, rng: random.Random) -> list[list[str]]:
    """A product catalog under `root`; returns each item's title words."""
    words = [f"w{i}" for i in range(2000)]
    fields = [([rng.choice(words) for _ in range(4)], [rng.choice(words) for _ in range(12)]) for _ in range(items)]
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "bench", "entity_types": ["product"]}))
    with open(root / "items.jsonl", "w") as out:
        for n, (title, text) in enumerate(fields):
            out.write(json.dumps({"id": f"p{n}", "type": "product", "title": " ".join(title),
                                  "text": " ".join(text)}) + "\n")
    (root / "users.jsonl").write_text('{"id": "u"}\n')
    (root / "interactions.jsonl").write_text('{"user": "u", "item": "p0", "timestamp": 1}\n')
    return [title for title, _ in fields]


def run(items: int, queries: int) -> dict[str, object]:
    rng = random.Random(0)
    weights = IndexSettings().title_weights
    with tempfile.TemporaryDirectory() as tmp:
        titles = _write_catalog(Path(tmp), items, rng)
        catalog = Catalog.load(tmp)
        catalog.search_fields("product")  # load the tables once, outside both timings
        picked = [_Query(" ".join(rng.sample(titles[n], 2)), "product", [f"p{n}"])
                  for n in rng.sample(range(items), min(queries, items))]

        started = time.perf_counter()
        joined = {w: LexicalPrior.from_catalog(catalog, ["product"], title_weight=w) for w in weights}
        per_weight_s = time.perf_counter() - started

        started = time.perf_counter()
        fields = FieldCounts.of(catalog, "product")
        counted = {w: LexicalPrior.from_counts({"product": fields.at(w)}, w) for w in weights}
        counted_s = time.perf_counter() - started

        ndcg_joined = {w: mean_ndcg(joined[w], picked) for w in weights}
        ndcg_counted = {w: mean_ndcg(counted[w], picked) for w in weights}
    return {"items": items, "queries": len(picked), "weights": weights, "per_weight_s": per_weight_s,
            "counted_s": counted_s, "ndcg_joined": ndcg_joined, "ndcg_counted": ndcg_counted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    result = run(args.items, args.queries)
    print(f"{result['items']:,} items, title weights {list(result['weights'])}, {result['queries']} queries")
    print(f"every weight's index: one build per weight {result['per_weight_s']:.1f} s, fields counted once "
          f"{result['counted_s']:.1f} s ({result['per_weight_s'] / result['counted_s']:.2f}x)")
    for w in result["weights"]:
        print(f"  title x{w}: NDCG@10 {result['ndcg_joined'][w]:.4f} (built per weight) "
              f"{result['ndcg_counted'][w]:.4f} (counted once)")
    if any(abs(result["ndcg_joined"][w] - result["ndcg_counted"][w]) > 1e-9 for w in result["weights"]):
        raise SystemExit("the two indexes rank the queries differently")


if __name__ == "__main__":
    main()
