"""A real server process on loopback, serving the tiny checkpoint with the real model and decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from neo.serving.process import ServerProcess
from neo.sids.table import SIDS_DIR, load_tables
from neo.vocab import SIDVocab

pytestmark = pytest.mark.integration
API_KEY = "test-key-7"


@pytest.fixture(scope="module")
def servers(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two servers booted in parallel: `open` (no auth, batching on, small generation limits so fuzzing
    stays cheap) and `guarded` (started through `neo serve`; auth on, no batching, a one-slot queue, so
    overload is easy to provoke)."""
    logs = tmp_path_factory.mktemp("servers")
    processes = {
        "open": ServerProcess(
            random_checkpoint,
            [
                "beam_width=10",
                "max_batch=16",
                "max_wait_ms=20",
                "limits.max_new_tokens=16",
                "limits.max_k=20",
            ],
            logs / "open.log",
        ),
        "guarded": ServerProcess(
            random_checkpoint,
            [f"api_key={API_KEY}", "max_batch=1", "queue_size=1", "retry_after_s=3", "beam_width=10"],
            logs / "guarded.log",
            via_cli=True,
        ),
    }
    try:
        yield {name: process.wait_ready() for name, process in processes.items()}
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="module")
def server(servers: dict[str, str]) -> str:
    return servers["open"]


@pytest.fixture(scope="module")
def guarded_server(servers: dict[str, str]) -> str:
    return servers["guarded"]


@pytest.fixture(scope="module")
def tables(random_checkpoint: Path) -> dict:
    return load_tables(random_checkpoint / SIDS_DIR)


def history(tables: dict, n: int, offset: int = 0) -> list[str]:
    return tables["episode"].item_ids[offset : offset + n]


def assert_catalog_item(item: dict, tables: dict, vocab: SIDVocab) -> None:
    table = tables[item["entity_type"]]
    assert table.contains(item["item_id"])
    assert item["sid"] == vocab.span_text(item["entity_type"], table.code_of(item["item_id"]))
    assert item["title"]


def test_every_endpoint(server: str, tables: dict, random_checkpoint: Path) -> None:
    vocab = SIDVocab.load(random_checkpoint)
    with httpx.Client(base_url=server, timeout=60) as client:
        assert client.get("/healthz").json() == {"status": "ok", "detail": None}
        assert client.get("/readyz").json()["status"] == "ready"
        catalog = client.get("/v1/catalog").json()
        assert {t["name"]: t["items"] for t in catalog["entity_types"]} == {
            t: len(v) for t, v in tables.items()
        }

        rec = client.post(
            "/v1/recommend", json={"history": history(tables, 4), "target_type": "show", "k": 5}
        )
        assert rec.status_code == 200, rec.text
        items = rec.json()["items"]
        assert len(items) == 5 and len({i["item_id"] for i in items}) == 5
        for item in items:
            assert item["entity_type"] == "show"
            assert_catalog_item(item, tables, vocab)

        found = client.post(
            "/v1/search", json={"query": "stories about space", "target_type": "audiobook", "k": 3}
        )
        assert [i["entity_type"] for i in found.json()["items"]] == ["audiobook"] * 3

        for path, body in (
            ("/v1/describe_user", {"history": history(tables, 3), "max_new_tokens": 16}),
            ("/v1/generate", {"prompt": "Suggest an artist.", "max_new_tokens": 16}),
        ):
            answer = client.post(path, json=body)
            assert answer.status_code == 200, answer.text
            result = answer.json()
            assert result["text"] == "".join(s["text"] for s in result["segments"])
            for item in result["items"]:
                assert_catalog_item(item, tables, vocab)

        metrics = client.get("/metrics").text
        assert 'neo_requests_total{route="/v1/recommend",status="200"}' in metrics
        assert "neo_batch_size_bucket" in metrics and "neo_queue_depth" in metrics
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/recommend", "/v1/search", "/v1/describe_user", "/v1/generate", "/v1/catalog"} <= set(
            paths
        )


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/recommend", {"history": [], "target_type": "show"}, ["body", "history"]),
        ("/v1/recommend", {"history": ["ghost-item"], "target_type": "show"}, ["body", "history", 0]),
        ("/v1/recommend", {"history": None, "target_type": "show"}, ["body", "history"]),
        ("/v1/recommend", {"target_type": "show"}, ["body", "history"]),
        ("/v1/recommend", {"history": ["x"], "target_type": "show", "k": 1000}, ["body", "k"]),
        ("/v1/search", {"query": "x", "target_type": "podcast"}, ["body", "target_type"]),
        ("/v1/search", {"query": "", "target_type": "show"}, ["body", "query"]),
        ("/v1/generate", {"prompt": "x" * 9000}, ["body", "prompt"]),
        ("/v1/generate", {"prompt": "hi", "max_new_tokens": 17}, ["body", "max_new_tokens"]),
        ("/v1/generate", {"prompt": "hi", "allowed_types": ["song"]}, ["body", "allowed_types", 0]),
        ("/v1/describe_user", {"history": ["a"], "extra": 1}, ["body", "extra"]),
    ],
)
def test_bad_inputs_answer_422_naming_the_field(
    server: str, tables: dict, path: str, body: dict, loc: list
) -> None:
    if body.get("history") == ["a"]:
        body = body | {"history": history(tables, 1)}
    response = httpx.post(f"{server}{path}", json=body, timeout=30)
    assert response.status_code == 422, response.text
    assert loc in [d["loc"] for d in response.json()["detail"]], response.json()


def test_unknown_type_error_lists_the_valid_ones(server: str, tables: dict) -> None:
    response = httpx.post(
        f"{server}/v1/recommend", json={"history": history(tables, 2), "target_type": "song"}
    )
    assert "valid types: ['show', 'episode', 'audiobook', 'artist']" in response.json()["detail"][0]["msg"]


def test_malformed_json_is_a_client_error(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_concurrent_clients_each_get_the_answer_to_their_own_request(server: str, tables: dict) -> None:
    types = ["show", "episode", "audiobook", "artist"]
    bodies = [
        {"history": history(tables, 2 + i % 5, offset=i), "target_type": types[i % 4], "k": 1 + i % 6}
        for i in range(16)
    ]
    with httpx.Client(base_url=server, timeout=120) as client:
        alone = [client.post("/v1/recommend", json=b).json()["items"] for b in bodies]

        def ask(body: dict) -> list[dict]:
            with httpx.Client(base_url=server, timeout=120) as own:
                return own.post("/v1/recommend", json=body).json()["items"]

        with ThreadPoolExecutor(max_workers=16) as pool:
            together = list(pool.map(ask, bodies))
        batch_sizes = client.get("/metrics").text
    for body, solo, concurrent in zip(bodies, alone, together, strict=True):
        assert len(concurrent) == body["k"]
        assert {i["entity_type"] for i in concurrent} == {body["target_type"]}
        assert [i["item_id"] for i in concurrent] == [i["item_id"] for i in solo]
        assert [i["score"] for i in concurrent] == pytest.approx([i["score"] for i in solo], abs=1e-3)
    assert len({json.dumps(a) for a in together}) > 8, "different requests must get different answers"
    count = float(
        next(line.split()[-1] for line in batch_sizes.splitlines() if line.startswith("neo_batch_size_count"))
    )
    assert count < 2 * len(bodies), "concurrent requests should have shared model batches"


def test_history_entries_and_filters(server: str, tables: dict) -> None:
    first, second = history(tables, 2)
    allowed = tables["show"].item_ids[:3]
    body = {
        "history": [{"item": first, "timestamp": 1.6e9, "context": {"surface": "app"}}, second],
        "target_type": "show",
        "k": 3,
        "filters": {"allow": allowed},
    }
    response = httpx.post(f"{server}/v1/recommend", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert sorted(i["item_id"] for i in response.json()["items"]) == sorted(allowed)
    bad = httpx.post(f"{server}/v1/recommend", json=body | {"filters": {"deny": ["ghost"]}}, timeout=60)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "filters", "deny", 0]


def test_auth_is_off_by_default(server: str) -> None:
    assert httpx.get(f"{server}/v1/catalog").status_code == 200


def test_auth_on_accepts_bearer_or_header_only(guarded_server: str) -> None:
    url = f"{guarded_server}/v1/catalog"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert httpx.get(url, headers={"X-API-Key": API_KEY}).status_code == 200
    assert httpx.get(f"{guarded_server}/healthz").status_code == 200


def test_full_queue_answers_503_with_retry_after(guarded_server: str, tables: dict) -> None:
    body = {"prompt": "Tell me about shows.", "max_new_tokens": 96}

    def ask(_: int) -> httpx.Response:
        return httpx.post(
            f"{guarded_server}/v1/generate", json=body, headers={"X-API-Key": API_KEY}, timeout=120
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(ask, range(12)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes and 503 in codes, codes
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["Retry-After"] == "3"
    assert "busy" in refused.json()["detail"]


@pytest.mark.parametrize("examples", [4, pytest.param(40, marks=pytest.mark.slow)])
def test_openapi_fuzzing_finds_no_server_errors(server: str, examples: int) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=server, timeout=60)
            assert response.status_code < 500, (
                f"{case.method} {case.path}: {response.status_code} {response.text}"
            )

        no_server_error()
        checked += 1
    assert checked >= 8
