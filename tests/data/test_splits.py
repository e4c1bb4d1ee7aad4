"""Splits: exact small cases, invariants under hypothesis, and targets through links."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from neo.data.catalog import Catalog, CatalogError
from neo.data.resolve import load_catalog, split_overrides
from neo.data.splits import Interaction, leave_one_out, make_split, target_of, targets, temporal

from .helpers import base_tables, write_dataset

sequences_strategy = st.dictionaries(
    st.text(alphabet="uvw", min_size=1, max_size=3),
    st.lists(st.integers(0, 50), min_size=1, max_size=12).map(
        lambda stamps: [Interaction(f"i{s % 7}", float(t), {}) for s, t in enumerate(sorted(stamps))]
    ),
    max_size=8,
)


@given(sequences_strategy)
def test_leave_one_out_sizes_and_disjoint_parts(sequences: dict[str, list[Interaction]]) -> None:
    split = leave_one_out(sequences)
    for user, events in sequences.items():
        if len(events) < 3:
            assert split.train[user] == events and user not in split.valid and user not in split.test
            continue
        assert len(split.train[user]) == len(events) - 2
        assert split.valid[user] == events[-2] and split.test[user] == events[-1]
        # positions, not values: the same item may be heard twice, the same event never lands twice
        assert split.train[user] + [split.valid[user], split.test[user]] == events
        assert split.history("test", user) == events[:-1]
        assert split.history("valid", user) == events[:-2]


@given(sequences_strategy, st.floats(0, 50), st.floats(0, 50))
def test_temporal_parts_respect_cut_offs(sequences: dict[str, list[Interaction]], a: float, b: float) -> None:
    valid_time, test_time = min(a, b), max(a, b)
    split = temporal(sequences, valid_time, test_time)
    for user, events in sequences.items():
        train = split.train.get(user, [])
        assert all(e.timestamp < valid_time for e in train)
        assert train == [e for e in events if e.timestamp < valid_time]
        if user in split.valid:
            assert valid_time <= split.valid[user].timestamp < test_time
            assert split.valid[user] not in train or split.valid[user].timestamp >= valid_time
        if user in split.test:
            assert split.test[user].timestamp >= test_time
            assert split.test[user] == next(e for e in events if e.timestamp >= test_time)
        history = split.history("test", user)
        assert all(e.timestamp < test_time for e in history)


def test_temporal_default_cut_offs_are_percentiles() -> None:
    sequences = {"u": [Interaction(f"i{t}", float(t), {}) for t in range(11)]}
    split = temporal(sequences)
    assert [e.timestamp for e in split.train["u"]] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert split.valid["u"].timestamp == 8.0 and split.test["u"].timestamp == 9.0


def _catalog(tmp_path: Path, protocol: dict | None = None) -> Catalog:
    tables = base_tables()
    tables["interactions"] += [
        {"user": "u1", "item": "p1", "timestamp": 3, "context": {"surface": "home"}},
        {"user": "u1", "item": "p2", "timestamp": 0},
    ]
    root = write_dataset(tmp_path / "d", tables)
    if protocol:
        spec = yaml.safe_load((root / "dataset.yaml").read_text())
        spec["split"] = protocol
        (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return Catalog.load(root)


def test_make_split_leave_one_out_on_a_catalog(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    split = make_split(catalog)
    assert split.protocol == "leave_one_out"
    assert [e.item for e in split.train["u1"]] == ["p2", "p1"]  # time-ordered: ts 0, 1
    assert split.valid["u1"] == Interaction("p2", 2.0, {})
    assert split.test["u1"] == Interaction("p1", 3.0, {"surface": "home"})
    assert split.train["u2"] == [Interaction("p2", 1.0, {})] and "u2" not in split.test
    assert make_split(catalog) == split  # deterministic


def test_make_split_temporal_from_dataset_yaml(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, {"protocol": "temporal", "valid_time": 2, "test_time": 3})
    split = make_split(catalog)
    assert split.protocol == "temporal"
    assert [e.timestamp for e in split.train["u1"]] == [0.0, 1.0]
    assert split.valid["u1"].timestamp == 2.0 and split.test["u1"].timestamp == 3.0


def test_target_of_follows_links(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert target_of(catalog, "p1", "product") == "p1"
    assert target_of(catalog, "p1", "brand") == "b1"
    assert target_of(catalog, "p1", "category") == "c1"
    assert target_of(catalog, "p2", "category") is None
    split = make_split(catalog)
    assert targets(catalog, split, "test", "category") == {"u1": "c1"}
    assert targets(catalog, split, "valid", "category") == {}
    assert targets(catalog, split, "valid", "brand") == {"u1": "b1"}


def test_demo_world_targets_have_the_requested_type(demo_dir: Path) -> None:
    catalog = Catalog.load(demo_dir)
    split = make_split(catalog)
    for entity_type in ("episode", "show", "artist", "audiobook"):
        found = targets(catalog, split, "test", entity_type)
        assert found, f"no {entity_type} targets"
        assert {catalog.item_types[catalog.item_row[item]] for item in found.values()} == {entity_type}
        assert set(found) <= set(split.test)


def test_search_texts_add_the_titles_of_linked_items(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert catalog.search_texts("product") == (["p1", "p2"], ["Red mug. A mug. MugCo. Kitchen", "Blue mug. MugCo"])
    assert catalog.search_texts("brand") == (["b1"], ["MugCo"])
    assert catalog.search_texts("product", links=False)[1] == ["Red mug. A mug", "Blue mug"]
    assert catalog.search_texts("product", title_weight=2)[1][1] == "Blue mug. Blue mug. MugCo"


def test_hold_back_makes_the_validation_target_the_test_target(tmp_path: Path) -> None:
    """A tuning run (`hold_back: 1`) predicts the real validation target from the real validation history,
    and never sees the real test interaction."""
    real = make_split(_catalog(tmp_path))
    tuning = make_split(Catalog.load(tmp_path / "d", split={"hold_back": 1}))
    assert tuning.test["u1"] == real.valid["u1"]
    assert tuning.history("test", "u1") == real.history("valid", "u1")
    assert [e.item for e in tuning.train["u1"]] == ["p2"] and tuning.valid["u1"] == Interaction("p1", 1.0, {"device": "phone"})
    seen = [*tuning.train["u1"], tuning.valid["u1"], tuning.test["u1"]]
    assert real.test["u1"] not in seen
    assert "u2" not in tuning.train  # one interaction, held back: nothing left


def test_hold_back_in_dataset_yaml_equals_the_override(tmp_path: Path) -> None:
    from_file = make_split(_catalog(tmp_path / "a", {"protocol": "leave_one_out", "hold_back": 1}))
    _catalog(tmp_path / "b")
    assert make_split(Catalog.load(tmp_path / "b" / "d", split={"hold_back": 1})) == from_file


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ({"hold_back": -1}, "'split.hold_back' must be an integer >= 0, got -1"),
        ({"hold_back": "one"}, "'split.hold_back' must be an integer >= 0, got 'one'"),
        ({"hold_back": True}, "'split.hold_back' must be an integer >= 0, got True"),
        ({"protocol": "temporal", "hold_back": 1}, "applies to the leave_one_out protocol"),
        ({"protocol": "random"}, "'split.protocol' must be one of"),
    ],
)
def test_bad_split_overrides_name_the_field(tmp_path: Path, split: dict, expected: str) -> None:
    _catalog(tmp_path)
    with pytest.raises(CatalogError, match="data.split") as error:
        Catalog.load(tmp_path / "d", split=split)
    assert expected in str(error.value)


def test_bad_hold_back_in_dataset_yaml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"dataset\.yaml: field 'split.hold_back'"):
        _catalog(tmp_path, {"protocol": "leave_one_out", "hold_back": -2})


def test_config_split_overrides_skip_unset_fields(tmp_path: Path) -> None:
    """`data.split.hold_back: null` (the conf/data default) leaves dataset.yaml's value."""
    _catalog(tmp_path, {"protocol": "leave_one_out", "hold_back": 1})
    data_cfg = {"path": str(tmp_path / "d"), "split": {"hold_back": None}}
    assert split_overrides(data_cfg) == {}
    assert load_catalog(data_cfg).spec.split["hold_back"] == 1
    assert load_catalog({**data_cfg, "split": {"hold_back": 0}}).spec.split["hold_back"] == 0
