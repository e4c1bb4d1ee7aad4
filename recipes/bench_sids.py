"""Benchmark: neo's residual k-means (3 x 256) against a straightforward torch k-means, on the same data.

    neo run bench_sids                          # 1,000,000 x 384 clustered float32, both methods
    neo run bench_sids items=100000 baseline=false

Each method runs in its own spawned process that regenerates the (seeded) data, so its peak memory
(VmHWM minus the resident size once the data exists) is its own. Timing covers fitting every level and
assigning every item its codes. Target on a 2-core CPU: neo <= 60 s for 1M x 384.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class BenchSIDsConfig:
    items: int = 1_000_000
    """Rows of the synthetic embedding matrix."""
    dim: int = 384
    clusters: int = 2000
    """Gaussian blobs the rows are drawn around ("random but clustered", like text embeddings)."""
    levels: int = 3
    codebook_size: int = 256
    niter: int = 20
    """Lloyd iterations per level, for both methods."""
    seed: int = 0
    baseline: bool = True
    """Also run the straightforward torch k-means (full data every iteration, random init)."""
    output: str | None = None
    """Optional JSON file for the results."""


ConfigStore.instance().store(name="bench_sids", node=BenchSIDsConfig)


def clustered_embeddings(items: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit-norm centres plus isotropic noise, generated in blocks to keep the peak at one copy."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((items, dim), dtype=np.float32)
    for start in range(0, items, 100_000):
        stop = min(start + 100_000, items)
        out[start:stop] = centres[rng.integers(clusters, size=stop - start)]
        out[start:stop] += 0.05 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    return out


def _memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_neo(x: np.ndarray, cfg: BenchSIDsConfig) -> np.ndarray:
    from neo.sids.config import QuantizerConfig
    from neo.sids.quantize import fit_residual_kmeans

    quantizer = QuantizerConfig(
        levels=cfg.levels, codebook_size=cfg.codebook_size, niter=cfg.niter, seed=cfg.seed
    )
    _, codes = fit_residual_kmeans(x, quantizer)  # fitting assigns every item at every level
    return codes


def run_torch_baseline(x: np.ndarray, cfg: BenchSIDsConfig) -> np.ndarray:
    """The k-means most projects write first: random init, full-data Lloyd steps with cdist, then assign."""
    import torch

    generator = torch.Generator().manual_seed(cfg.seed)
    residual = torch.from_numpy(x).clone()
    codes = torch.empty((len(x), cfg.levels), dtype=torch.int64)
    for level in range(cfg.levels):
        centroids = residual[torch.randperm(len(residual), generator=generator)[: cfg.codebook_size]].clone()
        for _ in range(cfg.niter + 1):  # the last pass is the final assignment
            assign = torch.cat(
                [torch.cdist(chunk, centroids).argmin(dim=1) for chunk in residual.split(65_536)]
            )
            sums = torch.zeros_like(centroids).index_add_(0, assign, residual)
            counts = torch.bincount(assign, minlength=cfg.codebook_size).clamp(min=1).unsqueeze(1)
            centroids = torch.where(counts > 0, sums / counts, centroids)
        codes[:, level] = assign
        residual -= centroids[assign]
    return codes.numpy()


def _measure(method: str, cfg: BenchSIDsConfig, results: mp.Queue) -> None:
    x = clustered_embeddings(cfg.items, cfg.dim, cfg.clusters, cfg.seed)
    resident = _memory_mb("VmRSS")
    start = time.perf_counter()
    codes = run_neo(x, cfg) if method == "neo" else run_torch_baseline(x, cfg)
    seconds = time.perf_counter() - start
    distinct = len(np.unique(codes, axis=0))
    results.put(
        {
            "method": method,
            "seconds": round(seconds, 2),
            "peak_mb_over_data": round(_memory_mb("VmHWM") - resident, 1),
            "data_mb": round(x.nbytes / 2**20, 1),
            "collision_rate": round(1 - distinct / len(codes), 4),
        }
    )


def measure(method: str, cfg: BenchSIDsConfig) -> dict:
    """Run one method in a fresh process (spawned, so no memory is shared with the parent)."""
    context = mp.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measure, args=(method, cfg, results))
    process.start()
    result = results.get()
    process.join()
    return result


class BenchSIDsRecipe:
    def __init__(self, cfg: BenchSIDsConfig):
        self.cfg = cfg

    def run(self) -> dict:
        """Measure each method (printing its row as soon as it is known: the baseline takes long), then the ratios."""
        cfg = self.cfg
        print(
            f"residual k-means {cfg.levels} x {cfg.codebook_size} on {cfg.items:,} x {cfg.dim} float32",
            flush=True,
        )
        print(f"{'method':<8}{'seconds':>10}{'peak MB over data':>20}{'collision rate':>16}", flush=True)
        rows = []
        for method in ("neo", "torch") if cfg.baseline else ("neo",):
            row = measure(method, cfg)
            rows.append(row)
            print(
                f"{row['method']:<8}{row['seconds']:>10.2f}{row['peak_mb_over_data']:>20.1f}"
                f"{row['collision_rate']:>16.4f}",
                flush=True,
            )
        report = {"config": asdict(cfg), "results": rows}
        if cfg.baseline:
            report["speedup"] = round(rows[1]["seconds"] / rows[0]["seconds"], 2)
            report["memory_ratio"] = round(
                rows[1]["peak_mb_over_data"] / max(rows[0]["peak_mb_over_data"], 1e-9), 2
            )
            print(f"torch / neo: {report['speedup']}x time, {report['memory_ratio']}x peak memory")
        if cfg.output:
            from neo.io import write_json

            write_json(cfg.output, report)
        return report


@hydra.main(config_path=None, config_name="bench_sids", version_base="1.3")
def main(cfg: BenchSIDsConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    BenchSIDsRecipe(OmegaConf.to_object(cfg)).run()


if __name__ == "__main__":
    from neo.devices import tune_host_allocator

    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
