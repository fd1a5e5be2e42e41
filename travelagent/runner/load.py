"""Steady light load from asyncio users, for chaos phases and soaks.

Each user is a closed loop (send, wait for the whole reply or its end, think, again) on one of
the project's asyncio clients. A user whose message did not end ``ok`` drops its connection and
opens a new one before the next message (after a fault the old socket may be dead); a connect
that fails is retried every ``retry_s`` until the load stops. Every message the clients
started is recorded (``client.records.Recorder``), and every final reply the client received
is counted per message id (``finals``), so a reply delivered twice shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from travelagent.client.aio_core import AsyncClient
from travelagent.client.records import MessageRecord, Recorder
from travelagent.client.replies import PendingSet, start_message
from travelagent.runner.messages import load_mix, message_rng

CONNECT_RETRY_S = 0.2


@dataclass(frozen=True)
class UserLoad:
    users: int = 3
    think_ms: float = 100.0
    timeout_s: float = 6.0
    message_mix: str = "short"
    rotate_every: int = 20  # a new user (agent) after this many messages; 0 = never


@dataclass
class Target:
    """Where the users connect and how: one path of a running topology."""

    arch: str  # gateway | realtime
    url: str
    jwt_secret: str
    run: str
    cell: str
    publish: str = ""
    stream: bool = True


@dataclass
class LoadState:
    """What a load produced, besides the records."""

    finals: Counter[str] = field(default_factory=Counter)
    connect_failures: Counter[str] = field(default_factory=Counter)
    client_exceptions: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    # Set to ask every user to reset its socket at its next reply chunk (mid-reply), once.
    reset_mid_reply: asyncio.Event | None = None
    resets_done: int = 0
    stop_at: float = 0.0  # time.monotonic() when users stop sending; may be moved while running
    # Set when a fault is over: each user then starts at least one message after it (so the
    # recovery shows), if need be past stop_at, but not past stop_at + 2 timeouts.
    cleared_at: float | None = None


def reset_socket(client: AsyncClient) -> bool:
    """Reset the client's TCP connection at once (RST, no close handshake); True if it had one.

    Reaches the socket under the client's WebSocket on purpose: this is the fault a phone
    losing its network mid-reply causes, seen from the client's side."""
    ws: Any = getattr(client, "_ws", None)
    if ws is None:
        cf = getattr(client, "centrifugo", None)
        ws = getattr(cf, "_ws", None)
    transport = getattr(ws, "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


def raised_record(target: Target, user_id: str, timeout_s: float, why: str) -> MessageRecord:
    """The record of a message the client raised on before it started it: ``error``, ``why``."""
    p = start_message(
        run=target.run, cell=target.cell, arch=target.arch, publish=target.publish,
        stream=target.stream, user_id=user_id, timeout_s=timeout_s,
    )  # fmt: skip
    left = PendingSet()
    left.add(p)
    return left.fail_all("error", why)[0]


def make_client(
    target: Target, user_id: str, timeout_s: float, on_chunk: Callable[[str], None]
) -> AsyncClient:
    if target.arch == "gateway":
        from travelagent.client.aio_gateway import AsyncGatewayClient

        return AsyncGatewayClient(
            target.url, user_id, run=target.run, cell=target.cell, stream=target.stream,
            timeout_s=timeout_s, on_chunk=on_chunk, jwt_secret=target.jwt_secret,
        )  # fmt: skip
    if target.arch == "realtime":
        from travelagent.client.aio_realtime import AsyncRealtimeClient

        return AsyncRealtimeClient(
            target.url, user_id, jwt_secret=target.jwt_secret, run=target.run, cell=target.cell,
            publish=target.publish, stream=target.stream, timeout_s=timeout_s, on_chunk=on_chunk,
        )  # fmt: skip
    raise ValueError(f"no load client for arch {target.arch!r} (gateway, realtime)")


def _count_finals(client: AsyncClient, finals: Counter[str]) -> None:
    """Count every final reply the client's transport hands over, per message id, even one for
    a message already finished (which the client itself ignores)."""
    pending: Any = client.pending
    handle = pending.handle

    def counting(ev: Any) -> Any:
        if ev.kind == "final" and ev.msg_id:
            finals[ev.msg_id] += 1
        return handle(ev)

    pending.handle = counting


async def _user(
    k: int,
    prefix: str,
    target: Target,
    load: UserLoad,
    recorder: Recorder,
    state: LoadState,
    seed: int,
) -> None:
    texts = load_mix(load.message_mix)
    rng = message_rng(seed, k)
    client: AsyncClient | None = None
    generation, in_generation = 0, 0
    reset_armed = True

    def on_chunk(_text: str) -> None:
        nonlocal reset_armed
        ev = state.reset_mid_reply
        if reset_armed and ev is not None and ev.is_set() and client is not None:
            reset_armed = False
            if reset_socket(client):
                state.resets_done += 1

    try:
        sent_after_clear = False

        def go_on() -> bool:
            now = time.monotonic()
            if now < state.stop_at:
                return True
            owed = state.cleared_at is not None and not sent_after_clear
            return owed and now < state.stop_at + 2 * load.timeout_s

        while go_on():
            if load.rotate_every and in_generation >= load.rotate_every:
                generation, in_generation = generation + 1, 0
                if client is not None:
                    await _close(client)
                    client = None
            user_id = f"{prefix}-u{k}" + (f"g{generation}" if generation else "")
            if client is None:
                c = make_client(target, user_id, load.timeout_s, on_chunk)
                try:
                    await asyncio.wait_for(c.connect(), timeout=load.timeout_s)
                except Exception as err:  # refused, reset, timed out: the fault is on
                    state.connect_failures[f"{type(err).__name__}: {err}"[:120]] += 1
                    await _close(c)
                    await asyncio.sleep(CONNECT_RETRY_S)
                    continue
                _count_finals(c, state.finals)
                client = c
            if state.cleared_at is not None and time.monotonic() >= state.cleared_at:
                sent_after_clear = True
            try:
                recs: list[MessageRecord] = [await client.request(texts[rng.randrange(len(texts))])]
            except Exception as err:  # the client raised instead of ending the message:
                # what it started ends as an error the user saw (the exception), recorded
                why = f"client raised {type(err).__name__}: {err}"
                recs = list(client.pending.fail_all("error", why[:200]))
                if not recs:  # it raised before starting one: the attempt is still counted
                    recs = [raised_record(target, user_id, load.timeout_s, why[:200])]
                state.client_exceptions[why[:120]] += 1
            state.sent += len(recs)
            in_generation += 1
            for rec in recs:
                recorder.add(rec)
            if not recs or any(r.status != "ok" for r in recs):
                await _close(client)
                client = None
            if load.think_ms:
                await asyncio.sleep(load.think_ms / 1000)
    finally:
        if client is not None:
            await _close(client)


async def _close(client: AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout=2.0)


async def run_users(
    target: Target,
    load: UserLoad,
    recorder: Recorder,
    state: LoadState,
    *,
    prefix: str,
    duration_s: float,
    seed: int = 1,
) -> None:
    """Run ``load.users`` users for ``duration_s`` (or until ``state.stop_at``, if it is moved
    meanwhile); returns when every message they started has ended (each within its timeout)."""
    state.stop_at = time.monotonic() + duration_s
    await asyncio.gather(
        *(_user(k, prefix, target, load, recorder, state, seed) for k in range(load.users))
    )
