"""``LocalAgentDirectory``: the one live TravelAgent per id, in this process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from travelagent.agent.base import LLMBackend
from travelagent.agent.catalog import Catalog, load_catalog
from travelagent.agent.store import AgentStore
from travelagent.agent.travel_agent import TravelAgent
from travelagent.wire.gateway import MAX_USER_ID_CHARS, valid_user_id


class LocalAgentDirectory:
    """Agents living in this process, over one SQLite file.

    ``get`` never awaits between looking up and inserting, so concurrent first calls on the
    event loop get the same agent; a thread lock makes that hold for threads too. Creating an
    agent does no I/O: its state is read on its first message, behind its input gate.
    The directory owns the store and the LLM backend and closes both.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        llm: LLMBackend | None = None,
        process: str = "worker",
        catalog: Catalog | None = None,
        synchronous: str = "FULL",
    ) -> None:
        if llm is None:
            from travelagent.agent.llm import make_llm

            llm = make_llm()
        self.process = process
        self.llm = llm
        self.store = AgentStore(db_path, synchronous=synchronous)
        self.catalog = catalog or load_catalog()
        self._agents: dict[str, TravelAgent] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TravelAgent:
        if not valid_user_id(name):
            raise ValueError(
                f"agent name must be 1-{MAX_USER_ID_CHARS} printable characters, no '/'"
            )
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                agent = TravelAgent(
                    name, store=self.store, llm=self.llm, catalog=self.catalog, process=self.process
                )
                self._agents[name] = agent
            return agent

    def __len__(self) -> int:
        return len(self._agents)

    async def close(self) -> None:
        await asyncio.gather(*(a.aclose() for a in list(self._agents.values())))
        await self.llm.aclose()
        await self.store.close()
