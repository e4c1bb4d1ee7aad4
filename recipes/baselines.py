"""Recipe: the side-by-side baselines of a dataset, written to `<output_dir>/baselines.json`.

    neo run baselines data=scientific                      # popularity, co-occurrence, SASRec, BM25, dense
    neo run baselines data=beauty rec=[sasrec] threads=1 +sasrec.dropout=0.5

The model's `evaluate` recipe runs the same functions on its sampled users; this one scores every
user, which is what docs/benchmarks.md reports.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from neo.eval.run_baselines import (
    queries_from_catalog,
    run_rec_baselines,
    run_search_baselines,
    sasrec_config_from,
)
from omegaconf import DictConfig, OmegaConf

from neo.data.catalog import Catalog
from neo.data.splits import Split, make_split
from neo.devices import tune_host_allocator
from neo.io import write_json

log = logging.getLogger(__name__)
RESULT_FILE = "baselines.json"


class BaselinesRecipe:
    """Resolve the dataset, split it, run each baseline family, write one JSON."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.catalog: Catalog | None = None
        self.split: Split | None = None

    def setup(self) -> None:
        # Threads first: torch reads the setting when its thread pool starts, on the first op.
        if self.cfg.threads:
            torch.set_num_threads(int(self.cfg.threads))
        from neo.data.resolve import load_catalog

        self.catalog = load_catalog(self.cfg.data, progress=self.cfg.progress)
        self.split = make_split(self.catalog)
        if self.cfg.part not in ("valid", "test"):
            raise ValueError(f"part must be 'valid' or 'test', got {self.cfg.part!r}")

    def run(self) -> dict[str, Any]:
        assert self.catalog is not None and self.split is not None, "call setup() first"
        started = time.perf_counter()
        types = list(self.cfg.entity_types or self.catalog.type_names)
        unknown = sorted(set(types) - set(self.catalog.type_names))
        if unknown:
            raise ValueError(
                f"entity_types {unknown} are not in dataset {self.catalog.name!r} "
                f"(types: {self.catalog.type_names})"
            )
        ks = [int(k) for k in self.cfg.ks]
        metrics = run_rec_baselines(
            self.catalog,
            self.split,
            types,
            self.cfg.part,
            list(self.cfg.rec),
            ks,
            sasrec_config_from(self.cfg.sasrec),
            self.cfg.exclude_history,
            self.cfg.progress,
        )
        queries = [q for q in queries_from_catalog(self.catalog, "test") if q.entity_type in types]
        if queries and self.cfg.search:
            metrics.update(run_search_baselines(self.catalog, queries, ks, list(self.cfg.search)))
        result = {
            "dataset": self.catalog.name,
            "part": self.cfg.part,
            "protocol": self.split.protocol,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "metrics": metrics,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_json(self.output_dir / RESULT_FILE, result)
        log.info("baselines of %s written to %s", self.catalog.name, self.output_dir / RESULT_FILE)
        return result


@hydra.main(config_path="pkg://neo.conf", config_name="baselines", version_base="1.3")
def main(cfg: DictConfig) -> None:
    recipe = BaselinesRecipe(cfg)
    recipe.setup()
    for key, value in recipe.run()["metrics"].items():
        if key.endswith(("recall@10", "ndcg@10")):
            print(f"{key}\t{value:.4f}")


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
