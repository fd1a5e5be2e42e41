"""``RemoteAgentDirectory``: agents that live in a separate agent host (``serve agents``).

Transport choice: pooled HTTP RPC with one ``httpx.AsyncClient`` (keep-alive), not one
WebSocket per agent. The number of open connections is then bounded by the pool (not by the
number of agents a worker has ever seen), request and reply are paired by HTTP itself (no
message-id multiplexing to get wrong), a failure costs one request rather than a socket shared
by queued messages, and the pool is exactly the note's "HTTP connection pooling" optimisation
applied to the worker-to-agent hop. Streaming uses the NDJSON form of the same route.

Each remote agent keeps a local FIFO lock around its requests: two pooled connections could
otherwise deliver messages to the host out of order, and the host's input gate can only
preserve the order in which messages reach it.

Retries: a request that fails in transport (connection refused or reset, the stream cut off)
is sent again, with backoff, until ``retry_s`` after the first attempt, when the turn has a
key (its message id, or its trace id). The host keys turns by it, so a retried delivery never
runs the agent twice: it joins the run still going, replays the stored reply, or resumes a turn
whose question was committed. A stream retried after some chunks were passed on passes on only
what comes after them. When the retries give up, the caller gets an ``AgentError``, which the
worker turns into an explicit error for the client. A reply read that stalls longer than
``read_timeout_s`` (a connection silently gone) counts as a transport failure too.

Traces: the host stamps ``agent.start``/``llm.*``/``agent.done`` with process ``agents`` and
returns the whole trace; the caller's ``Trace`` is updated in place (its stamps replaced by the
returned ones), so the worker's record holds the whole path.

Listeners: the host keeps each agent's itinerary events and returns them on the next RPC reply
(``"events"``); the remote agent hands them to its listeners in order, off the reply's path. An
event therefore reaches a remote listener with the reply to the message that caused it (or, if
messages race, a later one), never before its commit and never twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast
from urllib.parse import quote

import httpx

from travelagent.agent.base import AgentListener, ReplySink
from travelagent.agent.travel_agent import AgentError
from travelagent.agent.turns import Replies, StoredReply, TurnState, UnknownMessage
from travelagent.logsafe import esc
from travelagent.wire import agent_rpc as rpc
from travelagent.wire.gateway import MAX_USER_ID_CHARS, valid_user_id
from travelagent.wire.trace import Trace

log = logging.getLogger(__name__)

DEFAULT_RETRY_S = 3.0
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 1.0


class _Retry:
    """Backoff between attempts of one request, bounded by a deadline."""

    def __init__(self, retry_s: float, keyed: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + (retry_s if keyed else 0.0)
        self.delay_s = RETRY_INITIAL_S
        self.attempts = 0

    async def again(self, err: Exception, name: str) -> None:
        """Wait before the next attempt, or raise the AgentError that ends the request."""
        self.attempts += 1
        if self.loop.time() + self.delay_s > self.deadline:
            tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
            raise AgentError(f"agent host unreachable{tries}: {err!r}") from err
        log.info("agent %s: host request failed (%r); retrying", esc(name), err)
        await asyncio.sleep(self.delay_s)
        self.delay_s = min(self.delay_s * 2, RETRY_MAX_S)


def _merge_trace(trace: Trace | None, body: dict[str, Any]) -> None:
    if trace is None:
        return
    try:
        returned = rpc.returned_trace(body)
    except rpc.RpcError as err:
        raise AgentError(str(err)) from None
    if returned is not None:
        trace.stamps[:] = returned.stamps


class RemoteAgent:
    """One TravelAgent in the agent host, spoken to over pooled RPC."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        *,
        process: str,
        retry_s: float = DEFAULT_RETRY_S,
    ) -> None:
        self.name = name
        self.retry_s = retry_s
        self.retries = 0
        self.process = process
        self.url = rpc.AGENT_ROUTE.format(name=quote(name, safe="")) + "/rpc"
        self._client = client
        self._order = asyncio.Lock()  # FIFO, see the module docstring
        self._listeners: list[AgentListener] = []
        self._announcing: asyncio.Task[None] | None = None

    def _body(
        self, text: str, trace: Trace | None, stream: bool, msg_id: str | None
    ) -> dict[str, Any]:
        return rpc.request_body(text, trace, stream, msg_id)

    def _error(self, resp_status: int, body: bytes) -> AgentError:
        return AgentError(f"agent host: HTTP {resp_status}: {rpc.error_reason(body)}")

    async def handle_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> str:
        async with self._order:
            body = self._body(text, trace, False, msg_id)
            retry = _Retry(self.retry_s, keyed=msg_id is not None or trace is not None)
            while True:
                try:
                    resp = await self._client.post(self.url, json=body)
                    break
                except httpx.TransportError as err:
                    await retry.again(err, self.name)
                    self.retries += 1
                except httpx.HTTPError as err:
                    raise AgentError(f"agent host unreachable: {err!r}") from err
            if resp.status_code != 200:
                raise self._error(resp.status_code, resp.content)
            try:
                done = rpc.parse_reply(resp.json())
            except (json.JSONDecodeError, rpc.RpcError):
                raise AgentError("agent host sent a malformed reply") from None
            _merge_trace(trace, done.body)
            self._deliver(done.body)
            return done.text

    async def stream_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> AsyncGenerator[str, None]:
        async with self._order:
            body = self._body(text, trace, True, msg_id)
            retry = _Retry(self.retry_s, keyed=msg_id is not None or trace is not None)
            passed = 0  # characters already passed on: a retry's reply repeats them
            while True:
                seen = 0
                try:
                    async with self._client.stream("POST", self.url, json=body) as resp:
                        if resp.status_code != 200:
                            raise self._error(resp.status_code, await resp.aread())
                        async for line in resp.aiter_lines():
                            if not line.strip():
                                continue
                            try:
                                item = rpc.parse_stream_line(line)
                            except rpc.RpcError as err:
                                raise AgentError(str(err)) from None
                            if isinstance(item, rpc.Chunk):
                                text_ = item.text
                                start, seen = seen, seen + len(text_)
                                if seen > passed:
                                    fresh = text_[max(0, passed - start) :]
                                    passed = seen
                                    yield fresh
                            elif isinstance(item, rpc.Done):
                                _merge_trace(trace, item.body)
                                self._deliver(item.body)
                                return
                            elif isinstance(item, rpc.Failed):
                                _merge_trace(trace, item.body)
                                raise AgentError(item.error)
                except httpx.TransportError as err:
                    await retry.again(err, self.name)
                    self.retries += 1
                    continue
                except httpx.HTTPError as err:
                    raise AgentError(f"agent host unreachable: {err!r}") from err
                raise AgentError("agent host ended the stream without a final line")

    async def on_message(
        self,
        sink: ReplySink,
        text: str,
        *,
        trace: Trace | None,
        stream: bool,
        msg_id: str | None = None,
    ) -> None:
        try:
            if not stream:
                reply = await self.handle_message(text, trace=trace, msg_id=msg_id)
            else:
                parts: list[str] = []
                started = False
                async for chunk in self.stream_message(text, trace=trace, msg_id=msg_id):
                    if not started:
                        await sink.start()
                        started = True
                    parts.append(chunk)
                    await sink.chunk(chunk)
                if not started:
                    await sink.start()
                reply = "".join(parts)
        except AgentError as err:
            await sink.error(str(err), trace)
            return
        if stream:
            await sink.complete(reply, trace)
        else:
            await sink.response(reply, trace)

    def add_listener(self, listener: AgentListener) -> None:
        self._listeners.append(listener)

    async def replies_after(self, after: str | None, ids: Sequence[str] = ()) -> Replies:
        url = rpc.REPLIES_ROUTE.format(name=quote(self.name, safe=""))
        try:
            resp = await self._client.post(url, json=rpc.replies_request_body(after, ids))
        except httpx.HTTPError as err:
            raise AgentError(f"agent host unreachable: {err!r}") from err
        if resp.status_code == 404:
            raise UnknownMessage(rpc.error_reason(resp.content))
        if resp.status_code != 200:
            raise self._error(resp.status_code, resp.content)
        try:
            replies, pending = rpc.parse_replies(resp.json())
        except (json.JSONDecodeError, rpc.RpcError):
            raise AgentError("agent host sent malformed replies") from None
        return Replies(
            [StoredReply(m, "done", q, r) for m, q, r in replies],
            {k: cast(TurnState, v) for k, v in pending.items()},
        )

    def _deliver(self, data: dict[str, Any]) -> None:
        """Hand the itinerary events a reply carried to the listeners, in order, off the
        reply's path (as a local agent does)."""
        events = data.get("events")
        if not isinstance(events, list) or not events or not self._listeners:
            return
        previous = self._announcing

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            for event in events:
                for listener in list(self._listeners):
                    try:
                        await listener(event)
                    except Exception:
                        log.exception("agent %s: itinerary listener failed", esc(self.name))

        self._announcing = asyncio.get_running_loop().create_task(run())

    async def flush_listeners(self) -> None:
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)


class RemoteAgentDirectory:
    def __init__(
        self,
        base_url: str,
        *,
        process: str = "worker",
        timeout_s: float = 120.0,
        read_timeout_s: float = 30.0,
        retry_s: float = DEFAULT_RETRY_S,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        """``token``: the agent host's bearer token (default: ``TRAVELAGENT_AGENT_HOST_TOKEN``,
        or its development value). ``read_timeout_s``: the longest wait for the next bytes of
        a reply (a stream's next line) before the request counts as failed in transport and is
        retried (``retry_s``, the module docstring)."""
        from travelagent.config import AGENT_HOST_TOKEN_ENV, secret
        from travelagent.http_auth import bearer_headers

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"agent host URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.process = process
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s), read=read_timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            headers=bearer_headers(token or secret(AGENT_HOST_TOKEN_ENV)),
        )
        self.retry_s = retry_s
        self._agents: dict[str, RemoteAgent] = {}

    def get(self, name: str) -> RemoteAgent:
        if not valid_user_id(name):
            raise ValueError(
                f"agent name must be 1-{MAX_USER_ID_CHARS} printable characters, no '/'"
            )
        agent = self._agents.get(name)
        if agent is None:
            agent = self._agents[name] = RemoteAgent(
                name, self._client, process=self.process, retry_s=self.retry_s
            )
        return agent

    async def close(self) -> None:
        await asyncio.gather(*(a.flush_listeners() for a in self._agents.values()))
        await self._client.aclose()
