"""Residual quantisers: residual k-means (faiss, NEO's choice) and RQ-VAE (torch), one per entity type.

Both produce the same fitted object, `ResidualQuantizer`: an optional encoder (RQ-VAE's MLP; identity for
k-means) and one codebook per level. Level l quantises what levels < l left over, so a code tuple is a
coarse-to-fine address and items sharing a prefix are near each other. The fitted codebooks are saved
beside the SID table so new items get codes later without refitting (which would move every old item).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from neo.io import atomic_open
from neo.sids.config import QuantizerConfig

log = logging.getLogger(__name__)


@dataclass
class ResidualQuantizer:
    """A fitted residual quantiser: `encoder` layers (W [in, out], b) with ReLU between, then codebooks."""

    method: str
    codebooks: list[np.ndarray]
    encoder: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.codebooks)

    @property
    def levels(self) -> int:
        return len(self.codebooks)

    @property
    def input_width(self) -> int:
        """Width of the item embeddings it codes (the encoder's input, else the codebooks' width)."""
        return self.encoder[0][0].shape[0] if self.encoder else self.codebooks[0].shape[1]

    def project(self, x: np.ndarray) -> np.ndarray:
        """Map item embeddings into the space the codebooks live in."""
        z = np.ascontiguousarray(x, dtype=np.float32)
        for layer, (weight, bias) in enumerate(self.encoder):
            z = z @ weight + bias
            if layer < len(self.encoder) - 1:
                z = np.maximum(z, 0.0)
        return np.ascontiguousarray(z, dtype=np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes [n, levels] of embeddings `x`: the nearest codeword of each level's residual."""
        residual = self.project(x)
        if residual is x:
            residual = residual.copy()
        codes = np.empty((len(residual), self.levels), dtype=np.int32)
        for level, codebook in enumerate(self.codebooks):
            codes[:, level] = nearest(codebook, residual)
            subtract_codewords(residual, codebook, codes[:, level])
        return codes

    def ranked_codes(self, z: np.ndarray, prefix: tuple[int, ...]) -> np.ndarray:
        """Codes of level `len(prefix)` ordered nearest-first for the projected vector `z` under `prefix`.

        The collision policy walks this order to move an item to the nearest free code.
        """
        residual = z - sum(
            (self.codebooks[level][code] for level, code in enumerate(prefix)), np.zeros_like(z)
        )
        distances = ((self.codebooks[len(prefix)] - residual) ** 2).sum(axis=1)
        return np.argsort(distances, kind="stable")

    def save(self, path: str | os.PathLike) -> None:
        arrays: dict[str, np.ndarray] = {"method": np.asarray(self.method)}
        arrays.update({f"codebook_{level}": c for level, c in enumerate(self.codebooks)})
        for layer, (weight, bias) in enumerate(self.encoder):
            arrays[f"encoder_w{layer}"], arrays[f"encoder_b{layer}"] = weight, bias
        with atomic_open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResidualQuantizer:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no fitted codebooks (build the SID tables first)")
        with np.load(path, allow_pickle=False) as data:
            codebooks = [
                data[f"codebook_{level}"] for level in range(sum(k.startswith("codebook_") for k in data))
            ]
            layers = sum(k.startswith("encoder_w") for k in data)
            encoder = [(data[f"encoder_w{i}"], data[f"encoder_b{i}"]) for i in range(layers)]
            return cls(str(data["method"]), codebooks, encoder)


SEEDING_POINTS_PER_CENTROID = 32
SMALL_WORK = 5e7
"""Below this many multiply-adds faiss runs on one thread: OpenMP start-up and spin-waiting then cost more
than they save, by orders of magnitude on a machine whose cores are busy with other jobs."""


@contextlib.contextmanager
def faiss_threads_for(work: float) -> Iterator[None]:
    if work >= SMALL_WORK:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def subtract_codewords(
    residual: np.ndarray, codebook: np.ndarray, assign: np.ndarray, block: int = 65_536
) -> None:
    """residual -= codebook[assign], in place and in blocks: no second [n, d] array at 1M items."""
    for start in range(0, len(residual), block):
        residual[start : start + block] -= codebook[assign[start : start + block]]


def nearest(codebook: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest codeword of each row (exact L2, faiss's blocked BLAS search)."""
    index = faiss.IndexFlatL2(codebook.shape[1])
    index.add(np.ascontiguousarray(codebook, dtype=np.float32))
    with faiss_threads_for(float(len(x)) * len(codebook) * codebook.shape[1]):
        _, assign = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return assign[:, 0].astype(np.int32)


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding; stops early when every point already sits on a centre (fewer distinct points than k)."""
    sq_norms = np.einsum("ij,ij->i", x, x)
    chosen = [int(rng.integers(len(x)))]
    best = np.maximum(sq_norms - 2 * x @ x[chosen[0]] + sq_norms[chosen[0]], 0.0)
    while len(chosen) < k:
        total = float(best.sum())
        if total <= 1e-12:
            break
        pick = int(rng.choice(len(x), p=best / total))
        chosen.append(pick)
        best = np.minimum(best, np.maximum(sq_norms - 2 * x @ x[pick] + sq_norms[pick], 0.0))
    return x[chosen].copy()


def kmeans(
    x: np.ndarray,
    k: int,
    niter: int = 20,
    seed: int = 0,
    init: str = "kmeans++",
    max_points_per_centroid: int = 256,
) -> np.ndarray:
    """Centroids of `x` (at most `k`, fewer when `x` has fewer points or distinct points), faiss Lloyd.

    Trains on a seeded sample of `k * max_points_per_centroid` points like faiss does by default; the
    sample and the seeding are ours so results depend only on `seed`. Uses a GPU when faiss has one.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    if len(x) > k * max_points_per_centroid:
        x = x[np.sort(rng.choice(len(x), k * max_points_per_centroid, replace=False))]
    if init == "kmeans++":
        # Seeding needs k passes over its input; a k * 32 subsample seeds as well and keeps 1M items fast.
        seeding = (
            x
            if len(x) <= k * SEEDING_POINTS_PER_CENTROID
            else x[np.sort(rng.choice(len(x), k * SEEDING_POINTS_PER_CENTROID, replace=False))]
        )
        start = kmeans_plus_plus(seeding, k, rng)
    else:
        start = x[rng.choice(len(x), k, replace=False)].copy()
    k = len(start)
    if k == 1 or niter == 0:
        return start
    gpu = faiss.get_num_gpus() > 0 if hasattr(faiss, "get_num_gpus") else False
    model = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        seed=seed,
        verbose=False,
        gpu=gpu,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=1,
    )
    with faiss_threads_for(float(len(x)) * k * x.shape[1] * niter):
        model.train(x, init_centroids=start)
    return np.ascontiguousarray(model.centroids, dtype=np.float32)


def fit_residual_kmeans(x: np.ndarray, cfg: QuantizerConfig) -> tuple[ResidualQuantizer, np.ndarray]:
    """Residual k-means: fit level l on what levels < l left unexplained.

    Returns the model and the codes of `x`: fitting assigns every item at every level anyway, so the
    codes come free instead of a second pass of `encode`.
    """
    residual = np.array(x, dtype=np.float32, copy=True)
    codebooks = []
    codes = np.empty((len(x), cfg.levels), dtype=np.int32)
    for level, size in enumerate(tqdm(cfg.sizes, desc="residual k-means", leave=False)):
        codebook = kmeans(residual, size, cfg.niter, cfg.seed + level, cfg.init, cfg.max_points_per_centroid)
        if len(codebook) < size:
            log.info(
                "level %d: %d codes instead of %d (fewer distinct residuals)", level, len(codebook), size
            )
        codes[:, level] = nearest(codebook, residual)
        subtract_codewords(residual, codebook, codes[:, level])
        codebooks.append(codebook)
    return ResidualQuantizer("rkmeans", codebooks), codes


def fit_rqvae(x: np.ndarray, cfg: QuantizerConfig) -> ResidualQuantizer:
    """RQ-VAE: MLP autoencoder with residual vector quantisation of the latent (TIGER's tokenizer).

    Codebooks start from residual k-means on the initial latents, and after every epoch any code no
    batch chose is reset to a random current residual of its level: the two standard cures for
    codebook collapse, where a few codes take every item.
    """
    import torch

    threads = torch.get_num_threads()
    if float(len(x)) * x.shape[1] * cfg.hidden_dim < SMALL_WORK:
        torch.set_num_threads(1)  # same reason as faiss_threads_for: small batches lose to thread overhead
    try:
        return _train_rqvae(x, cfg)
    finally:
        torch.set_num_threads(threads)


def _train_rqvae(x: np.ndarray, cfg: QuantizerConfig) -> ResidualQuantizer:
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    dim = data.shape[1]
    encoder = nn.Sequential(
        nn.Linear(dim, cfg.hidden_dim), nn.ReLU(), nn.Linear(cfg.hidden_dim, cfg.latent_dim)
    )
    decoder = nn.Sequential(
        nn.Linear(cfg.latent_dim, cfg.hidden_dim), nn.ReLU(), nn.Linear(cfg.hidden_dim, dim)
    )
    with torch.no_grad():
        init, _ = fit_residual_kmeans(encoder(data).numpy(), cfg)
    sizes = [min(size, len(data)) for size in cfg.sizes]
    codebooks = nn.ParameterList()
    for level, size in enumerate(sizes):
        start = torch.from_numpy(init.codebooks[level])
        if len(start) < size:  # fewer distinct latents than codes: pad with jittered copies, reset fixes them
            extra = start[torch.randint(len(start), (size - len(start),), generator=generator)]
            start = torch.cat([start, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
        codebooks.append(nn.Parameter(start.clone()))
    params = [*encoder.parameters(), *decoder.parameters(), *codebooks]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)

    def quantise(
        z: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        residual, quantised, commit = z, torch.zeros_like(z), z.new_zeros(())
        codes, residuals = [], []
        for codebook in codebooks:
            residuals.append(residual.detach())
            index = torch.cdist(residual, codebook).argmin(dim=1)
            chosen = codebook[index]
            commit = (
                commit
                + ((residual.detach() - chosen) ** 2).mean()
                + cfg.beta * ((residual - chosen.detach()) ** 2).mean()
            )
            quantised = quantised + chosen
            residual = residual - chosen.detach()
            codes.append(index)
        return quantised, commit, codes, residuals

    for _ in tqdm(range(cfg.epochs), desc="rq-vae", leave=False):
        usage = [torch.zeros(size, dtype=torch.long) for size in sizes]
        pool: list[list[torch.Tensor]] = [[] for _ in sizes]
        for batch_index in torch.randperm(len(data), generator=generator).split(cfg.batch_size):
            batch = data[batch_index]
            z = encoder(batch)
            quantised, commit, codes, residuals = quantise(z)
            straight_through = z + (quantised - z).detach()
            loss = ((decoder(straight_through) - batch) ** 2).mean() + commit
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for level, index in enumerate(codes):
                usage[level] += torch.bincount(index, minlength=sizes[level])
                pool[level].append(residuals[level])
        with torch.no_grad():
            for level, counts in enumerate(usage):
                dead = torch.nonzero(counts == 0).flatten()
                if len(dead):
                    candidates = torch.cat(pool[level])
                    picks = torch.randint(len(candidates), (len(dead),), generator=generator)
                    codebooks[level][dead] = candidates[picks]
    layers = [encoder[0], encoder[2]]
    return ResidualQuantizer(
        "rqvae",
        [c.detach().numpy().astype(np.float32) for c in codebooks],
        [(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()) for layer in layers],
    )


def fit_quantizer(x: np.ndarray, cfg: QuantizerConfig) -> tuple[ResidualQuantizer, np.ndarray]:
    """Fit the configured quantiser on item embeddings `x` [n, d]; returns it and the codes of `x`."""
    if len(x) == 0:
        raise ValueError("cannot fit a quantiser on zero items")
    if cfg.method == "rqvae":
        model = fit_rqvae(x, cfg)
        return model, model.encode(x)
    return fit_residual_kmeans(x, cfg)
