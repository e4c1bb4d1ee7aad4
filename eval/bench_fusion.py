"""Prior masses for a batch of searches: sparse (`neo.decoding.fusion`) against the dense table it replaced.

A random catalog of `--items` items (three 256-code levels, 12 random words each, one CPU thread), a batch of
`--batch` three-word queries. Side by side in one process: building the batch's masses (dense: the leaf
masses summed up the trie into `[B, N + M]`; sparse: `LexicalPrior.fusion`) and one beam step's reads of
them (`--beam` beams per request, every code of the level), with the ratio dense / sparse.

    python -m neo.eval.bench_fusion [--items 1000000] [--batch 16] [--beam 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from neo.decoding.lexical import LexicalPrior, LexicalSettings
from neo.decoding.synthetic import random_sid_tables
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab


def _median_ms(work: Callable[[], object], repeats: int) -> float:
    work()  # warm caches (the priors' per-trie tables)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run(items: int, batch: int, beam: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(1)
    vocab = SIDVocab(1000, {"p": [256, 256, 256]})
    tables = random_sid_tables(vocab, {"p": items}, seed=0)
    trie = ItemTrie.build(vocab, tables)
    rng = random.Random(0)
    words = [f"w{i}" for i in range(20000)]
    lexical = LexicalPrior({"p": {i: " ".join(rng.choice(words) for _ in range(12)) for i in tables["p"].item_ids}})
    queries = [" ".join(rng.choice(words) for _ in range(3)) for _ in range(batch)]
    types, settings = ["p"] * batch, LexicalSettings()

    dense_build = _median_ms(lambda: trie.subtree_mass(lexical.leaf_mass(trie, queries, types, settings)), repeats)
    sparse_build = _median_ms(lambda: lexical.fusion(trie, queries, types, settings), repeats)

    dense = trie.subtree_mass(lexical.leaf_mass(trie, queries, types, settings))
    sparse = lexical.fusion(trie, queries, types, settings)
    rows = torch.arange(batch).repeat_interleave(beam)  # every request's beams at random first-level nodes
    first_level = torch.nonzero(trie.node_depth == 1).squeeze(1)
    nodes = first_level[torch.randint(len(first_level), (batch * beam,), generator=torch.Generator().manual_seed(0))]
    children = trie.child(nodes.unsqueeze(1), torch.arange(256).unsqueeze(0)).clamp(min=0)
    flat = dense.view(-1)
    width = dense.shape[1]
    dense_read = _median_ms(lambda: (flat[(rows * width).unsqueeze(1) + children], flat[rows * width + nodes]), repeats)
    def sparse_step() -> torch.Tensor:
        return sparse.child_mass(rows, nodes, children, sparse.mass_at(rows, nodes))

    sparse_read = _median_ms(sparse_step, repeats)
    real = trie.has_child(nodes.unsqueeze(1), torch.arange(256).unsqueeze(0))  # others are masked in a beam step
    torch.testing.assert_close(sparse_step()[real], flat[(rows * width).unsqueeze(1) + children][real])
    return {
        "items": items, "batch": batch, "dense_mb": dense.numel() * 4 / 2**20,
        "sparse_mb": (sparse.keys.numel() * 12 + sparse.parent_keys.numel() * 8 + sparse.child_values.numel() * 4
                      ) / 2**20,
        "shared_mb": sparse.shared[0].numel() * 4 / 2**20,
        "dense_build_ms": dense_build, "sparse_build_ms": sparse_build,
        "dense_read_ms": dense_read, "sparse_read_ms": sparse_read,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--beam", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = run(args.items, args.batch, args.beam, args.repeats)
    print(f"{result['items']:,} items, {result['batch']} searches: "
          f"masses per batch {result['dense_mb']:.1f} MB dense vs {result['sparse_mb']:.1f} MB sparse "
          f"(plus a shared {result['shared_mb']:.1f} MB vector, built once per trie)")
    print(f"build: dense {result['dense_build_ms']:.1f} ms, sparse {result['sparse_build_ms']:.1f} ms "
          f"({result['dense_build_ms'] / result['sparse_build_ms']:.2f}x)")
    print(f"one beam step's reads ({args.beam} beams x 256 codes per search): dense {result['dense_read_ms']:.2f} ms, "
          f"sparse {result['sparse_read_ms']:.2f} ms ({result['dense_read_ms'] / result['sparse_read_ms']:.2f}x)")


if __name__ == "__main__":
    main()
