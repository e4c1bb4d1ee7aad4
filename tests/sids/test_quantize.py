"""Quantisers: determinism, small types, persistence, and RQ-VAE without codebook collapse."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neo.sids.config import QuantizerConfig
from neo.sids.quantize import ResidualQuantizer, fit_quantizer, kmeans
from neo.sids.report import level_usage

from .conftest import clustered


def test_residual_kmeans_is_deterministic_for_a_seed() -> None:
    x = clustered(600, 16, 12)
    cfg = QuantizerConfig(levels=2, codebook_size=16, niter=10)
    (first, first_codes), (second, _) = fit_quantizer(x, cfg), fit_quantizer(x, cfg)
    assert np.array_equal(first_codes, first.encode(x))  # codes from fitting == codes of the saved model
    assert all(np.array_equal(a, b) for a, b in zip(first.codebooks, second.codebooks, strict=True))
    assert np.array_equal(first.encode(x), second.encode(x))
    other, _ = fit_quantizer(x, QuantizerConfig(levels=2, codebook_size=16, niter=10, seed=1))
    assert not np.array_equal(first.codebooks[0], other.codebooks[0])


def test_levels_refine_the_reconstruction() -> None:
    x = clustered(800, 16, 20)
    model, _ = fit_quantizer(x, QuantizerConfig(levels=3, codebook_size=16))
    codes = model.encode(x)
    errors, approx = [], np.zeros_like(x)
    for level, codebook in enumerate(model.codebooks):
        approx = approx + codebook[codes[:, level]]
        errors.append(float(((x - approx) ** 2).sum(axis=1).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_fewer_items_than_codes_shrinks_the_codebook() -> None:
    x = clustered(5, 8, 5)
    model, _ = fit_quantizer(x, QuantizerConfig(levels=2, codebook_size=256))
    assert model.codebook_sizes[0] == 5
    # five items in five cells leave no residual: level 2 needs (and gets) a single code
    assert model.codebook_sizes[1] == 1
    assert len({tuple(c) for c in model.encode(x).tolist()}) == 5


def test_kmeans_stops_at_the_number_of_distinct_points() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    assert len(kmeans(x, 8)) == 3


def test_codebooks_round_trip_through_disk(tmp_path: Path) -> None:
    x = clustered(300, 8, 6)
    model, _ = fit_quantizer(
        x, QuantizerConfig(method="rqvae", levels=2, codebook_size=8, epochs=2, hidden_dim=16, latent_dim=4)
    )
    model.save(tmp_path / "t.codebooks.npz")
    loaded = ResidualQuantizer.load(tmp_path / "t.codebooks.npz")
    assert loaded.method == "rqvae" and loaded.codebook_sizes == (8, 8)
    assert np.array_equal(loaded.encode(x), model.encode(x))


def test_rqvae_keeps_level_one_codes_in_use() -> None:
    x = clustered(800, 32, 24, spread=0.3)
    cfg = QuantizerConfig(
        method="rqvae",
        levels=2,
        codebook_size=16,
        epochs=25,
        batch_size=128,
        hidden_dim=64,
        latent_dim=16,
        lr=3e-3,
    )
    model, codes = fit_quantizer(x, cfg)
    utilisation, _ = level_usage(codes, model.codebook_sizes)
    assert utilisation[0] > 0.5
    assert np.array_equal(fit_quantizer(x, cfg)[1], codes)
