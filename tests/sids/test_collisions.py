"""Collision policies: exact small cases and invariants over random code sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neo.sids.build import model_ranker
from neo.sids.collisions import collision_rate, disambiguate, resolve_by_popularity
from neo.sids.quantize import ResidualQuantizer


def test_disambiguate_numbers_groups_most_popular_first() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1]])
    out, size = disambiguate(codes, popularity=[1.0, 5.0, 0.0, 3.0])
    assert size == 3
    assert out.tolist() == [[0, 1, 2], [0, 1, 0], [2, 3, 0], [0, 1, 1]]


def test_disambiguate_without_popularity_keeps_catalog_order() -> None:
    out, size = disambiguate(np.array([[4], [4], [4]]))
    assert size == 3 and out[:, 1].tolist() == [0, 1, 2]


def test_popularity_keeps_popular_code_and_fills_the_last_level_nearest_first() -> None:
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 2]])
    out, moved = resolve_by_popularity(codes, (2, 3), popularity=[3, 2, 1, 0])
    assert out.tolist() == [[0, 0], [0, 1], [0, 2], [1, 2]]
    assert moved.tolist() == [1, 2]


def test_popularity_backs_off_a_level_when_the_prefix_is_full() -> None:
    codes = np.array([[0, 0], [0, 0], [0, 0]])
    out, moved = resolve_by_popularity(codes, (2, 2), popularity=[0, 2, 1])
    # row 1 keeps (0,0); row 2 takes (0,1); prefix (0,) is then full, so row 0 goes to prefix 1.
    assert out.tolist() == [[1, 0], [0, 0], [0, 1]]
    assert moved.tolist() == [0, 2]


def test_popularity_uses_codebook_distances_when_a_model_is_given() -> None:
    model = ResidualQuantizer(
        "rkmeans",
        [
            np.array([[0.0, 0.0], [10.0, 0.0]], np.float32),
            np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]], np.float32),
        ],
    )
    x = np.array([[0.9, 0.0], [0.8, 0.0]], np.float32)
    raw = model.encode(x)
    assert raw.tolist() == [[0, 1], [0, 1]]
    out, moved = resolve_by_popularity(raw, (2, 3), [2.0, 1.0], model_ranker(model, model.project(x)))
    # residual 0.8 is nearer to codeword 0 (0.0) than to -1.0, so the second item takes (0, 0).
    assert out.tolist() == [[0, 1], [0, 0]] and moved.tolist() == [1]


def test_popularity_rejects_more_items_than_codes() -> None:
    with pytest.raises(ValueError, match="do not fit in 4 codes"):
        resolve_by_popularity(np.zeros((5, 2), np.int32), (2, 2))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=3).flatmap(
        lambda sizes: st.tuples(
            st.just(sizes),
            st.lists(
                st.tuples(*[st.integers(0, s - 1) for s in sizes]), min_size=1, max_size=int(np.prod(sizes))
            ),
            st.randoms(use_true_random=False),
        )
    )
)
def test_policies_make_codes_unique_and_keep_what_they_promise(case) -> None:
    sizes, rows, rnd = case
    codes = np.array(rows, dtype=np.int32)
    popularity = [rnd.random() for _ in rows]
    resolved, moved = resolve_by_popularity(codes, sizes, popularity)
    assert collision_rate(resolved) == 0.0
    assert (resolved < np.array(sizes)).all() and (resolved >= 0).all()
    unmoved = np.setdiff1d(np.arange(len(codes)), moved)
    assert (resolved[unmoved] == codes[unmoved]).all()
    # the most popular item of every group of equal codes keeps its code
    for code in {tuple(r) for r in rows}:
        group = [i for i, r in enumerate(rows) if tuple(r) == code]
        assert tuple(resolved[max(group, key=lambda i: (popularity[i], -i))]) == code
    numbered, extra = disambiguate(codes, popularity)
    assert collision_rate(numbered) == 0.0 and (numbered[:, :-1] == codes).all()
    assert numbered[:, -1].max() == extra - 1


def test_collision_rate_counts_items_that_must_move() -> None:
    assert collision_rate(np.array([[1, 2], [1, 2], [1, 2], [0, 0]])) == pytest.approx(0.5)
    assert collision_rate(np.zeros((0, 3), np.int32)) == 0.0
