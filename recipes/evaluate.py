"""Recipe: evaluate a checkpoint on a dataset's test split, side by side with the baselines.

    neo run evaluate [data=<dataset dir>] [checkpoint=<dir>] [output_dir=<run dir>]

Reads `<output_dir>/instruct` unless `checkpoint` says otherwise, and writes
`<output_dir>/eval/metrics.json` (flat keys: `rec/<type>/ndcg@10`, `search/<type>/recall@10`,
`baseline/<name>/...`, `validity/...`, `steer/...`, `understand/...`, `latency/...`) and
`<output_dir>/eval/report.md` with its plots, and every user's rank and query's ranked list per system
(`per_example.json`: two runs compare pairwise with `python -m neo.eval.compare`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from neo.eval.baselines.base import SearchQuery
from neo.eval.compare import per_example_record, save_per_example
from neo.eval.metrics import flat_keys, paired_rec, paired_search, rank_metrics, set_metrics
from neo.eval.model_eval import EvalSettings, ModelEvaluator
from neo.eval.report import write_report
from neo.eval.run_baselines import run_rec_baselines, run_search_baselines, sasrec_config_from
from omegaconf import DictConfig, OmegaConf

from neo.data.resolve import load_catalog, split_overrides
from neo.data.splits import Split, make_split
from neo.decoding.lexical import INDEX_FILE, IndexFit, IndexSettings, LexicalPrior, fit_index
from neo.decoding.prior import PRIOR_FILE, CountSettings, ItemPrior
from neo.decoding.trie import ItemTrie
from neo.devices import resolve_device, tune_host_allocator
from neo.io import write_json
from neo.sids.table import SIDS_DIR, load_tables
from neo.tasks import context
from neo.tasks.prompts import ChatFormat
from neo.tasks.search import configured_training_queries
from neo.tasks.search import queries as search_queries
from neo.training import load_stage_checkpoint

log = logging.getLogger(__name__)


def published_metrics(published: Any) -> dict[str, float]:
    """`eval.published` ({system: {metric key: value}}) as flat `published/<system>/<key>` metrics."""
    if not published:
        return {}
    out = {}
    for system, figures in published.items():
        if "/" in str(system):
            raise ValueError(f"eval.published: system name {system!r} must not contain '/'")
        for key, value in figures.items():
            if not isinstance(value, (int, float)):
                raise ValueError(f"eval.published.{system}.{key}: expected a number, got {value!r}")
            out[f"published/{system}/{key}"] = float(value)
    return out


def _of_ranks(ranks: dict[str, int], ks: tuple[int, ...]) -> dict[str, float]:
    return {**rank_metrics(list(ranks.values()), ks), "n": len(ranks)}


def _of_lists(ranked: list[list[str]], queries: list, ks: tuple[int, ...]) -> dict[str, float]:
    return {**set_metrics(ranked, [q.items for q in queries], ks), "n": len(queries)}


class EvaluateRecipe:
    """checkpoint + dataset -> metrics.json + report.md."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        self.eval_dir = self.output_dir / "eval"
        self.checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else self.output_dir / "instruct"
        self.settings = EvalSettings.from_config(OmegaConf.to_container(cfg.eval.settings, resolve=True))

    def setup(self) -> None:
        # The checkpoint first: a missing one is the most common mistake and should fail before any work.
        if not (self.checkpoint / "neo.json").exists():
            raise FileNotFoundError(f"{self.checkpoint}: no neo checkpoint here (train with `neo run train "
                                    f"stage=instruct` or pass checkpoint=<dir>)")
        meta = json.loads((self.checkpoint / "neo.json").read_text())
        trained_split = split_overrides(meta.get("config", {}).get("data") or {})
        asked_split = split_overrides(self.cfg.data)
        if trained_split != asked_split:
            # A tuning checkpoint (hold_back) scored on the real split, or the reverse, measures neither.
            raise ValueError(f"{self.checkpoint} was trained with data.split {trained_split or '{}'}, but this run "
                             f"evaluates data.split {asked_split or '{}'}: pass the same data.split overrides")
        self.catalog = load_catalog(self.cfg.data)
        self.split = make_split(self.catalog)
        device = resolve_device(self.cfg.device)
        model, tokenizer, vocab = load_stage_checkpoint(self.checkpoint)
        self.model = model.to(device).eval()
        self.tables = load_tables(self.checkpoint / SIDS_DIR)
        # Prompts must be rendered with the task settings the model was trained with.
        tasks_cfg = meta.get("config", {}).get("tasks") or OmegaConf.to_container(self.cfg.tasks, resolve=True)
        self.ctx = context(self.catalog, self.split, self.tables, vocab, tasks_cfg, ChatFormat.from_tokenizer(tokenizer))
        self.evaluator = ModelEvaluator(self.model, tokenizer, self.ctx, ItemTrie.build(vocab, self.tables, device),
                                        self.settings, self._prior(meta.get("config", {})),
                                        self._lexical(meta.get("config", {})))
        self.train_metrics = {stage: self.output_dir / stage / "metrics.jsonl" for stage in ("align", "instruct")}

    def _prior(self, trained_with: dict[str, Any]) -> ItemPrior | None:
        """The checkpoint's transition counts; checkpoints from before they were saved count them here, as
        the training config (`trained_with`, from neo.json) says."""
        if not self.settings.prior.active:
            return None
        path = self.checkpoint / PRIOR_FILE
        if path.exists():
            return ItemPrior.load(path)
        log.info("%s has no %s: counting transitions over the split's training part", self.checkpoint, PRIOR_FILE)
        counting = CountSettings.from_config(trained_with.get("transitions"))
        return ItemPrior.from_split(self.catalog, self.split, list(self.tables), counting)

    def _lexical(self, trained_with: dict[str, Any]) -> LexicalPrior | None:
        """BM25 over the catalog's item text with the checkpoint's title weight, as `Neo.from_pretrained`
        builds it for serving; checkpoints from before the weight was saved fit it here, on the training
        queries of the config they were trained with (`trained_with`, from neo.json)."""
        if self.settings.lexical.weight == 0:
            return None
        path = self.checkpoint / INDEX_FILE
        if path.exists():
            fit = IndexFit.load(path)
        else:
            log.info("%s has no %s: fitting the title weight on the training queries", self.checkpoint, INDEX_FILE)
            search_cfg = ((trained_with.get("tasks") or {}).get("tasks") or {}).get("search")
            fit = fit_index(self.catalog, list(self.tables), configured_training_queries(self.catalog, search_cfg),
                            IndexSettings.from_config(trained_with.get("search_index")))
        return LexicalPrior.from_catalog(self.catalog, list(self.tables), title_weight=fit.title_weight)

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        types = [t for t in self.catalog.type_names if t in self.tables]
        users = self.evaluator.sample(list(self.split.test), self.settings.max_users)
        evaluated = Split(self.split.protocol, self.split.train, self.split.valid,
                          {u: self.split.test[u] for u in users})
        metrics: dict[str, Any] = {}
        ks = self.settings.ks
        rec_ranks: dict[str, dict[str, int]] = {}  # "neo/<type>" and "<baseline>/<type>" -> {user: rank}
        alone_ranks: dict[str, dict[str, int]] = {}  # "model_alone/<type>" -> {user: rank}
        for entity_type in types:
            wanted = self.evaluator.rec_users(evaluated, entity_type)
            if wanted:
                ranks = rec_ranks[f"neo/{entity_type}"] = self.evaluator.rec_ranks(evaluated, entity_type, wanted)
                metrics.update(flat_keys(f"rec/{entity_type}", _of_ranks(ranks, ks)))
                if self.evaluator.fuses:  # what the transition prior adds, in every report
                    alone = alone_ranks[f"model_alone/{entity_type}"] = self.evaluator.rec_ranks(
                        evaluated, entity_type, wanted, fused=False)
                    metrics.update(flat_keys(f"model_alone/rec/{entity_type}", _of_ranks(alone, ks)))
        rec_baselines = list(self.cfg.eval.rec_baselines)
        if rec_baselines:
            metrics.update(run_rec_baselines(self.catalog, evaluated, types, "test", rec_baselines, ks,
                                             sasrec_config_from(self.cfg.eval.get("sasrec")), progress=False,
                                             ranks=rec_ranks))
        metrics.update(paired_rec(rec_ranks, ks))
        queries = self._queries(types)
        ranked_lists: dict[str, list[list[str]]] = {}  # "neo/<type>" and "<baseline>/<type>" -> top items
        alone_lists: dict[str, list[list[str]]] = {}  # "model_alone/<type>" -> top items
        for entity_type, typed in queries.items():
            ranked = ranked_lists[f"neo/{entity_type}"] = self.evaluator.search_ranked(entity_type, typed)
            metrics.update(flat_keys(f"search/{entity_type}", _of_lists(ranked, typed, ks)))
            if self.evaluator.fuses_search:  # what the lexical prior adds, in every report
                alone = alone_lists[f"model_alone/{entity_type}"] = self.evaluator.search_ranked(
                    entity_type, typed, fused=False)
                metrics.update(flat_keys(f"model_alone/search/{entity_type}", _of_lists(alone, typed, ks)))
        search_baselines = list(self.cfg.eval.search_baselines)
        title_weight = self.evaluator.lexical.title_weight if self.evaluator.fuses_search else 1
        if queries and self.evaluator.fuses_search:  # the report says how neo's index differs from BM25's
            metrics["search_index/title_weight"] = title_weight
            if title_weight > 1 and "bm25" in search_baselines and "bm25f" not in search_baselines:
                search_baselines.append("bm25f")  # BM25 with the same title weight: the index's share of the gain
        if queries and search_baselines:
            flat = [SearchQuery(q.text, q.type, tuple(q.items)) for typed in queries.values() for q in typed]
            metrics.update(run_search_baselines(self.catalog, flat, ks, search_baselines, title_weight,
                                                ranked_lists=ranked_lists))
        metrics.update(paired_search(ranked_lists, {t: [q.items for q in typed] for t, typed in queries.items()}, ks))
        metrics.update(flat_keys("steer", self.evaluator.steering(evaluated, types)))
        metrics.update(flat_keys("understand", self.evaluator.profiles(evaluated)))
        metrics.update(flat_keys("latency", self.evaluator.latency(evaluated, types[0])))
        examples = self.evaluator.examples(evaluated, types)
        metrics.update(self.evaluator.validity())
        metrics.update(published_metrics(self.cfg.eval.get("published")))
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        write_json(self.eval_dir / "metrics.json", metrics)
        save_per_example(self.eval_dir, per_example_record(
            {**rec_ranks, **alone_ranks}, {t: [(q.text, q.items) for q in typed] for t, typed in queries.items()},
            {**ranked_lists, **alone_lists}))
        report = write_report(self.eval_dir, self.catalog.name, metrics, examples, self.train_metrics,
                              self.output_dir / SIDS_DIR / "report.json")
        log.info("metrics: %s; report: %s", self.eval_dir / "metrics.json", report)
        return {"metrics": metrics, "examples": examples, "report": report}

    def _queries(self, types: list[str]) -> dict[str, list]:
        by_type: dict[str, list] = {}
        for query in search_queries(self.catalog, "test"):
            if query.type in types and all(i in self.ctx.span for i in query.items):
                by_type.setdefault(query.type, []).append(query)
        limit = self.settings.max_queries
        sampled = {t: self.evaluator.sample_rows(q, limit) for t, q in by_type.items()}
        return {t: q for t, q in sampled.items() if q}  # max_queries: 0 turns search evaluation off


@hydra.main(config_path="pkg://neo.conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    recipe = EvaluateRecipe(cfg)
    recipe.setup()
    out = recipe.run()
    print(json.dumps({k: v for k, v in out["metrics"].items() if "/n" not in k}, indent=1))


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
