"""The evaluate recipe end to end on a random checkpoint: the real config, a handful of users, every task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from neo.eval.compare import compare, load_per_example

from neo.data import Catalog

SMALL_EVAL = [
    "eval.settings.max_users=6",
    "eval.settings.max_queries=3",
    "eval.settings.beam_width=4",
    "eval.settings.batch_size=4",
    "eval.settings.steer_requests=1",
    "eval.settings.profile_users=2",
    "eval.settings.max_new_tokens=24",
    "eval.settings.latency_beams=[2]",
    "eval.rec_baselines=[popularity]",
    "eval.search_baselines=[]",
]


@pytest.mark.parametrize("rec_prompt", ["recommend", "sequence"])
def test_evaluate_writes_every_metric_family(demo_dir: Path, random_checkpoint: Path, tmp_path: Path,
                                             rec_prompt: str):
    from neo.recipes.evaluate import EvaluateRecipe

    overrides = [f"data.path={demo_dir}", "data.name=demo", f"checkpoint={random_checkpoint}",
                 f"output_dir={tmp_path}", "device=cpu", f"eval.settings.rec_prompt={rec_prompt}",
                 # enough users for a paired interval (neo.eval.metrics.MIN_PAIRED)
                 *[o if not o.startswith("eval.settings.max_users=") else "eval.settings.max_users=40"
                   for o in SMALL_EVAL]]
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    recipe = EvaluateRecipe(cfg)
    recipe.setup()
    recipe.run()

    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    types = [t for t in Catalog.load(demo_dir).type_names if t in recipe.tables]
    for entity_type in types:
        if f"rec/{entity_type}/n" in metrics:
            assert 0.0 <= metrics[f"rec/{entity_type}/recall@10"] <= 1.0
            assert f"baseline/popularity/rec/{entity_type}/recall@10" in metrics
            # neo against the baseline on the same users, with a paired interval around the ratio
            ratio = f"vs/popularity/rec/{entity_type}/recall@10"
            baseline_recall = metrics[f"baseline/popularity/rec/{entity_type}/recall@10"]
            if baseline_recall > 0 and metrics[f"rec/{entity_type}/n"] >= 30:
                assert metrics[ratio] == pytest.approx(metrics[f"rec/{entity_type}/recall@10"] / baseline_recall)
                assert metrics[f"{ratio}/low"] <= metrics[f"{ratio}/high"]
            else:  # no ratio to a baseline that scores 0, no interval over a handful of users
                assert ratio not in metrics
    assert any(key.startswith("rec/") for key in metrics)
    assert any(key.startswith("vs/popularity/rec/") and key.endswith("/low") for key in metrics)
    # every user's rank is kept: the same comparison, re-derived from the file, gives the same figures
    record = load_per_example(tmp_path / "eval")
    for row in compare(record, record, "neo", "popularity"):
        key = f"vs/popularity/{row.task}/{row.entity_type}/{row.metric}"
        assert row.ours == pytest.approx(metrics[f"{row.task}/{row.entity_type}/{row.metric}"])
        if key in metrics:
            assert (row.ratio, row.low, row.high) == (metrics[key], metrics[f"{key}/low"], metrics[f"{key}/high"])
        else:  # fewer than MIN_PAIRED users, or a baseline that scores 0
            assert row.low is None
    assert {key.split("/")[0] for key in record["rec"]} == {"neo", "model_alone", "popularity"}
    assert {key.split("/")[0] for key in record["search"]} == {"neo", "model_alone"}
    # the checkpoint carries a transition prior: the report also shows the model alone
    assert any(key.startswith("model_alone/rec/") for key in metrics)
    assert any(key.startswith("search/") for key in metrics)
    # searches fuse BM25 over the catalog's item text: the report also shows the model alone there
    assert any(key.startswith("model_alone/search/") for key in metrics)
    # a checkpoint without search_index.json gets its title weight fit on the training queries here
    assert metrics["search_index/title_weight"] in (1, 2, 3, 5, 8, 13)
    assert metrics["validity/invalid_items"] == 0
    assert metrics["validity/sid_outside_span"] == 0
    assert {"steer/type_compliance", "steer/format_compliance"} <= set(metrics)
    assert (tmp_path / "eval" / "report.md").exists()


def test_unknown_rec_prompt_is_refused():
    from neo.eval.model_eval import EvalSettings

    with pytest.raises(ValueError, match="rec_prompt must be one of"):
        EvalSettings.from_config({"rec_prompt": "chat"})


def test_sequence_prompt_follows_the_api_rule(demo_dir: Path, random_checkpoint: Path, tmp_path: Path):
    """Evaluation asks exactly what `Neo.recommend` asks: a continuation only when the history holds the type."""
    from neo.recipes.evaluate import EvaluateRecipe

    from neo.api import HistoryEntry, Neo, RecommendRequest
    from neo.tasks.prompts import rec_sequence_continuation

    overrides = [f"data.path={demo_dir}", "data.name=demo", f"checkpoint={random_checkpoint}",
                 f"output_dir={tmp_path}", "device=cpu", "eval.settings.rec_prompt=sequence", *SMALL_EVAL]
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    recipe = EvaluateRecipe(cfg)
    recipe.setup()
    neo = Neo.from_pretrained(random_checkpoint, catalog=demo_dir, rec_prompt="sequence")
    histories = {u: [x for x in recipe.split.history("test", u) if x.item in recipe.ctx.span] for u in recipe.split.test}
    history = next(h for h in histories.values() if {recipe.ctx.type_of[x.item] for x in h} == {"episode"})
    entries = [HistoryEntry(x.item, x.timestamp, x.context) for x in history]
    continuation = rec_sequence_continuation(recipe.evaluator.history(history), chat=recipe.ctx.chat,
                                             style=recipe.ctx.style)
    for target, continued in (("episode", True), ("audiobook", False), ("show", False)):
        ours = recipe.evaluator.rec_prompt(history, target, 10)
        assert ours == neo._prompt(RecommendRequest(entries, target, 10))
        assert (ours == continuation) == continued


def test_a_checkpoint_without_its_prior_counts_one_and_a_title_weight_brings_bm25f(
        demo_dir: Path, random_checkpoint: Path, tmp_path: Path):
    """Older checkpoints lack item_prior.json: evaluate counts it from the split, as the checkpoint's training
    config says. A fitted title weight above 1 adds BM25 with the same weight next to plain BM25."""
    import shutil

    from neo.recipes.evaluate import EvaluateRecipe

    from neo.decoding.lexical import INDEX_FILE, IndexFit
    from neo.decoding.prior import PRIOR_FILE

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(random_checkpoint, checkpoint)
    (checkpoint / PRIOR_FILE).unlink()
    IndexFit(3, {1: 0.5, 3: 0.6}, 10).save(checkpoint / INDEX_FILE)
    overrides = [f"data.path={demo_dir}", "data.name=demo", f"checkpoint={checkpoint}", f"output_dir={tmp_path}",
                 "device=cpu", *SMALL_EVAL[:-1], "eval.search_baselines=[bm25]"]
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    recipe = EvaluateRecipe(cfg)
    recipe.setup()
    assert recipe.evaluator.prior is not None and recipe.evaluator.prior.types  # counted, not missing
    metrics = recipe.run()["metrics"]
    assert any(key.startswith("model_alone/rec/") for key in metrics)
    assert metrics["search_index/title_weight"] == 3
    searched = {key.split("/")[1] for key in metrics if key.startswith("search/")}
    assert searched
    for entity_type in searched:
        assert f"baseline/bm25/search/{entity_type}/recall@10" in metrics
        assert f"baseline/bm25f/search/{entity_type}/recall@10" in metrics


def test_a_split_other_than_the_checkpoints_is_refused(demo_dir: Path, random_checkpoint: Path, tmp_path: Path):
    """A tuning checkpoint (data.split.hold_back) scored on the real split, or the reverse, measures neither."""
    from neo.recipes.evaluate import EvaluateRecipe

    overrides = [f"data.path={demo_dir}", "data.name=demo", f"checkpoint={random_checkpoint}",
                 f"output_dir={tmp_path}", "device=cpu", "data.split.hold_back=1", *SMALL_EVAL]
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    with pytest.raises(ValueError, match=r"trained with data.split \{\}, but this run evaluates data.split "
                                         r"\{'hold_back': 1\}"):
        EvaluateRecipe(cfg).setup()
