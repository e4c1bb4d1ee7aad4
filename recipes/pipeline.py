"""Recipe: the whole path in one run directory: dataset -> SIDs -> align -> instruct -> evaluate -> report.

    neo run pipeline experiment=quickstart          # the demo world with the tiny model (make quickstart)
    neo run pipeline experiment=scientific          # Amazon Industrial & Scientific

Each phase writes its fixed subfolder of `output_dir` (see docs/architecture.md); with
`skip_done=true` a phase whose output exists is reused, so an interrupted pipeline continues.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from neo.eval.report import summary_table
from neo.recipes.evaluate import EvaluateRecipe
from neo.recipes.train import TrainRecipe
from omegaconf import DictConfig, OmegaConf, open_dict

from neo.data.resolve import load_catalog, resolve_dataset
from neo.data.validate import validate
from neo.devices import tune_host_allocator
from neo.sids.build import build_sid_tables
from neo.sids.table import SIDS_DIR

log = logging.getLogger(__name__)
STAGES = ("align", "instruct")


class PipelineRecipe:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.seconds: dict[str, float] = {}

    def _timed(self, phase: str, started: float) -> None:
        self.seconds[phase] = round(time.perf_counter() - started, 1)
        print(f"[neo] {phase}: {self.seconds[phase]:.0f}s", flush=True)

    def stage_config(self, stage: str) -> DictConfig:
        """The train recipe's config for one stage; a top-level `stage` block (e.g. from debug) overrides both."""
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=False))
        with open_dict(cfg):
            cfg.stage = OmegaConf.merge(self.cfg.stages[stage], self.cfg.get("stage") or {})
            del cfg.stages
        return cfg

    def run(self) -> dict:
        started = time.perf_counter()
        path = resolve_dataset(self.cfg.data)
        summary = validate(path)
        print(f"[neo] dataset {path}: {summary}", flush=True)
        self._timed("data", started)

        started = time.perf_counter()
        if self.cfg.skip_done and (self.output_dir / SIDS_DIR / "index.json").exists():
            print(f"[neo] reusing SIDs in {self.output_dir / SIDS_DIR}", flush=True)
        else:
            build_sid_tables(load_catalog(self.cfg.data), self.cfg.sid, self.output_dir)
        self._timed("sids", started)

        for stage in STAGES:
            started = time.perf_counter()
            if self.cfg.skip_done and (self.output_dir / stage / "neo.json").exists():
                print(f"[neo] reusing stage {stage} in {self.output_dir / stage}", flush=True)
            else:
                recipe = TrainRecipe(self.stage_config(stage))
                recipe.setup()
                try:
                    recipe.train()
                finally:
                    recipe.cleanup()
            self._timed(stage, started)

        started = time.perf_counter()
        evaluation = EvaluateRecipe(self.cfg)
        evaluation.setup()
        result = evaluation.run()
        self._timed("evaluate", started)
        self.print_summary(result)
        return result

    def print_summary(self, result: dict) -> None:
        metrics = result["metrics"]
        print("\n" + summary_table(metrics))
        print(f"\nvalidity: invalid items {metrics.get('validity/invalid_items')}, "
              f"SID tokens outside spans {metrics.get('validity/sid_outside_span')}")
        print("\nExamples:")
        for task, text in result["examples"].items():
            print(f"  {task}:\n    {text}")
        total = sum(self.seconds.values())
        print(f"\nphases (s): {self.seconds}, total {total:.0f}s")
        print(f"report: {result['report']}")


@hydra.main(config_path="pkg://neo.conf", config_name="pipeline", version_base="1.3")
def main(cfg: DictConfig) -> None:
    PipelineRecipe(cfg).run()


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
