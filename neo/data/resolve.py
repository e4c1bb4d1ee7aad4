"""From a `data` config (conf/data/*.yaml) to a dataset directory, creating it on first use.

`data.path` is where the dataset lives. If it has no `dataset.yaml` yet, `data.world` ({seed, scale})
generates the demo world there, or `data.convert` ({format, src, sids?}) converts a public dataset.
The dataset is built in a temporary sibling folder and renamed into place, so a crash or a concurrent
run never leaves (or reads) a half-written dataset, and a second call finds it and returns at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neo.data.catalog import Catalog, CatalogError


def resolve_dataset(data_cfg: Mapping[str, Any], progress: bool = True) -> Path:
    """Return the dataset directory of `data_cfg`, generating or converting it if it is missing."""
    if not data_cfg.get("path"):
        raise ValueError("data config needs 'path' (the dataset directory)")
    path = Path(str(data_cfg["path"])).expanduser().resolve()
    if (path / "dataset.yaml").exists():
        return path
    world, conversion = data_cfg.get("world"), data_cfg.get("convert")
    if world is None and conversion is None:
        raise CatalogError(
            path, "no dataset.yaml here, and the data config has neither 'world' nor 'convert' to create one"
        )
    if path.exists() and any(path.iterdir()):
        raise CatalogError(
            path, "folder exists but holds no dataset.yaml; remove it or point data.path elsewhere"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        if world is not None:
            from neo.data.world import generate_world

            generate_world(
                staging, seed=int(world.get("seed", 0)), scale=world.get("scale", "small"), progress=progress
            )
        else:
            from neo.data.convert import convert

            if not conversion.get("format") or not conversion.get("src"):
                raise ValueError("data.convert needs 'format' and 'src'")
            sids = conversion.get("sids")
            convert(
                str(conversion["format"]),
                str(conversion["src"]),
                staging,
                sids=str(sids) if sids else None,
                progress=progress,
            )
        with contextlib.suppress(FileNotFoundError):
            path.rmdir()  # an empty placeholder folder may stand where the dataset goes
        try:
            os.rename(staging, path)
        except OSError:
            if not (path / "dataset.yaml").exists():
                raise
            # Another process finished first: its dataset is as good as ours.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def split_overrides(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `data.split` fields that are set (for example `hold_back: 1`, a tuning run), laid over
    dataset.yaml's split when the catalog is loaded; null leaves the file's value."""
    split = data_cfg.get("split") or {}
    return {key: split[key] for key in split if split[key] is not None}


def load_catalog(data_cfg: Mapping[str, Any], progress: bool = True) -> Catalog:
    """The catalog of `data_cfg`, created on first use, with the config's split overrides."""
    return Catalog.load(resolve_dataset(data_cfg, progress=progress), split=split_overrides(data_cfg))
