"""resolve_dataset (generate/convert once, atomically) and the `neo data` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo.cli import main
from neo.data.catalog import CatalogError
from neo.data.resolve import resolve_dataset

from .helpers import base_tables, write_dataset


def test_resolve_generates_the_world_once(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "data" / "demo"), "world": {"seed": 3, "scale": "tiny"}}
    path = resolve_dataset(config, progress=False)
    assert (path / "dataset.yaml").exists()
    stamp = (path / "items.jsonl").stat().st_mtime_ns
    assert resolve_dataset(config, progress=False) == path
    assert (path / "items.jsonl").stat().st_mtime_ns == stamp  # found, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["demo"]  # no staging folder left behind


def test_resolve_converts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sequences.txt").write_text("1 1 2 3\n")
    path = resolve_dataset(
        {"path": str(tmp_path / "beauty"), "convert": {"format": "s3rec", "src": str(src)}}, progress=False
    )
    assert (path / "items.parquet").exists()


def test_resolve_failure_leaves_nothing(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "out"), "convert": {"format": "s3rec", "src": str(tmp_path / "missing")}}
    with pytest.raises(CatalogError, match="missing sequences file"):
        resolve_dataset(config, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resolve_without_recipe(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="neither 'world' nor 'convert'"):
        resolve_dataset({"path": str(tmp_path / "nothing")})


def test_cli_validate_ok_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_dataset(tmp_path / "d", base_tables())
    assert main(["data", "validate", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == {"product": 2, "brand": 1, "category": 1}


def test_cli_validate_reports_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tables = base_tables()
    tables["interactions"][1]["item"] = "zz"
    root = write_dataset(tmp_path / "d", tables)
    assert main(["data", "validate", str(root)]) == 1
    assert "interactions.jsonl:2: unknown item 'zz'" in capsys.readouterr().err


def test_cli_world_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "world", "--out", str(tmp_path / "w"), "--scale", "tiny", "--seed", "1"]) == 0
    assert main(["data", "validate", str(tmp_path / "w")]) == 0
    assert main(["data", "world", "--out", str(tmp_path / "x"), "--scale", "huge"]) == 1
    assert "scale must be one of" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "convert",
                "--format",
                "s3rec",
                "--src",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 1
    )
    assert "missing sequences file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "--help"],
        ["data", "validate", "--help"],
        ["data", "convert", "--help"],
        ["data", "world", "--help"],
    ],
)
def test_cli_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0 and "usage: neo data" in capsys.readouterr().out


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", "--format", "movielens", "--src", "a", "--out", "b"])
    assert exit_info.value.code != 0
