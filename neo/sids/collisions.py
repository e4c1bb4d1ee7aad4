"""Collision policies: make every item's code tuple unique, so a generated SID names exactly one item.

- `disambiguate` (TIGER): append one level that numbers the items sharing a code (0, 1, 2...); its
  codebook size is the largest group. Every item keeps its semantic prefix; the extra level carries no
  meaning.
- `popularity` (NEO, GLIDE): the most popular item of a group keeps the code; each other item moves to
  the nearest free code, first among the last level's codes under the same prefix, then backing off one
  level at a time. No extra level, at the price of less popular items leaving their exact cell.

"Nearest" comes from a `CodeRanker`: with fitted codebooks, codes ordered by distance to the item's
residual; without them (imported SIDs), codes ordered by numeric distance to the item's own code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

CodeRanker = Callable[[int, tuple[int, ...]], np.ndarray]
"""(item row, prefix) -> the codes of level len(prefix), most preferred first."""


def collision_rate(codes: np.ndarray) -> float:
    """Fraction of items that cannot keep their code: 1 - distinct code tuples / items."""
    if len(codes) == 0:
        return 0.0
    return 1.0 - len(np.unique(codes, axis=0)) / len(codes)


def priority_order(popularity: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
    """Rows most popular first; ties (and no popularity at all) keep catalog order, so results are stable."""
    if popularity is None:
        return np.arange(n)
    scores = np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0)
    return np.lexsort((np.arange(n), -scores))


def disambiguate(
    codes: np.ndarray,
    popularity: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Codes with one extra level numbering items that share a tuple (most popular gets 0).

    Returns the new codes [n, levels + 1] and the extra level's codebook size (the largest group).
    """
    codes = np.asarray(codes, dtype=np.int32)
    extra = np.zeros(len(codes), dtype=np.int32)
    seen: Counter[tuple[int, ...]] = Counter()
    for row in priority_order(popularity, len(codes)):
        key = tuple(codes[row].tolist())
        extra[row] = seen[key]
        seen[key] += 1
    size = max(seen.values(), default=1)
    return np.concatenate([codes, extra[:, None]], axis=1), size


def numeric_ranker(codes: np.ndarray, codebook_sizes: Sequence[int]) -> CodeRanker:
    """Preference by closeness of code numbers to the item's own: the fallback without codebooks."""

    def rank(row: int, prefix: tuple[int, ...]) -> np.ndarray:
        level = len(prefix)
        candidates = np.arange(codebook_sizes[level])
        return candidates[np.lexsort((candidates, np.abs(candidates - codes[row, level])))]

    return rank


class CodeSpace:
    """Taken code tuples plus a count of taken tuples under every prefix, to skip full subtrees quickly."""

    def __init__(self, codebook_sizes: Sequence[int], taken: Iterable[tuple[int, ...]] = ()):
        self.sizes = tuple(int(s) for s in codebook_sizes)
        self.taken: set[tuple[int, ...]] = set()
        self.under: Counter[tuple[int, ...]] = Counter()
        for code in taken:
            self.take(code)

    def capacity(self, depth: int) -> int:
        """How many full tuples fit under a prefix of `depth` levels."""
        return int(np.prod(self.sizes[depth:], dtype=np.int64))

    def is_full(self, prefix: tuple[int, ...]) -> bool:
        return self.under[prefix] >= self.capacity(len(prefix))

    def take(self, code: tuple[int, ...]) -> None:
        if code in self.taken:
            raise ValueError(f"code {code} is already taken")
        self.taken.add(code)
        for depth in range(len(code) + 1):
            self.under[code[:depth]] += 1

    def nearest_free(self, row: int, code: tuple[int, ...], rank: CodeRanker) -> tuple[int, ...] | None:
        """The preferred free tuple: search under the longest prefix of `code` that still has room."""
        for depth in range(len(code) - 1, -1, -1):
            prefix = code[:depth]
            if not self.is_full(prefix):
                return self._descend(row, prefix, rank)
        return None

    def _descend(self, row: int, prefix: tuple[int, ...], rank: CodeRanker) -> tuple[int, ...]:
        for candidate in rank(row, prefix):
            code = (*prefix, int(candidate))
            if len(code) == len(self.sizes):
                if code not in self.taken:
                    return code
            elif not self.is_full(code):
                return self._descend(row, code, rank)
        raise AssertionError(f"prefix {prefix} was not full but has no free code")  # guarded by is_full


def resolve_by_popularity(
    codes: np.ndarray,
    codebook_sizes: Sequence[int],
    popularity: Sequence[float] | np.ndarray | None = None,
    rank: CodeRanker | None = None,
    taken: Iterable[tuple[int, ...]] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Unique codes: most popular item of each group keeps its code, others move to the nearest free one.

    `taken` are codes already owned by other items (existing items when encoding new ones). Returns the
    codes and the rows that moved. Raises when the code space is too small for all items.
    """
    codes = np.asarray(codes, dtype=np.int32)
    space = CodeSpace(codebook_sizes, taken)
    if len(codes) + len(space.taken) > space.capacity(0):
        raise ValueError(
            f"{len(codes) + len(space.taken)} items do not fit in {space.capacity(0)} codes "
            f"(codebook sizes {tuple(codebook_sizes)}); use more levels or larger codebooks"
        )
    rank = rank or numeric_ranker(codes, codebook_sizes)
    out = codes.copy()
    order = priority_order(popularity, len(codes))
    # Winners claim their codes before anyone moves, so a moved item never takes a code that a later
    # item owns: exactly (items - distinct codes) items move.
    losers = []
    for row in order:
        code = tuple(codes[row].tolist())
        if code in space.taken:
            losers.append(row)
        else:
            space.take(code)
    for row in losers:
        free = space.nearest_free(row, tuple(codes[row].tolist()), rank)
        assert free is not None  # capacity checked above
        out[row] = free
        space.take(free)
    return out, np.asarray(sorted(losers), dtype=np.int64)
