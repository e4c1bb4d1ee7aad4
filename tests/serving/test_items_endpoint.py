"""`POST /v1/items` in-process with the real model: new items become nameable at once, bad ones get 422."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from neo.api import Neo
from neo.serving.app import ServeConfig, create_app
from neo.sids.table import SIDS_DIR, load_tables


@pytest.fixture(scope="module")
def client(nested_checkpoint: Path) -> Iterator[TestClient]:
    app = create_app(lambda: Neo.from_pretrained(nested_checkpoint, beam_width=4), ServeConfig(max_wait_ms=1.0))
    with TestClient(app) as test_client:
        for _ in range(3000):
            if test_client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.01)
        yield test_client


def test_added_episode_is_recommended_and_counted(client: TestClient, nested_checkpoint: Path) -> None:
    tables = load_tables(nested_checkpoint / SIDS_DIR)
    parent, history = tables["show"].item_ids[0], tables["episode"].item_ids[:2]
    before = {t["name"]: t["items"] for t in client.get("/v1/catalog").json()["entity_types"]}
    added = client.post(
        "/v1/items",
        json={"entity_type": "episode", "items": [{"id": "ep-http", "title": "Fresh", "parent": parent,
                                                  "order_key": 1}]},
    )
    assert added.status_code == 200, added.json()
    record = added.json()["items"][0]
    assert record["item_id"] == "ep-http" and record["title"] == "Fresh" and record["sid"]
    after = {t["name"]: t["items"] for t in client.get("/v1/catalog").json()["entity_types"]}
    assert after == {**before, "episode": before["episode"] + 1}
    answer = client.post(
        "/v1/recommend",
        json={"history": history, "target_type": "episode", "k": 1, "filters": {"allow": ["ep-http"]}},
    )
    assert [i["item_id"] for i in answer.json()["items"]] == ["ep-http"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"entity_type": "episode", "items": []}, ["body", "items"]),
        ({"entity_type": "episode", "items": [{"id": "x"}]}, ["body", "items", 0, "title"]),
        ({"entity_type": "episode", "items": [{"id": "x", "title": "X", "colour": 1}]},
         ["body", "items", 0, "colour"]),
        ({"entity_type": "episode", "items": [{"id": "x", "title": "X", "parent": "nope"}]},
         ["body", "items", 0, "parent"]),
        ({"entity_type": "podcast", "items": [{"id": "x", "title": "X"}]}, ["body", "entity_type"]),
        ({"entity_type": "show", "items": [{"id": "x", "title": "X", "embedding": [1.0]}]},
         ["body", "items", 0, "embedding"]),
    ],
)
def test_bad_items_answer_422_naming_the_field(client: TestClient, body: dict, loc: list) -> None:
    response = client.post("/v1/items", json=body)
    assert response.status_code == 422
    assert any(detail["loc"][: len(loc)] == loc for detail in response.json()["detail"]), response.json()


def test_items_added_over_http_survive_a_restart_with_an_additions_file(
    nested_checkpoint: Path, tmp_path: Path
) -> None:
    from hydra import compose, initialize_config_module
    from neo.recipes.serve import ServeRecipe

    path = tmp_path / "additions.jsonl"
    with initialize_config_module(config_module="neo.conf", version_base="1.3"):
        cfg = compose(config_name="serve", overrides=[f"checkpoint={nested_checkpoint}", f"additions={path}",
                                                      "beam_width=4"])
    parent = load_tables(nested_checkpoint / SIDS_DIR)["show"].item_ids[0]

    def counts(test_client: TestClient) -> dict[str, int]:
        return {t["name"]: t["items"] for t in test_client.get("/v1/catalog").json()["entity_types"]}

    for run in range(2):  # the second server is the first one restarted
        app = create_app(ServeRecipe(cfg)._load_engine, ServeConfig(max_wait_ms=1.0))
        with TestClient(app) as test_client:
            for _ in range(3000):
                if test_client.get("/readyz").status_code == 200:
                    break
                threading.Event().wait(0.01)
            if run == 0:
                before = counts(test_client)
                body = {"entity_type": "episode", "items": [{"id": "ep-kept", "title": "Kept", "parent": parent}]}
                assert test_client.post("/v1/items", json=body).status_code == 200
            assert counts(test_client) == {**before, "episode": before["episode"] + 1}
            answer = test_client.post(
                "/v1/recommend",
                json={"history": [parent], "target_type": "episode", "k": 1, "filters": {"allow": ["ep-kept"]}},
            )
            assert [i["item_id"] for i in answer.json()["items"]] == ["ep-kept"]
