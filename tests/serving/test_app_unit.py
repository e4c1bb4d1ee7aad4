"""The HTTP layer in-process, with an engine double: routing, errors, auth, metrics, readiness.

The engine double stands in for the model only here; tests/serving/test_server.py drives the real
model and decoder in a real server process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from neo.api import (
    DescribeUserRequest,
    GenerateRequest,
    ItemResult,
    Limits,
    NeoInputError,
    RecommendRequest,
    SearchRequest,
    Segment,
    TextResult,
)
from neo.serving.app import ServeConfig, create_app

ITEMS = {"a": "show", "b": "show", "c": "episode"}


class EchoEngine:
    """Answers derived from the request, so each response can be matched to its request."""

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.entered = threading.Event()
        self.batches: list[int] = []

    def catalog_summary(self) -> dict[str, int]:
        return {"show": 2, "episode": 1}

    def validate(self, request: Any) -> None:
        target = getattr(request, "target_type", "show")
        if target not in ("show", "episode"):
            raise NeoInputError(
                "target_type", f"unknown entity type {target!r}; valid types: ['show', 'episode']"
            )
        for i, item in enumerate(getattr(request, "history", ())):
            if item not in ITEMS:
                raise NeoInputError(f"history[{i}]", f"unknown item {item!r}")

    def run_batch(self, requests: Sequence[Any]) -> list[Any]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.batches.append(len(requests))
        out: list[Any] = []
        for r in requests:
            if isinstance(r, RecommendRequest):
                out.append(
                    [
                        ItemResult(h, ITEMS[h], f"title {h}", f"<sid {h}>", -float(i))
                        for i, h in enumerate(r.history[: r.k])
                    ]
                )
            elif isinstance(r, SearchRequest):
                out.append([ItemResult("a", "show", r.query, "<sid a>", 0.0)])
            elif isinstance(r, DescribeUserRequest | GenerateRequest):
                item = ItemResult("c", "episode", "title c", "<sid c>")
                out.append(TextResult("likes title c", [Segment("likes "), Segment("title c", item)]))
        return out


def make_client(engine: EchoEngine, **config: Any) -> TestClient:
    app = create_app(lambda: engine, ServeConfig(**{"max_wait_ms": 1.0} | config))
    client = TestClient(app)
    client.__enter__()
    for _ in range(200):
        if client.get("/readyz").status_code == 200:
            return client
        threading.Event().wait(0.01)
    raise AssertionError("app never became ready")


@pytest.fixture()
def client() -> TestClient:
    test_client = make_client(EchoEngine())
    yield test_client
    test_client.__exit__(None, None, None)


def test_endpoints_answer(client: TestClient) -> None:
    rec = client.post("/v1/recommend", json={"history": ["a", "c"], "target_type": "show", "k": 2})
    assert rec.status_code == 200
    fused_off = {"history": ["a", "c"], "target_type": "show", "k": 2, "prior_weight": 0}
    assert client.post("/v1/recommend", json=fused_off).json() == rec.json()
    assert [i["item_id"] for i in rec.json()["items"]] == ["a", "c"]
    assert rec.json()["items"][0] == {
        "item_id": "a",
        "entity_type": "show",
        "title": "title a",
        "sid": "<sid a>",
        "score": 0.0,
    }
    assert (
        client.post("/v1/search", json={"query": "jazz", "target_type": "show"}).json()["items"][0]["title"]
        == "jazz"
    )
    unfused = client.post("/v1/search", json={"query": "jazz", "target_type": "show", "prior_weight": 0})
    assert unfused.status_code == 200
    bad = client.post("/v1/search", json={"query": "jazz", "target_type": "show", "prior_weight": -1})
    assert bad.status_code == 422 and any("prior_weight" in d["loc"] for d in bad.json()["detail"])
    profile = client.post("/v1/describe_user", json={"history": ["a"]}).json()
    assert profile["text"] == "likes title c"
    assert profile["segments"][1]["kind"] == "item" and profile["items"][0]["item_id"] == "c"
    assert client.post("/v1/generate", json={"prompt": "hi"}).json()["segments"][0] == {
        "kind": "text",
        "text": "likes ",
        "item": None,
    }
    assert client.get("/v1/catalog").json() == {
        "entity_types": [{"name": "show", "items": 2}, {"name": "episode", "items": 1}],
        "total_items": 3,
    }
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/v1/recommend" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"history": [], "target_type": "show"}, "history"),
        ({"history": ["a"], "target_type": "show", "k": 0}, "k"),
        ({"history": ["a"], "target_type": "show", "k": 101}, "k"),
        ({"history": ["a"], "target_typ": "show"}, "target_typ"),
        ({"history": ["a"], "target_type": "artist"}, "target_type"),
        ({"history": ["a", "zzz"], "target_type": "show"}, "history"),
        ({"history": ["a"], "target_type": "show", "discovery": "sometimes"}, "discovery"),
        ({"history": ["a"], "target_type": "show", "prior_weight": -1}, "prior_weight"),
    ],
)
def test_bad_inputs_answer_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 422
    assert any(field in detail["loc"] for detail in response.json()["detail"]), response.json()


def test_unknown_item_error_points_at_its_position(client: TestClient) -> None:
    detail = client.post("/v1/recommend", json={"history": ["a", "zzz"], "target_type": "show"}).json()[
        "detail"
    ]
    assert detail[0]["loc"] == ["body", "history", 1]
    assert "zzz" in detail[0]["msg"]


def test_limits_come_from_the_config() -> None:
    test_client = make_client(EchoEngine(), limits=Limits(max_history=2, max_query_chars=5))
    try:
        too_long = test_client.post("/v1/recommend", json={"history": ["a", "b", "c"], "target_type": "show"})
        assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "history"]
        assert (
            test_client.post("/v1/search", json={"query": "abcdef", "target_type": "show"}).status_code == 422
        )
        schema = test_client.get("/openapi.json").json()["components"]["schemas"]["RecommendBody"]
        assert schema["properties"]["history"]["maxItems"] == 2
    finally:
        test_client.__exit__(None, None, None)


def test_api_key_accepts_bearer_and_header_and_refuses_others() -> None:
    test_client = make_client(EchoEngine(), api_key="s3cret")
    body = {"query": "x", "target_type": "show"}
    try:
        assert test_client.post("/v1/search", json=body).status_code == 401
        assert test_client.post("/v1/search", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert test_client.post("/v1/search", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert (
            test_client.post("/v1/search", json=body, headers={"Authorization": "Bearer s3cret"}).status_code
            == 200
        )
        assert test_client.get("/metrics").status_code == 401
        assert test_client.get("/healthz").status_code == 200, "probes stay open"
    finally:
        test_client.__exit__(None, None, None)


def test_queue_full_answers_503_with_retry_after() -> None:
    gate = threading.Event()
    engine = EchoEngine(gate)
    test_client = make_client(engine, max_batch=1, queue_size=1, retry_after_s=7)
    body = {"query": "x", "target_type": "show"}
    try:
        results: list[int] = []

        def wait_for(condition: Any) -> None:
            for _ in range(3000):
                if condition():
                    return
                threading.Event().wait(0.01)
            raise AssertionError("timed out")

        def send() -> threading.Thread:
            worker = threading.Thread(
                target=lambda: results.append(test_client.post("/v1/search", json=body).status_code)
            )
            worker.start()
            return worker

        workers = [send()]
        wait_for(engine.entered.is_set)  # the first request is held by the worker thread ...
        workers.append(send())
        wait_for(lambda: test_client.app.state.neo.batcher.depth == 1)  # ... the second fills the queue
        refused = test_client.post("/v1/search", json=body)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "7"
        gate.set()
        for w in workers:
            w.join(30)
        assert results == [200, 200]
    finally:
        gate.set()
        test_client.__exit__(None, None, None)


def test_metrics_count_requests_and_batches(client: TestClient) -> None:
    client.post("/v1/search", json={"query": "x", "target_type": "show"})
    client.post("/v1/search", json={"query": "x", "target_type": "nope"})
    text = client.get("/metrics").text
    assert 'neo_requests_total{route="/v1/search",status="200"} 1.0' in text
    assert 'neo_requests_total{route="/v1/search",status="422"} 1.0' in text
    assert "neo_batch_size_count 1.0" in text
    assert "neo_queue_depth" in text
    assert 'neo_request_latency_seconds_bucket{le="+Inf",route="/v1/search"} 2.0' in text


def test_readiness_reports_loading_and_failure() -> None:
    release = threading.Event()

    def slow_factory() -> EchoEngine:
        release.wait(5)
        raise RuntimeError("checkpoint is broken")

    failures: list[BaseException] = []
    app = create_app(slow_factory, ServeConfig(), on_load_failure=failures.append)
    with TestClient(app) as test_client:
        loading = test_client.get("/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert test_client.post("/v1/search", json={"query": "x", "target_type": "show"}).status_code == 503
        release.set()
        for _ in range(200):
            if failures:
                break
            threading.Event().wait(0.01)
        failed = test_client.get("/readyz").json()
        assert failed["status"] == "failed" and "checkpoint is broken" in failed["detail"]


def test_oversized_body_is_refused(client: TestClient) -> None:
    test_client = make_client(EchoEngine(), max_body_bytes=100)
    try:
        response = test_client.post("/v1/generate", json={"prompt": "x" * 500})
        assert response.status_code == 413
    finally:
        test_client.__exit__(None, None, None)


def test_a_request_that_outlives_its_timeout_answers_504() -> None:
    gate = threading.Event()
    test_client = make_client(EchoEngine(gate), request_timeout_s=0.2)
    try:
        response = test_client.post("/v1/search", json={"query": "x", "target_type": "show"})
        assert response.status_code == 504 and "request_timeout_s=0.2" in response.json()["detail"]
    finally:
        gate.set()
        test_client.__exit__(None, None, None)
