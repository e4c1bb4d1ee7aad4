"""Recipe: build the Semantic-ID tables of a dataset (one per entity type) into `<output_dir>/sids/`.

neo run build_sids data=<dataset dir> output_dir=<dir> [sid=fast|collaborative|byo] [sid.quantizer.levels=4]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from neo.data.catalog import Catalog
from neo.devices import tune_host_allocator
from neo.sids.build import build_sid_tables
from neo.sids.table import SIDTable

log = logging.getLogger(__name__)
# An absolute path: `neo run` imports this file as `neo.recipes.build_sids`, where "../conf" would mean
# the (non-existent) package `neo.conf`.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


class BuildSIDsRecipe:
    """Resolve the dataset, build every type's table, print the quality report."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.catalog: Catalog | None = None

    def setup(self) -> None:
        """The catalog; the demo world or a converted real dataset is made on first use."""
        from neo.data.resolve import load_catalog

        self.catalog = load_catalog(self.cfg.data)

    def run(self) -> tuple[dict[str, SIDTable], dict[str, Any]]:
        assert self.catalog is not None, "call setup() first"
        tables, report = build_sid_tables(self.catalog, self.cfg.sid, self.output_dir)
        for entity_type, numbers in report.items():
            coherence = numbers["prefix_coherence_l1"]
            log.info(
                "%-12s items=%-7d levels=%s collisions %.4f -> %.4f coherence_l1=%s random=%s (%.1fs)",
                entity_type,
                numbers["items"],
                numbers["codebook_sizes"],
                numbers["collision_rate_before"],
                numbers["collision_rate_after"],
                f"{coherence:.3f}" if coherence is not None else "n/a",
                f"{numbers['random_pair_similarity']:.3f}"
                if numbers["random_pair_similarity"] is not None
                else "n/a",
                numbers["seconds"],
            )
        log.info("SID tables written to %s", self.output_dir / "sids")
        return tables, report


@hydra.main(config_path=str(CONF_DIR), config_name="build_sids", version_base="1.3")
def main(cfg: DictConfig) -> None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    recipe = BuildSIDsRecipe(cfg)
    recipe.setup()
    recipe.run()


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
