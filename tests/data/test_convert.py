"""Converters: exact output on tiny hand-made sources, SID import checks, and the real-data counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neo.data.catalog import Catalog, CatalogError
from neo.data.convert import convert
from neo.data.validate import validate


def _amazon_source(root: Path) -> Path:
    root.mkdir()
    items = {
        "0": {
            "title": "Staple gun",
            "description": "Drives staples.",
            "brand": "Stanley",
            "categories": "Tools,Fasteners,Staples",
        },
        "1": {
            "title": "Staples 1/2 inch",
            "description": "",
            "brand": "Stanley",
            "categories": "Tools,Fasteners,Staples",
        },
        "2": {"title": "Pipette", "description": "Glass.", "brand": "", "categories": "Lab,Glassware"},
        "3": {"title": "Gloves", "description": "Nitrile.", "brand": "Ansell", "categories": ""},
    }
    (root / "items.json").write_text(json.dumps(items))
    (root / "sequences.txt").write_text("0 0 1 2\n1 1 3\n2 3 0 1 1\n")
    return root


@pytest.mark.parametrize("table_format", ["jsonl", "parquet"])
def test_amazon_conversion_exact(tmp_path: Path, table_format: str) -> None:
    out = convert(
        "amazon",
        _amazon_source(tmp_path / "src"),
        tmp_path / "out",
        progress=False,
        table_format=table_format,
    )
    assert (out / f"items.{table_format}").exists()
    assert validate(out) == {
        "users": 3,
        "interactions": 9,
        "items": {"product": 4, "brand": 2, "category": 5},
        "queries": 0,
        "interactions_by_type": {"product": 9},
    }
    catalog = Catalog.load(out)
    product = catalog.item("1")
    assert product["links"] == {
        "brand": ["brand:Stanley"],
        "category": ["category:Tools", "category:Tools > Fasteners", "category:Tools > Fasteners > Staples"],
    }
    assert product["text"] == "Brand: Stanley. Category: Tools > Fasteners > Staples"  # empty description
    assert catalog.item("2")["links"] == {"category": ["category:Lab", "category:Lab > Glassware"]}
    assert catalog.item("3")["links"] == {"brand": ["brand:Ansell"]}
    brand = catalog.item("brand:Stanley")
    assert brand["title"] == "Stanley" and brand["popularity"] == 6.0
    assert brand["text"] == "Stanley: makes Staples products such as Staples 1/2 inch; Staple gun."
    staples = catalog.item("category:Tools > Fasteners > Staples")
    assert staples["title"] == "Staples" and staples["attributes"]["parent"] == "category:Tools > Fasteners"
    assert catalog.sequences()["2"] == [("3", 0.0, {}), ("0", 1.0, {}), ("1", 2.0, {}), ("1", 3.0, {})]


def test_amazon_unknown_item_in_sequences(tmp_path: Path) -> None:
    src = _amazon_source(tmp_path / "src")
    (src / "sequences.txt").write_text("0 0 9\n")
    with pytest.raises(CatalogError, match="item '9', which has no metadata"):
        convert("amazon", src, tmp_path / "out", progress=False)


def _s3rec_source(root: Path, sids: dict | None = None) -> Path:
    root.mkdir()
    (root / "sequences.txt").write_text("1 1 2 3\n2 3 2\n")
    (root / "item2attributes.json").write_text(json.dumps({"1": [5, 6], "2": [5], "3": []}))
    if sids is not None:
        (root / "letter_sids.json").write_text(json.dumps(sids))
    return root


def test_s3rec_conversion_with_sids(tmp_path: Path) -> None:
    sids = {"0": ["<a_1>", "<b_2>"], "1": ["<a_1>", "<b_3>"], "2": ["<a_4>", "<b_2>"]}
    src = _s3rec_source(tmp_path / "src", sids)
    out = convert("s3rec", src, tmp_path / "out", sids=src / "letter_sids.json", progress=False)
    assert validate(out)["items"] == {"product": 3}
    catalog = Catalog.load(out)
    assert catalog.item("1")["title"] == "product 1"
    assert catalog.item("1")["text"] == "Product 1. Attributes: a5, a6."
    assert catalog.item("1")["attributes"] == {"attribute_ids": ["5", "6"]}
    external = json.loads((out / "external_sids" / "product.json").read_text())
    assert external == {"1": ["<a_1>", "<b_2>"], "2": ["<a_1>", "<b_3>"], "3": ["<a_4>", "<b_2>"]}


@pytest.mark.parametrize(
    ("sids", "problem"),
    [
        ({"0": ["<a_1>"], "1": ["<a_2>"]}, "1 item(s) have no SIDs, e.g. item '3'"),
        ({"0": ["<a_1>"], "1": ["<a_2>"], "2": ["<a_3>", "<b_1>"]}, "inconsistent number of levels"),
        ({"0": ["<a_1>"], "1": ["<a_2>"], "2": ["<a_3>"], "7": ["<a_9>"]}, "name no catalog item"),
        ({"0": ["<a_1>"], "1": "<a_2>", "2": ["<a_3>"]}, "expected a non-empty list of code strings"),
    ],
)
def test_s3rec_sid_problems(tmp_path: Path, sids: dict, problem: str) -> None:
    src = _s3rec_source(tmp_path / "src", sids)
    with pytest.raises(CatalogError, match=re.escape(problem)):
        convert("s3rec", src, tmp_path / "out", sids=src / "letter_sids.json", progress=False)


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'movielens'"):
        convert("movielens", tmp_path, tmp_path / "out")


def test_real_amazon18_scientific(shared_data: Path, tmp_path: Path) -> None:
    out = convert("amazon", shared_data / "amazon18_scientific", tmp_path / "sci", progress=False)
    summary = validate(out)
    assert summary["users"] == 8317 and summary["interactions"] == 58492
    assert summary["items"] == {"product": 4344, "brand": 1546, "category": 939}
    assert summary["interactions_by_type"] == {"product": 58492}


def test_real_amazon14_beauty(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "amazon14_beauty"
    out = convert("s3rec", src, tmp_path / "beauty", sids=src / "letter_sids.json", progress=False)
    summary = validate(out)
    assert (summary["users"], summary["items"], summary["interactions"]) == (
        22363,
        {"product": 12101},
        198502,
    )
    external = json.loads((out / "external_sids" / "product.json").read_text())
    assert len(external) == 12101 and external["1"] == ["<a_183>", "<b_70>", "<c_232>", "<d_6>"]
