"""A backend streaming from any OpenAI-compatible ``/v1/chat/completions`` endpoint.

One pooled ``httpx.AsyncClient`` per backend, so consecutive requests reuse a warm connection
(the note's pooling optimisation, applied to the model hop too). Failures become ``LLMError``
with the URL and the reason: connect failure, a non-200 status (with the start of the body),
a malformed or truncated SSE stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from travelagent.agent.llm.sse import LLMError, SSEDecoder
from travelagent.wire.trace import Trace

DEFAULT_MODEL = "gpt-4o-mini"


def completions_url(base_url: str) -> str:
    """``http://h:p/v1`` -> ``.../v1/chat/completions``; a bare host gets ``/v1`` added."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return base + "/chat/completions"


class OpenAILLM:
    """``LLMBackend`` over an OpenAI-compatible chat completions API (streamed)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"LLM base URL must start with http:// or https://, got {base_url!r}")
        self.url = completions_url(base_url)
        self.model = model or DEFAULT_MODEL
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    async def stream(
        self, messages: list[dict[str, str]], *, trace: Trace | None, process: str
    ) -> AsyncIterator[str]:
        body = {"model": self.model, "messages": messages, "stream": True}
        first = True
        try:
            async with self._client.stream("POST", self.url, content=json.dumps(body)) as resp:
                if resp.status_code != 200:
                    detail = (await resp.aread())[:300].decode(errors="replace")
                    raise LLMError(f"{self.url} returned HTTP {resp.status_code}: {detail}")
                decoder = SSEDecoder()
                async for line in resp.aiter_lines():
                    for piece in decoder.feed_line(line.rstrip("\r")):
                        if first and trace is not None:
                            trace.stamp("llm.first", process)
                        first = False
                        yield piece
                    if decoder.done:
                        break
                for piece in decoder.end():
                    yield piece
        except httpx.ConnectError as err:
            raise LLMError(f"cannot connect to the LLM endpoint {self.url}: {err}") from err
        except httpx.TimeoutException as err:
            raise LLMError(f"the LLM endpoint {self.url} timed out: {err!r}") from err
        except httpx.HTTPError as err:
            raise LLMError(f"HTTP error talking to {self.url}: {err!r}") from err
        if trace is not None:
            if first:
                trace.stamp("llm.first", process)
            trace.stamp("llm.done", process)

    async def aclose(self) -> None:
        await self._client.aclose()
