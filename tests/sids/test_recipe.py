"""The build_sids recipe with the shipped configs, composed through Hydra's compose API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from neo.sids.config import type_config
from neo.sids.table import load_tables

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_build_sids(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="build_sids", overrides=overrides)


@pytest.mark.parametrize("sid", ["default", "fast", "collaborative", "byo"])
def test_every_sid_config_composes_and_checks(sid: str, tiny_catalog_dir: Path) -> None:
    cfg = compose_build_sids([f"sid={sid}", "data=dir", f"data.path={tiny_catalog_dir}", "data.name=tiny"])
    product = type_config(cfg.sid, "product")
    assert product.quantizer.levels == 3
    assert cfg.output_dir.endswith("/tiny")
    if sid == "byo":
        assert product.byo == f"{tiny_catalog_dir}/external_sids/product.json"


def test_recipe_builds_tables_on_a_tiny_catalog(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    from neo.recipes.build_sids import BuildSIDsRecipe

    cfg = compose_build_sids(
        ["sid=fast", "data=dir", f"data.path={tiny_catalog_dir}", "data.name=tiny", f"output_dir={tmp_path}"]
    )
    recipe = BuildSIDsRecipe(cfg)
    recipe.setup()
    tables, report = recipe.run()
    assert set(tables) == {"product", "brand", "category"}
    assert load_tables(tmp_path / "sids")["product"].version == tables["product"].version
    assert report["product"]["collision_rate_after"] == 0.0
    sizes = tables["product"].codebook_sizes
    assert sizes[0] == 32 and max(sizes[:3]) <= 32  # 48 products: deeper levels keep only distinct residuals


def test_byo_config_imports_external_sids_and_builds_the_rest(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    from neo.recipes.build_sids import BuildSIDsRecipe

    external = {f"p{t}_{p}": [f"<a_{t}>", f"<b_{p}>"] for t in range(4) for p in range(12)}
    (tiny_catalog_dir / "external_sids").mkdir()
    (tiny_catalog_dir / "external_sids" / "product.json").write_text(json.dumps(external))
    cfg = compose_build_sids(
        ["sid=byo", "data=dir", f"data.path={tiny_catalog_dir}", "data.name=tiny", f"output_dir={tmp_path}"]
    )
    recipe = BuildSIDsRecipe(cfg)
    recipe.setup()
    tables, report = recipe.run()
    assert tables["product"].code_of("p2_5") == (2, 5, 0)  # disambiguate appends a (here all-zero) level
    assert report["product"]["source"] == "byo" and report["brand"]["source"] == "built"


def test_neo_run_build_sids_from_the_command_line(tiny_catalog_dir: Path, tmp_path: Path) -> None:
    from neo.cli import main

    assert (
        main(
            [
                "run",
                "build_sids",
                f"data={tiny_catalog_dir}",
                f"output_dir={tmp_path}",
                "sid=fast",
                "sid.quantizer.levels=2",
            ]
        )
        == 0
    )
    tables = load_tables(tmp_path / "sids")
    assert tables["product"].levels == 3 and tables["product"].meta["config"]["quantizer"]["levels"] == 2
    assert set(json.loads((tmp_path / "sids" / "report.json").read_text())) == {
        "product",
        "brand",
        "category",
    }


def test_demo_world_gets_a_table_per_type(demo_dir: Path, tmp_path: Path) -> None:
    from neo.data import Catalog
    from neo.sids.build import build_sid_tables

    catalog = Catalog.load(demo_dir)
    cfg = compose_build_sids(["sid=fast", "data=dir", f"data.path={demo_dir}", "data.name=demo"])
    tables, report = build_sid_tables(catalog, cfg.sid, tmp_path)
    assert set(tables) == set(catalog.type_names)
    for name, numbers in report.items():
        assert numbers["collision_rate_after"] == 0.0 and numbers["items"] == len(catalog.item_ids(name))
