"""The OpenAPI documents in docs/openapi/, run by schemathesis against the real servers.

The realtime service and a worker (simulated LLM, publishing to that realtime service) run on
free 127.0.0.1 ports in a thread of their own, so schemathesis calls them over real sockets.
Every operation gets a bounded number of schema-valid and schema-invalid requests; each answer
must not be a 5xx, must have a documented status and must match its documented schema.

Webhook requests that carry any ``webhook-*`` header are signed with the worker's secret (so
valid events reach the agent and are published), and otherwise an ``X-API-Key`` is replaced by
the real key (so publish-proxy requests get past it); the rest stay as generated (401).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import free_port
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from worker_helpers import running_worker

from travelagent.config import API_KEY_ENV, WEBHOOK_SECRET_ENV, secret
from travelagent.realtime.config import RealtimeConfig
from travelagent.realtime.testing import running_realtime
from travelagent.wire.webhooks import signed_headers

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi"
EXAMPLES_PER_MODE = 25  # positive and negative: 50 per operation
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


class Servers:
    """The realtime service and a worker publishing to it, on their own event loop."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.realtime_port, self.worker_port = free_port(), free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()

    async def _start(self) -> None:
        config = RealtimeConfig.from_env(port=self.realtime_port, webhook_url="")
        await self._stack.enter_async_context(running_realtime(config))
        await self._stack.enter_async_context(
            running_worker(
                self.worker_port,
                self.tmp / "agents.sqlite3",
                realtime_url=f"http://127.0.0.1:{self.realtime_port}",
            )
        )

    def __enter__(self) -> Servers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stack.aclose(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with Servers(tmp_path_factory.mktemp("openapi")) as running:
        yield running


def prepare(case: Any, path: str) -> tuple[bytes | None, dict[str, str]]:
    """The exact body bytes and the headers to send for ``case``."""
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    raw = case.body
    if raw is schemathesis.core.NOT_SET:
        body = None
    elif isinstance(raw, bytes | str):  # negative cases may send a body that is not JSON
        body = raw.encode() if isinstance(raw, str) else raw
    else:
        body = json.dumps(raw).encode()
    if body is not None:
        headers.setdefault("content-type", case.media_type or "application/json")
    if path.startswith("/api/") and path != "/api/realtime/webhook":
        headers["X-API-Key"] = secret(API_KEY_ENV)
    if path == "/api/realtime/webhook":
        if any(k.startswith("webhook-") for k in headers):  # the Standard Webhooks form
            signed = signed_headers(
                secret(WEBHOOK_SECRET_ENV),
                body or b"",
                msg_id=headers.get("webhook-id") or None,
                now_s=int(time.time()),
            )
            headers.update({k: v for k, v in signed.items() if k != "content-type"})
        elif "X-API-Key" in headers:  # the publish-proxy form
            headers["X-API-Key"] = secret(API_KEY_ENV)
    return body, headers


def exercise(
    operation: Any, mode: GenerationMode, http: httpx.Client, counts: Counter[str]
) -> None:
    """Up to EXAMPLES_PER_MODE generated requests to one operation, each answer checked."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        body, headers = prepare(case, case.path)
        response = http.request(
            case.method, case.formatted_path, params=case.query, content=body, headers=headers
        )
        counts[label] += 1
        counts[f"{label} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        # An operation with nothing to get wrong (GET /healthz) has no invalid requests.
        assert mode is GenerationMode.NEGATIVE, label


def run_document(name: str, base_url: str) -> Counter[str]:
    """Every operation of ``docs/openapi/<name>``; returns requests made per operation."""
    schema = schemathesis.openapi.from_path(DOCS / name)
    counts: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for result in schema.get_all_operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                exercise(result.ok(), mode, http, counts)  # type: ignore[union-attr]
    return counts


@pytest.mark.slow
def test_the_realtime_server_api_matches_its_document_and_never_answers_5xx(
    servers: Servers,
) -> None:
    counts = run_document("realtime.yaml", f"http://127.0.0.1:{servers.realtime_port}")
    assert {k for k in counts if not k[-1].isdigit()} == {
        "POST /api/publish",
        "POST /api/broadcast",
        "POST /api/presence",
        "POST /api/presence_stats",
        "POST /api/history",
        "POST /api/info",
        "GET /healthz",
    }
    print("realtime requests per operation:", dict(counts))


@pytest.mark.slow
def test_the_worker_routes_match_their_document_and_never_answer_5xx(servers: Servers) -> None:
    counts = run_document("worker.yaml", f"http://127.0.0.1:{servers.worker_port}")
    assert {k for k in counts if not k[-1].isdigit()} == {
        "POST /api/realtime/webhook",
        "GET /healthz",
    }
    print("worker requests per operation:", dict(counts))
