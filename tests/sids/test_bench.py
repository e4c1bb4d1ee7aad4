"""The benchmark's two k-means implementations agree on what they produce (shape, range, quality)."""

from __future__ import annotations

import numpy as np
from neo.recipes.bench_sids import BenchSIDsConfig, clustered_embeddings, run_neo, run_torch_baseline


def test_both_methods_quantise_the_same_data_comparably() -> None:
    cfg = BenchSIDsConfig(items=3000, dim=16, clusters=40, levels=2, codebook_size=32, niter=8)
    x = clustered_embeddings(cfg.items, cfg.dim, cfg.clusters, cfg.seed)
    assert x.shape == (3000, 16) and x.dtype == np.float32
    for codes in (run_neo(x, cfg), run_torch_baseline(x, cfg)):
        assert codes.shape == (3000, 2) and codes.min() >= 0 and codes.max() < 32
        assert len(np.unique(codes[:, 0])) >= 30  # 40 blobs fill (nearly) all 32 level-1 codes
