"""Client factories for every case, all built on the project's asyncio clients."""

from __future__ import annotations

from travelagent.bench.trial import ClientFactory
from travelagent.client.aio_gateway import AsyncGatewayClient
from travelagent.client.aio_realtime import AsyncRealtimeClient
from travelagent.client.replies import Pending, start_message
from travelagent.wire import gateway as gw

TIMEOUT_S = 10.0


class UntracedGatewayClient(AsyncGatewayClient):
    """The gateway client minus the trace: its frames carry no ``trace`` key.

    The worker then starts a trace of its own (its stamps and the reply's trace stay), so the
    difference to the ordinary client is what a client-sent trace costs: its encoding, parsing
    and copying at every hop.
    """

    async def send(self, text: str, *, intended_ns: int | None = None) -> Pending:
        if self._ws is None:
            raise RuntimeError("connect() first")
        p = start_message(
            run=self.run, cell=self.cell, arch=self.arch, publish="", stream=self.stream,
            user_id=self.user_id, timeout_s=self.timeout_s, intended_ns=intended_ns,
        )  # fmt: skip
        self.pending.add(p)
        frame = gw.message_frame(
            text, user_id=self.user_id, msg_id=p.record.msg_id, stream=self.stream
        )
        await self._ws.send(frame)
        return p


def gateway(url: str, *, stamps: bool = True) -> ClientFactory:
    """Non-streamed gateway messages (the floors are driven through this too)."""
    cls = AsyncGatewayClient if stamps else UntracedGatewayClient
    return lambda user: cls(url, user, stream=False, timeout_s=TIMEOUT_S)


def realtime(url: str, *, jwt_secret: str, publish: str, stream: bool) -> ClientFactory:
    return lambda user: AsyncRealtimeClient(
        url, user, jwt_secret=jwt_secret, publish=publish, stream=stream, timeout_s=TIMEOUT_S
    )
