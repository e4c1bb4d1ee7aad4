"""The train recipe composed from the real configs: every shipped group composes, and align -> instruct
runs a few CPU steps on the mini world, writing checkpoints that `from_pretrained` loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from neo.decoding.lexical import INDEX_FILE, IndexFit
from neo.decoding.prior import PRIOR_FILE, CountSettings, ItemPrior

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_train(overrides: list[str]):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize(
    ("model", "stage", "zero"),
    [
        ("tiny", "align", "zero0"),
        ("smollm2_135m", "instruct", "zero1"),
        ("hf", "align", "zero2"),
        ("tiny", "instruct", "zero3"),
    ],
)
def test_every_shipped_config_composes(model, stage, zero):
    cfg = compose_train([f"model={model}", f"stage={stage}", f"deepspeed={zero}", "debug=fast"])
    assert cfg.stage.name == stage and cfg.deepspeed.zero_optimization.stage == int(zero[-1])
    assert cfg.stage.lr == cfg.model.lr[stage] > 0
    assert cfg.stage.max_steps == 4


def test_align_then_instruct_on_cpu(mini_world, tmp_path):
    from neo.recipes.train import TrainRecipe

    catalog_dir, sids_dir = mini_world
    output_dir = tmp_path / "run"
    shutil.copytree(sids_dir, output_dir / "sids")
    common = [
        "data=dir",
        f"data.path={catalog_dir}",
        "data.name=mini",
        f"output_dir={output_dir}",
        "debug=fast",
        "model.tokenizer_vocab_size=400",
        "tasks.num_proc=1",
        "tasks.max_length=256",
    ]
    for stage in ("align", "instruct"):
        recipe = TrainRecipe(compose_train([*common, f"stage={stage}"]))
        recipe.setup()
        metrics = recipe.train()
        recipe.cleanup()
        assert [m["step"] for m in metrics] == [1, 2, 3, 4]
        meta = json.loads((output_dir / stage / "neo.json").read_text())
        assert meta["stage"] == stage and meta["dataset"] == "mini" and meta["steps"] == 4
        AutoModelForCausalLM.from_pretrained(output_dir / stage)
        assert ItemPrior.load(output_dir / stage / PRIOR_FILE).types  # the counts recommendations fuse with
        fit = IndexFit.load(output_dir / stage / INDEX_FILE)  # the title weight searches are indexed with
        assert fit.queries > 0 and set(fit.ndcg) == {1, 2, 3, 5, 8, 13} and fit.ndcg[fit.title_weight] == max(fit.ndcg.values())


def test_instruct_without_align_says_what_to_run(mini_world, tmp_path):
    from neo.recipes.train import TrainRecipe

    catalog_dir, sids_dir = mini_world
    shutil.copytree(sids_dir, tmp_path / "sids")
    recipe = TrainRecipe(
        compose_train(
            [
                "data=dir",
                f"data.path={catalog_dir}",
                "data.name=mini",
                f"output_dir={tmp_path}",
                "debug=fast",
                "stage=instruct",
            ]
        )
    )
    with pytest.raises(FileNotFoundError, match="stage=align"):
        recipe.setup()


def test_a_tuning_run_trains_and_counts_without_each_users_last_interaction(mini_world, tmp_path):
    """`data.split.hold_back=1`: the rows and the transition counts come from the held-back split, and the
    checkpoint says so (evaluate then refuses any other split for it)."""
    from neo.recipes.train import TrainRecipe

    from neo.data import Catalog
    from neo.data.splits import make_split

    catalog_dir, sids_dir = mini_world
    output_dir = tmp_path / "run"
    shutil.copytree(sids_dir, output_dir / "sids")
    recipe = TrainRecipe(compose_train(["data=dir", f"data.path={catalog_dir}", "data.name=mini",
                                        f"output_dir={output_dir}", "debug=fast", "model.tokenizer_vocab_size=400",
                                        "tasks.num_proc=1", "tasks.max_length=256", "stage=align",
                                        "data.split.hold_back=1"]))
    recipe.setup()
    recipe.train()
    recipe.cleanup()
    catalog = Catalog.load(catalog_dir)
    tuning, real = make_split(Catalog.load(catalog_dir, split={"hold_back": 1})), make_split(catalog)
    assert recipe.split == tuning != real
    assert {u: x.item for u, x in tuning.test.items()} == {u: real.valid[u].item for u in tuning.test}
    counted = ItemPrior.load(output_dir / "align" / PRIOR_FILE)
    counting = CountSettings.from_config(OmegaConf.to_container(recipe.cfg.transitions, resolve=True))
    expected = ItemPrior.from_split(catalog, tuning, list(counted.types), counting)
    assert counted.types == expected.types
    meta = json.loads((output_dir / "align" / "neo.json").read_text())
    assert meta["config"]["data"]["split"] == {"hold_back": 1}
