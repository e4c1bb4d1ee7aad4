"""Bring-your-own SIDs: valid files import exactly; each kind of bad file fails with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neo.sids.byo import SIDImportError, import_sids

ITEMS = ["1", "2", "3"]


def write(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "sids.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_letter_style_file_with_zero_based_keys(tmp_path: Path) -> None:
    path = write(tmp_path, {"0": ["<a_3>", "<b_0>"], "1": ["<a_3>", "<b_7>"], "2": ["<a_0>", "<b_0>"]})
    table = import_sids(path, "product", ITEMS, key_offset=1)
    assert table.codes.tolist() == [[3, 0], [3, 7], [0, 0]]
    assert table.codebook_sizes == (4, 8)
    assert table.item_of([3, 7]) == "2"


def test_plain_numbers_and_given_codebook_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, {"1": [1, "2"], "2": [0, 0], "3": ["5", 1]})
    table = import_sids(path, "product", ITEMS, codebook_sizes=[256, 256])
    assert table.codebook_sizes == (256, 256) and table.code_of("3") == (5, 1)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"1": ["<a_1>"], "2": ["<a_2>"], "3": ["<a_3>"], "9": ["<a_4>"]},
            r"1 item id\(s\) are not 'product' items.*'9'",
        ),
        ({"1": ["<a_1>"], "2": ["<a_2>"]}, r"1 'product' item\(s\) of the catalog have no SID, e.g. \['3'\]"),
        (
            {"1": ["<a_1>", "<b_1>"], "2": ["<a_2>"], "3": ["<a_3>", "<b_0>"]},
            "item '2' has 1 levels, earlier items have 2",
        ),
        ({"1": ["<a_1>"], "2": ["a-2"], "3": ["<a_3>"]}, r"item '2' level 0: bad code 'a-2'"),
        ({"1": ["<a_1>"], "2": ["<a_-2>"], "3": ["<a_3>"]}, "bad code"),
        (
            {"1": ["<a_1>", "<b_1>"], "2": ["<b_2>", "<a_1>"], "3": ["<a_3>", "<b_1>"]},
            "has tag 'b' but earlier items use 'a'",
        ),
        (
            {"1": ["<a_1>"], "2": ["<a_1>"], "3": ["<a_3>"]},
            r"items '1' and '2' share the code \[1\]; SIDs must be unique",
        ),
        ({"1": [], "2": ["<a_1>"], "3": ["<a_3>"]}, "expected a non-empty list"),
        ([["<a_1>"]], "expected a non-empty JSON object"),
        ("{not json", "malformed JSON"),
    ],
)
def test_bad_files_are_rejected_with_the_reason(tmp_path: Path, payload: object, message: str) -> None:
    path = write(tmp_path, payload)
    with pytest.raises(SIDImportError, match=message) as info:
        import_sids(path, "product", ITEMS)
    assert str(path) in str(info.value)


def test_codes_beyond_given_codebook_size_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"1": [0], "2": [9], "3": [1]})
    with pytest.raises(SIDImportError, match="level 0 has code 9 but codebook size 8"):
        import_sids(path, "product", ITEMS, codebook_sizes=[8])
    with pytest.raises(SIDImportError, match="file not found"):
        import_sids(tmp_path / "absent.json", "product", ITEMS)


def test_published_letter_assignment_for_beauty_imports(shared_data: Path) -> None:
    sequences = (shared_data / "amazon14_beauty" / "sequences.txt").read_text().split("\n")
    item_ids = sorted({i for line in sequences if line for i in line.split()[1:]}, key=int)
    path = shared_data / "amazon14_beauty" / "letter_sids.json"
    with pytest.raises(SIDImportError, match="share the code"):  # 13 of its items repeat another's code
        import_sids(path, "product", item_ids, key_offset=1)
    table = import_sids(path, "product", item_ids, key_offset=1, duplicates="disambiguate")
    assert len(table) == 12_101 and table.codebook_sizes == (256, 256, 256, 256, 3)
    assert table.meta["collision_rate_before"] == pytest.approx(13 / 12_101)
    kept = import_sids(path, "product", item_ids, key_offset=1, duplicates="popularity")
    assert kept.levels == 4 and (kept.codes != table.codes[:, :4]).any(axis=1).sum() == 13


def test_duplicates_can_be_resolved_by_a_policy(tmp_path: Path) -> None:
    path = write(tmp_path, {"1": [0, 1], "2": [0, 1], "3": [1, 1]})
    numbered = import_sids(path, "product", ITEMS, duplicates="disambiguate", popularity=[1, 2, 0])
    assert numbered.codes.tolist() == [[0, 1, 1], [0, 1, 0], [1, 1, 0]] and numbered.codebook_sizes == (
        2,
        2,
        2,
    )
    moved = import_sids(path, "product", ITEMS, duplicates="popularity", popularity=[1, 2, 0])
    assert moved.codes.tolist() == [[0, 0], [0, 1], [1, 1]]
