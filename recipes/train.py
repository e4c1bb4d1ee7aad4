"""Recipe: train one stage of neo on a dataset (`align`, then `instruct`), on 1 CPU process or N GPUs.

    neo run train stage=align  [data=<dataset dir>] [model=tiny|smollm2_135m|hf model.name_or_path=...]
    neo run train stage=instruct [deepspeed=zero2] [stage.trainable=lora] [resume=true]
    torchrun --nproc_per_node 8 -m neo.recipes.train stage=instruct deepspeed=zero3

Writes `<output_dir>/<stage>/` (a Hugging Face checkpoint plus neo_vocab.json, sids/, neo.json and
metrics.jsonl). SID tables are built first when `<output_dir>/sids/` is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import hydra
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from neo.data import Catalog
from neo.data.splits import Split, make_split
from neo.decoding.lexical import INDEX_FILE, IndexFit, IndexSettings, fit_index
from neo.decoding.prior import PRIOR_FILE, CountSettings, ItemPrior
from neo.devices import tune_host_allocator
from neo.model import adapt_model, load_base_model
from neo.sids.table import SIDS_DIR, SIDTable, load_tables
from neo.tasks.search import configured_training_queries
from neo.training import (
    Engine,
    TrainSettings,
    load_stage_checkpoint,
    prepare_for_stage,
    require_stage,
    save_stage_checkpoint,
)
from neo.training.engine import init_distributed
from neo.vocab import SIDVocab

log = logging.getLogger(__name__)


class TrainRecipe:
    """One stage: data -> SIDs -> model + vocabulary -> training rows -> DeepSpeed engine -> checkpoint."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.stage = str(cfg.stage.name)
        self.output_dir = Path(cfg.output_dir)
        self.stage_dir = self.output_dir / self.stage
        self.rank = 0
        self.catalog: Catalog
        self.tables: dict[str, SIDTable]
        self.model: PreTrainedModel
        self.tokenizer: PreTrainedTokenizerBase
        self.vocab: SIDVocab
        self.rows: datasets.Dataset
        self.split: Split
        self.engine: Engine
        self.log_fn: Callable[[dict[str, Any]], None] | None = None
        self._wandb_run: Any = None

    def setup(self) -> None:
        # The process group comes first: every later step lets rank 0 write shared files while others wait.
        self._setup_distributed()
        # The dataset must exist (generated / converted on first use) before anything reads it.
        self.catalog = self._setup_data()
        # SIDs fix the vocabulary layout, so they precede the model.
        self.tables = self._setup_sids()
        # The model brings the tokenizer, which the training rows are tokenised with.
        self.model, self.tokenizer, self.vocab = self._setup_model()
        self.rows = self._setup_rows()
        # Which parameters train must be decided before the optimizer sees them (inside the engine).
        self.model = prepare_for_stage(self.model, self.vocab, self.cfg.stage)
        self.log_fn = self._setup_logger()
        self.engine = self._setup_engine()

    def _setup_distributed(self) -> None:
        init_distributed()
        self.rank = dist.get_rank()

    def _setup_data(self) -> Catalog:
        from neo.data.resolve import load_catalog, resolve_dataset

        if self.rank == 0:  # creates the dataset on first use; the other ranks then find it
            resolve_dataset(self.cfg.data)
        dist.barrier()
        return load_catalog(self.cfg.data)

    def _setup_sids(self) -> dict[str, SIDTable]:
        sids_dir = self.output_dir / SIDS_DIR
        if self.rank == 0 and not (sids_dir / "index.json").exists():
            from neo.sids.build import build_sid_tables

            log.info("no SID tables in %s: building them first", sids_dir)
            build_sid_tables(self.catalog, self.cfg.sid, self.output_dir)
        dist.barrier()
        return load_tables(sids_dir)

    def _setup_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, SIDVocab]:
        init_from = self.cfg.stage.init_from
        if init_from == "base":
            model, tokenizer = load_base_model(self.cfg.model, self.catalog)
            vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in self.tables.items()})
            adapt_model(
                model,
                tokenizer,
                vocab,
                self.catalog,
                self.tables,
                noise_std=float(self.cfg.model.init_noise),
                seed=int(self.cfg.seed),
            )
            return model, tokenizer, vocab
        source = require_stage(self.output_dir / init_from, init_from, self.stage)
        model, tokenizer, vocab = load_stage_checkpoint(source)
        if {t: list(b.codebook_sizes) for t, b in vocab.blocks.items()} != {
            t: list(table.codebook_sizes) for t, table in self.tables.items()
        }:
            raise ValueError(
                f"{source}: its SID vocabulary does not match {self.output_dir / SIDS_DIR}; "
                f"were the SIDs rebuilt after stage {init_from!r}? Retrain it"
            )
        return model, tokenizer, vocab

    def _setup_rows(self) -> datasets.Dataset:
        from neo.tasks import build_training_dataset, context
        from neo.tasks.prompts import ChatFormat

        self.split = make_split(self.catalog)
        ctx = context(
            self.catalog,
            self.split,
            self.tables,
            self.vocab,
            self.cfg.tasks,
            ChatFormat.from_tokenizer(self.tokenizer),
        )
        # Rank 0 builds the cached rows; the others then find them under the same key.
        rows = (
            build_training_dataset(ctx, self.cfg.tasks, self.stage, self.tokenizer, int(self.cfg.seed))
            if self.rank == 0
            else None
        )
        dist.barrier()
        if rows is None:
            rows = build_training_dataset(ctx, self.cfg.tasks, self.stage, self.tokenizer, int(self.cfg.seed))
        return rows

    def _setup_logger(self) -> Callable[[dict[str, Any]], None] | None:
        if self.cfg.logger.name != "wandb" or self.rank != 0:
            return None
        import wandb

        self._wandb_run = wandb.init(
            project=self.cfg.logger.project,
            entity=self.cfg.logger.entity,
            mode=self.cfg.logger.mode,
            tags=list(self.cfg.logger.tags),
            name=f"{self.cfg.data.name}-{self.stage}",
            dir=str(self.output_dir),
            config=OmegaConf.to_container(self.cfg, resolve=True),
        )
        return lambda record: self._wandb_run.log(record, step=record["step"])

    def _setup_engine(self) -> Engine:
        settings = TrainSettings.from_config(
            {**OmegaConf.to_container(self.cfg.stage, resolve=True), "seed": int(self.cfg.seed)}
        )
        pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        return Engine(
            self.model,
            self.rows,
            self.stage_dir,
            settings,
            self.cfg.deepspeed.zero_optimization,
            pad_id,
            log_fn=self.log_fn,
            progress=bool(self.cfg.progress),
        )

    def train(self) -> list[dict[str, Any]]:
        metrics = self.engine.train(resume=bool(self.cfg.resume))
        model = self.engine.export_model()
        if self.rank == 0:
            meta = {
                "dataset": self.catalog.name,
                "stage": self.stage,
                "base_model": OmegaConf.to_container(self.cfg.model, resolve=True),
                "steps": self.engine.total_steps,
                "final_loss": metrics[-1]["loss"] if metrics else None,
                "config": OmegaConf.to_container(self.cfg, resolve=True),
            }
            # the transition counts recommendations are fused with (neo.decoding.prior), before the
            # checkpoint's neo.json marks it finished
            self.stage_dir.mkdir(parents=True, exist_ok=True)
            counting = CountSettings.from_config(OmegaConf.to_container(self.cfg.transitions, resolve=True))
            ItemPrior.from_split(self.catalog, self.split, list(self.tables), counting).save(self.stage_dir / PRIOR_FILE)
            self._fit_search_index().save(self.stage_dir / INDEX_FILE)
            save_stage_checkpoint(
                self.stage_dir, model, self.tokenizer, self.vocab, self.output_dir / SIDS_DIR, meta
            )
            log.info(
                "stage %s: %d steps, final loss %s -> %s",
                self.stage,
                self.engine.total_steps,
                meta["final_loss"],
                self.stage_dir,
            )
        dist.barrier()
        return metrics

    def _fit_search_index(self) -> IndexFit:
        """The title weight the checkpoint's search index counts, fit on this run's training queries."""
        tasks = OmegaConf.to_container(self.cfg.tasks, resolve=True)
        queries = configured_training_queries(self.catalog, (tasks.get("tasks") or {}).get("search"))
        settings = IndexSettings.from_config(OmegaConf.to_container(self.cfg.search_index, resolve=True))
        return fit_index(self.catalog, list(self.tables), queries, settings)

    def cleanup(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()


@hydra.main(config_path="pkg://neo.conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    recipe = TrainRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
    finally:
        recipe.cleanup()


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
