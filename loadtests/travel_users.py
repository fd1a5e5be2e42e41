"""Locust users for the three paths: ``GatewayUser``, ``RealtimeUser``, ``HybridUser``.

Closed loop (``--pace closed``): send, await the reply, think ``--think-ms``, repeat.
Open loop (``--pace open``): a sender keeps a fixed schedule of ``--rate-per-user`` messages per
second whatever the replies do, and a receiver greenlet matches replies to messages; each record
carries its intended send time. Messages still in flight when a user stops are given up to
``--stop-timeout`` (at most ``--timeout-s``) and otherwise end as ``stopped`` (cut short by the
stop, not a failure); none is dropped.

A user whose socket drops mid-reply does not lose the message to it: the clients reconnect by
themselves (the gateway ones resume after the last reply seen and resend under the same ids;
the realtime ones resubscribe with recovery), so a message ends ``ok``, ``error`` with the
reason the client was told, ``timeout``, ``lost`` (see docs/load.md) or ``stopped``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import gevent
from locust import User, task
from travel_load import (
    RECORDS,
    STOPPED,
    next_user_id,
    options,
    path_name,
    record,
    stream_flag,
)

from travelagent.client.records import MessageRecord
from travelagent.client.sync_gateway import GatewayClient
from travelagent.client.sync_realtime import RealtimeClient
from travelagent.runner.messages import load_mix, message_rng
from travelagent.runner.pacing import Pacer, start_offset_s
from travelagent.wire.trace import now_ns

logger = logging.getLogger("travelagent.load")


class TravelUser(User):
    abstract = True
    arch = ""

    def wait_time(self) -> float:
        opts = options(self.environment)
        if opts.pace == "open":
            return 0.0
        return max(float(opts.think_ms), 0.0) / 1000

    def on_start(self) -> None:
        opts = options(self.environment)
        self.opts = opts
        self.user_id, self.user_number = next_user_id(opts)
        self.texts = load_mix(opts.message_mix)
        self.message_seed = int(getattr(opts, "message_seed", 0) or 0)
        self.rng = message_rng(self.message_seed, self.user_number)
        self.stream = stream_flag(opts)
        self.name = path_name(
            self.arch, opts.publish if self.arch == "realtime" else "", self.stream
        )
        self.stop_event = threading.Event()
        self.stopping = False
        self.greenlets: list[Any] = []
        self.pacer: Pacer | None = None
        self.client: Any = self.make_client()
        if opts.pace != "open":  # a light-load cell starts without a burst of first messages
            users = int(getattr(opts, "num_users", 0) or 1)
            spread_ms = float(getattr(opts, "start_spread_ms", 0.0) or 0.0)
            gevent.sleep(start_offset_s(self.user_number, users, spread_ms))

    def make_client(self) -> Any:
        raise NotImplementedError

    def common(self) -> dict[str, Any]:
        publish = self.opts.publish if self.arch == "realtime" else ""
        return {
            "run": self.opts.run_id,
            "cell": self.opts.cell,
            "publish": publish,
            "stream": self.stream,
            "timeout_s": self.opts.timeout_s,
            "on_done": self.done,
        }

    def done(self, rec: MessageRecord) -> None:
        if self.stopping and rec.status == "lost":
            # closed by us because the user was stopped, not by the server or the network
            rec.status, rec.error = STOPPED, "cut short by the stop"
        record(self.environment, rec, self.name)

    def text(self) -> str:
        return self.rng.choice(self.texts)

    def ensure_connected(self) -> bool:
        if self.client.connected:
            return True
        t0 = now_ns()
        try:
            self.client.connect()
            return True
        except Exception as err:  # a refused connection is a result, not a crash
            self.environment.events.request.fire(
                request_type="CONNECT",
                name=self.arch,
                response_time=(now_ns() - t0) / 1e6,
                response_length=0,
                exception=err,
                context={},
            )
            gevent.sleep(min(1.0, self.opts.timeout_s))
            return False

    def start_open_loop(self) -> Pacer:
        """The schedule starts once connected, so connection set-up is not counted as lateness."""
        opts = self.opts
        seed = message_rng(self.message_seed, self.user_number, "arrivals").getrandbits(63)
        self.pacer = Pacer(opts.rate_per_user, now_ns(), arrivals=opts.arrivals, seed=seed)
        self.greenlets.append(gevent.spawn(self.client.receive_forever, self.stop_event))
        return self.pacer

    @task
    def talk(self) -> None:
        if not self.ensure_connected():
            return
        if self.opts.pace != "open":
            self.client.request(self.text())
            return
        if self.pacer is None:
            self.start_open_loop()
        assert self.pacer is not None
        late_before = self.pacer.late
        for intended in self.pacer.due(now_ns()):
            self.client.send(self.text(), intended_ns=intended)
            RECORDS.sends += 1
        RECORDS.late_sends += self.pacer.late - late_before
        gevent.sleep(self.pacer.sleep_s(now_ns()))

    def on_stop(self) -> None:
        try:
            # Replies still in flight get up to --stop-timeout (and --timeout-s) to arrive: in
            # the open loop the receiver greenlet takes them; a closed-loop request cut short
            # when the cell ended is read here, so the end of a cell does not count as loss.
            grace_s = min(float(self.environment.stop_timeout or 0), self.opts.timeout_s)
            deadline = now_ns() + int(grace_s * 1e9)
            while len(self.client.pending) and now_ns() < deadline:
                if self.pacer is None:
                    self.client.pump(0.05)
                else:
                    gevent.sleep(0.01)
        finally:
            self.stop_event.set()
            # Receivers first, then the sockets they read: closing a socket under a greenlet
            # that waits on it leaves libev a watcher on a dead descriptor (an abort, once).
            gevent.killall(self.greenlets, block=True, timeout=2.0)
            self.stopping = True
            self.client.close()  # whatever is still in flight is recorded as stopped
            self.close_extra()

    def close_extra(self) -> None:
        pass


class GatewayUser(TravelUser):
    """Talks to the agent over the Worker's gateway WebSocket."""

    arch = "gateway"

    def make_client(self) -> Any:
        url = self.opts.gateway_url or self.environment.host or "http://127.0.0.1:8787"
        return GatewayClient(url, self.user_id, **self.common())


class RealtimeUser(TravelUser):
    """Talks to the agent through the realtime service (publish, webhook, agent publishes)."""

    arch = "realtime"

    def make_client(self) -> Any:
        url = self.opts.realtime_url or "http://127.0.0.1:8000"
        return RealtimeClient(url, self.user_id, jwt_secret=self.opts.jwt_secret, **self.common())


class HybridUser(TravelUser):
    """The agent through the gateway; presence through a realtime room (join/leave counted)."""

    arch = "hybrid"

    def make_client(self) -> Any:
        url = self.opts.gateway_url or self.environment.host or "http://127.0.0.1:8787"
        client = GatewayClient(url, self.user_id, arch="hybrid", **self.common())
        self.presence = RealtimeClient(
            self.opts.realtime_url or "http://127.0.0.1:8000",
            self.user_id,
            jwt_secret=self.opts.jwt_secret,
            agent=False,
            rooms=(f"room:{self.opts.room}",),
            on_push=self.pushed,
        )
        self.presence_started = False
        return client

    def pushed(self, kind: str, channel: str) -> None:
        self.environment.events.request.fire(
            request_type="PUSH",
            name=f"room:{kind}",
            response_time=0,
            response_length=0,
            exception=None,
            context={"channel": channel},
        )

    def ensure_connected(self) -> bool:
        if not self.presence_started:
            try:
                self.presence.connect()
            except Exception as err:
                self.environment.events.request.fire(
                    request_type="CONNECT",
                    name="hybrid:presence",
                    response_time=0,
                    response_length=0,
                    exception=err,
                    context={},
                )
                gevent.sleep(min(1.0, self.opts.timeout_s))
                return False
            self.presence_started = True
            self.greenlets.append(gevent.spawn(self.presence.receive_forever, self.stop_event))
        return super().ensure_connected()

    def close_extra(self) -> None:
        self.presence.close()


CLASSES_BY_ARCH: dict[str, type[TravelUser]] = {
    "gateway": GatewayUser,
    "realtime": RealtimeUser,
    "hybrid": HybridUser,
}
