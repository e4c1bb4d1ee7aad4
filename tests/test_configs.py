"""Every shipped recipe config composes with every experiment preset and every option of every group."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

CONF = Path(str(importlib.resources.files("neo.conf")))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_config(name: str, overrides: list[str]):
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("recipe", ["build_sids", "train", "evaluate", "pipeline"])
def test_experiment_composes_with_recipe(recipe: str, experiment: str):
    cfg = compose_config(recipe, [f"experiment={experiment}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["output_dir"].endswith(experiment)
    assert resolved["data"]["path"]


@pytest.mark.parametrize("group", ["sid", "model", "tasks", "deepspeed", "logger", "data", "stage"])
def test_every_group_option_composes_in_the_pipeline(group: str):
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert options, f"conf/{group} is empty"
    for option in options:
        if group == "data" and option == "dir":
            cfg = compose_config("train", ["data=dir", "data.path=/tmp/x", "data.name=x"])
        elif group == "stage":
            cfg = compose_config("pipeline", [f"stage@stages.align={option}"])
        else:
            cfg = compose_config("pipeline", [f"{group}={option}"])
        OmegaConf.to_container(cfg, resolve=True)


def test_pipeline_stage_overrides_apply_to_both_stages():
    from neo.recipes.pipeline import PipelineRecipe

    cfg = compose_config("pipeline", ["experiment=quickstart", "debug=fast"])
    recipe = PipelineRecipe(cfg)
    align, instruct = recipe.stage_config("align"), recipe.stage_config("instruct")
    assert (align.stage.name, instruct.stage.name) == ("align", "instruct")
    assert align.stage.max_steps == instruct.stage.max_steps == 4  # debug=fast caps every stage
    assert "stages" not in align


def test_preset_mixtures_merge_into_the_default_one():
    """Hydra merges a mixture mapping into the default one, so a preset drops a task only with weight 0."""
    merged = OmegaConf.to_container(
        compose_config("pipeline", ["tasks.stages.instruct.mixture={rec_sequence: 1.0}"]), resolve=True
    )["tasks"]["stages"]["instruct"]["mixture"]
    assert merged["rec_sequence"] == 1.0 and merged["recommend"] > 0  # the default tasks stayed in
    beauty = OmegaConf.to_container(compose_config("pipeline", ["experiment=beauty"]), resolve=True)
    mixture = beauty["tasks"]["stages"]["instruct"]["mixture"]
    assert {task for task, weight in mixture.items() if weight > 0} == {"rec_sequence"}
