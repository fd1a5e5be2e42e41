"""The hybrid: the agent, reached through the gateway, announces itinerary changes to a room.

A gateway socket opened with ``?room=<name>`` binds its agent to ``room:<name>`` on the realtime
service for as long as the socket is open (``bind`` on admission, ``unbind`` when it closes;
several sockets of one user to one room are counted); when that agent's itinerary changes,
the worker publishes ``{"type":"itinerary","agent":...,"itinerary":[...]}`` there, so every
member of the room (who also sees presence) hears it. Both paths reach the same agent instance.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter, OrderedDict, defaultdict

from travelagent.agent.base import Agent, AgentEvent
from travelagent.logsafe import esc
from travelagent.worker.publish import Publisher, PublishError

log = logging.getLogger(__name__)


class RoomAnnouncer:
    def __init__(self, publisher: Publisher, *, max_bindings: int = 100_000) -> None:
        self.publisher = publisher
        self.rooms: defaultdict[str, Counter[str]] = defaultdict(Counter)
        # (user, room) pairs, least recently bound first: past ``max_bindings`` (0: no cap) the
        # oldest binding is released, whatever its count, and counted in ``released``.
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.max_bindings = max_bindings
        self.released = 0
        # By instance: an agent released by the directory's cap and made again is listened to.
        self._listening: weakref.WeakSet[Agent] = weakref.WeakSet()
        self.announced = 0
        self.failed = 0

    def bind(self, user_id: str, room: str, agent: Agent) -> None:
        self.rooms[user_id][room] += 1
        self._order[(user_id, room)] = None
        self._order.move_to_end((user_id, room))
        while 0 < self.max_bindings < len(self._order):
            old_user, old_room = self._order.popitem(last=False)[0]
            self._drop(old_user, old_room)
            self.released += 1
        if agent in self._listening:
            return
        self._listening.add(agent)

        async def announce(event: AgentEvent) -> None:
            for name in sorted(self.rooms.get(user_id, ())):
                try:
                    await self.publisher.publish(f"room:{name}", event)
                    self.announced += 1
                except PublishError as err:
                    self.failed += 1
                    log.warning("announcing to room:%s failed: %s", esc(name), esc(err))

        agent.add_listener(announce)

    def unbind(self, user_id: str, room: str) -> None:
        """Undo one ``bind``: the room hears nothing more once no socket binds it."""
        rooms = self.rooms.get(user_id)
        if rooms is None or rooms[room] <= 0:
            return
        rooms[room] -= 1
        if rooms[room] <= 0:
            self._drop(user_id, room)

    def _drop(self, user_id: str, room: str) -> None:
        self._order.pop((user_id, room), None)
        rooms = self.rooms.get(user_id)
        if rooms is None:
            return
        rooms.pop(room, None)
        if not rooms:
            del self.rooms[user_id]

    def bindings(self) -> int:
        return len(self._order)
