"""``LocalAgentDirectory``: the one live TravelAgent per id, in this process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from pathlib import Path

from travelagent.agent.base import LLMBackend
from travelagent.agent.catalog import Catalog, load_catalog
from travelagent.agent.store import AgentStore
from travelagent.agent.travel_agent import TURN_CACHE, TravelAgent
from travelagent.wire.gateway import MAX_USER_ID_CHARS, valid_user_id


class LocalAgentDirectory:
    """Agents living in this process, over one SQLite file.

    ``get`` never awaits between looking up and inserting, so concurrent first calls on the
    event loop get the same agent; a thread lock makes that hold for threads too. Creating an
    agent does no I/O: its state is read on its first message, behind its input gate.
    The directory owns the store and the LLM backend and closes both.

    At most ``max_agents`` live at once (0: no cap): past it, the least recently used agents
    that are idle (no turn running) are released; their state is in the store and the next
    ``get`` makes a fresh instance that reads it. An agent in the middle of a turn is never
    released, so there is never a second instance of a busy agent.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        llm: LLMBackend | None = None,
        process: str = "worker",
        catalog: Catalog | None = None,
        synchronous: str = "FULL",
        max_agents: int = 10_000,
        turn_cache: int = TURN_CACHE,
    ) -> None:
        if llm is None:
            from travelagent.agent.llm import make_llm

            llm = make_llm()
        self.process = process
        self.llm = llm
        self.store = AgentStore(db_path, synchronous=synchronous)
        self.catalog = catalog or load_catalog()
        self._agents: OrderedDict[str, TravelAgent] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.max_agents = max_agents
        self.turn_cache = turn_cache  # turn keys each agent holds in memory (TravelAgent)
        self.released = 0
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, name: str) -> TravelAgent:
        if not valid_user_id(name):
            raise ValueError(
                f"agent name must be 1-{MAX_USER_ID_CHARS} printable characters, no '/'"
            )
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                agent = TravelAgent(
                    name,
                    store=self.store,
                    llm=self.llm,
                    catalog=self.catalog,
                    process=self.process,
                    turn_cache=self.turn_cache,
                )
                self._agents[name] = agent
                self._release_over_cap(keep=name)
            else:
                self._agents.move_to_end(name)
            return agent

    def _release_over_cap(self, *, keep: str) -> None:
        if self.max_agents <= 0:
            return
        excess = len(self._agents) - self.max_agents
        for name in list(self._agents):
            if excess <= 0:
                break
            agent = self._agents[name]
            if name == keep or _busy(agent):
                continue
            del self._agents[name]
            excess -= 1
            self.released += 1
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to flush
                task = asyncio.get_running_loop().create_task(agent.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def __len__(self) -> int:
        return len(self._agents)

    async def close(self) -> None:
        await asyncio.gather(*(a.aclose() for a in list(self._agents.values())), *self._closing)
        await self.llm.aclose()
        await self.store.close()


def _busy(agent: TravelAgent) -> bool:
    """Whether ``agent`` is in a turn (its input gate is held) or still announcing one."""
    announcing = agent._announcing
    return agent._gate.locked() or (announcing is not None and not announcing.done())
