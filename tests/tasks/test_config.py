"""The shipped conf/tasks presets compose and name only known tasks, subtasks and formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from neo.tasks.align import SUBTASKS
from neo.tasks.pipeline import TASKS, plain, stage_config
from neo.tasks.prompts import OUTPUT_FORMATS

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "tasks").glob("*.yaml")))
def test_preset_composes_with_known_names(preset):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"tasks={preset}"])
    tasks = plain(cfg.tasks)
    assert set(tasks["tasks"]) <= set(TASKS)
    assert set(tasks["tasks"]["align"]["subtasks"]) <= set(SUBTASKS)
    for name in ("recommend", "search"):
        assert set(tasks["tasks"][name]["formats"]) <= set(OUTPUT_FORMATS)
    for stage in ("align", "instruct"):
        assert stage_config(tasks, stage)["mixture"]
    assert int(tasks["max_length"]) > 0


def test_every_group_file_starts_with_a_comment():
    for path in (CONF / "tasks").glob("*.yaml"):
        assert path.read_text().startswith("# "), path


def test_showcase_splice_keeps_the_prose_around_the_markers():
    from neo.tasks.showcase import BEGIN, END, splice

    document = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert splice(document, "new") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        splice("no markers", "new")
