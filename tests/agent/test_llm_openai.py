from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from travelagent.agent.cli import add_llm_arguments, llm_from_args
from travelagent.agent.directory import LocalAgentDirectory
from travelagent.agent.llm import LLMError, make_llm
from travelagent.agent.llm.openai import OpenAILLM, completions_url
from travelagent.agent.llm.sse import SSEDecoder
from travelagent.wire.trace import Trace

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def sse_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    obj = {
        "object": "chat.completion.chunk",
        "choices": [{"delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(obj)}\n\n".encode()


@pytest.fixture
async def fake_endpoint(port: int) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An OpenAI-compatible server whose behaviour a test picks by setting ``state["mode"]``."""
    state: dict[str, Any] = {"mode": "ok", "requests": []}

    async def completions(request: web.Request) -> web.StreamResponse:
        state["requests"].append((dict(request.headers), await request.json()))
        mode = state["mode"]
        if mode == "401":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "ok":
            await resp.write(b": keep-alive\n\n")
            for piece in ["Hel", "lo", " there"]:
                await resp.write(sse_chunk(piece))
            await resp.write(sse_chunk(finish="stop") + b"data: [DONE]\n\n")
        elif mode == "malformed":
            await resp.write(sse_chunk("Hel") + b"data: {not json\n\n")
        elif mode == "truncated":
            await resp.write(sse_chunk("Hel"))
        elif mode == "error-event":
            await resp.write(b'data: {"error": {"message": "overloaded"}}\n\n')
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        await runner.cleanup()


async def collect(llm: Any, trace: Trace | None = None) -> list[str]:
    return [c async for c in llm.stream(MESSAGES, trace=trace, process="worker")]


async def test_streams_content_deltas_and_stamps_first_token_and_done(fake_endpoint: Any) -> None:
    url, state = fake_endpoint
    llm = make_llm("openai", base_url=url, model="tiny", api_key="sk-test")
    trace = Trace.start()
    try:
        assert await collect(llm, trace) == ["Hel", "lo", " there"]
    finally:
        await llm.aclose()
    headers, body = state["requests"][0]
    assert body == {"model": "tiny", "messages": MESSAGES, "stream": True}
    assert headers["Authorization"] == "Bearer sk-test"
    assert [n for n, _, _ in trace.stamps] == ["llm.first", "llm.done"]


async def test_non_200_is_an_error_naming_the_status_and_body(fake_endpoint: Any) -> None:
    url, state = fake_endpoint
    state["mode"] = "401"
    llm = OpenAILLM(base_url=url)
    try:
        with pytest.raises(LLMError, match=r"HTTP 401.*bad key"):
            await collect(llm)
    finally:
        await llm.aclose()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("malformed", "malformed SSE data"),
        ("truncated", "ended before"),
        ("error-event", "overloaded"),
    ],
)
async def test_broken_streams_are_clear_errors(fake_endpoint: Any, mode: str, reason: str) -> None:
    url, state = fake_endpoint
    state["mode"] = mode
    llm = OpenAILLM(base_url=url)
    try:
        with pytest.raises(LLMError, match=reason):
            await collect(llm)
    finally:
        await llm.aclose()


async def test_connect_failure_is_a_clear_error(port: int) -> None:
    llm = OpenAILLM(base_url=f"http://127.0.0.1:{port}/v1")  # nothing listens there
    try:
        with pytest.raises(LLMError, match="cannot connect"):
            await collect(llm)
    finally:
        await llm.aclose()


def test_completions_url_accepts_the_usual_base_url_shapes() -> None:
    assert completions_url("http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert completions_url("http://h:1/") == "http://h:1/v1/chat/completions"
    assert completions_url("https://x/openai/v1/") == "https://x/openai/v1/chat/completions"
    assert completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    with pytest.raises(ValueError, match="http"):
        OpenAILLM(base_url="localhost:8000")


def test_sse_decoder_joins_multi_line_data_and_ignores_other_fields() -> None:
    d = SSEDecoder()
    out: list[str] = []
    for line in [
        "event: message",
        "id: 1",
        'data: {"choices": [{"delta":',
        'data: {"content": "x"}}]}',
        "",
        "data: [DONE]",
        "",
        'data: {"choices": [{"delta": {"content": "after done"}}]}',
        "",
    ]:
        out += d.feed_line(line)
    assert out == ["x"] and d.done
    assert d.end() == []


async def test_cli_flags_build_an_openai_backend_with_the_key_from_the_environment(
    fake_endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = fake_endpoint
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TRAVELAGENT_LLM_API_KEY", "sk-env")
    parser = argparse.ArgumentParser()
    add_llm_arguments(parser)
    args = parser.parse_args(["--llm", "openai", "--llm-base-url", url, "--llm-model", "m1"])
    llm = llm_from_args(args)
    try:
        assert "".join(await collect(llm)) == "Hello there"
    finally:
        await llm.aclose()
    headers, body = state["requests"][0]
    assert headers["Authorization"] == "Bearer sk-env" and body["model"] == "m1"


async def test_an_agent_answers_through_the_openai_backend_and_commits_the_reply(
    fake_endpoint: Any, tmp_path: Path
) -> None:
    url, state = fake_endpoint
    d = LocalAgentDirectory(tmp_path / "a.db", llm=OpenAILLM(base_url=url))
    trace = Trace.start()
    try:
        assert await d.get("u1").handle_message("hi there", trace=trace) == "Hello there"
        assert (await d.get("u1").state()).recent_messages[-1]["content"] == "Hello there"
    finally:
        await d.close()
    sent = state["requests"][0][1]["messages"]
    assert sent[0]["role"] == "system" and sent[-1] == {"role": "user", "content": "hi there"}
    assert [n for n, _, _ in trace.stamps] == ["agent.start", "llm.first", "llm.done", "agent.done"]
