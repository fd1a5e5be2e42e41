"""The TravelAgent: a Durable Object stand-in with an input gate and an output gate.

Input gate: each agent has one ``asyncio.Lock``. Python's lock hands itself to waiters in the
order they queued and does not let a newcomer barge past a queued waiter, so messages to one
agent are handled one at a time in arrival order (arrival = the call into the agent; for
``stream_message``, its first iteration). Different agents have different locks and run
concurrently. Every path releases the lock in ``async with``/``finally``, whatever fails.

Output gate: a turn commits the user's message (with any state it changed) and then the
assistant's reply, and nothing leaves before the commits it depends on are durable:
``handle_message`` returns after the reply's commit, ``stream_message`` ends after it, and
``on_message`` calls ``sink.complete`` or ``sink.response`` after it. A streamed turn's start and
first chunk wait for the question's commit; chunks stream before the reply's commit (that is
the point of streaming); only the final, whole reply is gated on it. As in a Durable Object, the
question's commit is queued, not awaited, before the LLM is asked: the model runs while it
becomes durable, and an unstreamed turn's two commits usually share one group commit (one
fsync, ``store.py``). The reply's commit is written only if the question's was. State changes
are made on a copy and swapped in once their commit is durable, so a failed commit leaves
memory and disk agreeing, and the gate stays closed until every commit a turn queued has
settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing

from travelagent.agent import turns
from travelagent.agent.base import AgentEvent, AgentListener, LLMBackend, ReplySink
from travelagent.agent.catalog import Catalog
from travelagent.agent.state import TripState, apply_user_message, llm_messages
from travelagent.agent.store import (
    AgentStore,
    PendingCommit,
    StoreError,
    TurnDone,
    TurnStart,
    TurnWhole,
    TurnWrite,
)
from travelagent.logsafe import esc
from travelagent.vocab import StampName
from travelagent.wire.trace import Trace, TraceError, now_ns

log = logging.getLogger(__name__)
LLM_STAMPS = 2  # llm.first, llm.done
# Turn keys held in memory per agent, newest first kept. Older keys stay in the store for the
# whole retention and are read from it by primary key when a delivery is not found here, so an
# agent's memory does not grow with its message rate times the retention (an hour).
TURN_CACHE = 256


class AgentError(RuntimeError):
    """A turn failed (LLM or store); ``str(err)`` is the reason to show the client."""


class TravelAgent:
    def __init__(
        self,
        name: str,
        *,
        store: AgentStore,
        llm: LLMBackend,
        catalog: Catalog,
        process: str = "worker",
        turn_cache: int = TURN_CACHE,
    ) -> None:
        if turn_cache < 1:
            raise ValueError("turn_cache must be at least 1")
        self.name = name
        self.turn_cache = turn_cache
        self.process = process
        self._store = store
        self._llm = llm
        self._catalog = catalog
        self._gate = asyncio.Lock()
        self._state: TripState | None = None
        self._listeners: list[AgentListener] = []
        self._announcing: asyncio.Task[None] | None = None
        # Turn keys (turns.py): the newest ``turn_cache`` durable records, loaded with the
        # state and kept current by every commit, so a delivery usually finds its key without
        # asking the store. While ``_turns_complete`` every key within the retention is here and
        # a miss means "new"; once older keys were dropped, a miss asks the store.
        self._turns: OrderedDict[str, turns.TurnRecord] = OrderedDict()
        self._turns_complete = True
        self._live: dict[str, asyncio.Future[str]] = {}  # runs under way, by key

    # -- entry points --------------------------------------------------------------------------

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
            parts: list[str] = []
            begin = sink.start if stream else None
            delivery = self._deliver(text, trace, msg_id, on_begin=begin, streamed=stream)
            async with aclosing(delivery) as chunks:
                async for chunk in chunks:
                    parts.append(chunk)
                    if stream:
                        await sink.chunk(chunk)
        except AgentError as err:
            await sink.error(str(err), trace)
            return
        # The turn has committed the reply: only now may it leave.
        if stream:
            await sink.complete("".join(parts), trace)
        else:
            await sink.response("".join(parts), trace)

    async def handle_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> str:
        parts = []
        async with aclosing(self._deliver(text, trace, msg_id)) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
        return "".join(parts)

    async def stream_message(
        self, text: str, *, trace: Trace | None = None, msg_id: str | None = None
    ) -> AsyncGenerator[str, None]:
        async with aclosing(self._deliver(text, trace, msg_id, streamed=True)) as chunks:
            async for chunk in chunks:
                yield chunk

    def add_listener(self, listener: AgentListener) -> None:
        self._listeners.append(listener)

    async def replies_after(self, after: str | None, ids: Sequence[str] = ()) -> turns.Replies:
        """The committed replies a reconnecting client missed (``AgentStore.replies_after``);
        raise ``UnknownMessage`` if ``after`` names no turn of this agent."""
        try:
            found = await self._store.replies_after(self.name, after, ids)
        except StoreError as err:
            raise AgentError(str(err)) from err
        if found is None:
            raise turns.UnknownMessage(f"unknown message id {after!r}")
        return found

    async def state(self) -> TripState:
        """A copy of the committed state (waits its turn at the input gate)."""
        async with self._gate:
            return copy.deepcopy(await self._loaded())

    async def flush_listeners(self) -> None:
        """Wait until every announcement made so far has reached the listeners."""
        if self._announcing is not None:
            await asyncio.gather(self._announcing, return_exceptions=True)

    async def aclose(self) -> None:
        await self.flush_listeners()

    def _begin_commit(
        self,
        state: TripState,
        appended: list[tuple[int, str, str]],
        turn: TurnWrite | None,
        after: PendingCommit | None = None,
        *,
        key: str | None = None,
        record: turns.TurnRecord | None = None,
    ) -> PendingCommit:
        """Queue a commit of ``state``; once it is durable, ``state`` (and the key's ``record``)
        become the agent's own, whether or not anyone is still waiting for it (a cancelled turn
        must not leave memory behind disk)."""
        try:
            pending = self._store.begin_commit(self.name, state, appended, turn=turn, after=after)
        except StoreError as err:
            raise AgentError(str(err)) from err

        def durable(fut: asyncio.Future[None]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return
            self._state = state
            if key is not None and record is not None:
                self._keep(key, record)

        pending.future.add_done_callback(durable)
        return pending

    @staticmethod
    async def _settle(pending: PendingCommit) -> None:
        """Wait until ``pending`` is durable. Shielded: a cancelled wait leaves the commit (and
        its swap into memory) to finish."""
        try:
            await asyncio.shield(pending.future)
        except StoreError as err:
            raise AgentError(str(err)) from err

    # -- one delivery: the turn's key decides (turns.py) --------------------------------------

    async def _deliver(
        self,
        text: str,
        trace: Trace | None,
        msg_id: str | None,
        *,
        on_begin: Callable[[], Awaitable[None]] | None = None,
        streamed: bool = False,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's chunks for one delivery of ``msg_id`` (the trace's id if None):
        when the turn runs and is ``streamed`` (the caller sends chunks on as they come), the
        LLM's as they come, each after the question's commit; otherwise the whole reply as one
        chunk (a turn run unstreamed, a join of a live run, a replay of a stored reply)."""
        key = msg_id or (trace.id if trace is not None else None)
        if key is None:  # nothing to key the turn by
            turn = self._turn(text, trace, None, on_begin, streamed=streamed)
            async with self._gate, aclosing(turn) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        live = self._live.get(key)
        if live is not None:  # decide(..., live=True) is always "join"
            reply = await asyncio.shield(live)
            if on_begin is not None:
                await on_begin()
            yield reply
            return
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._live[key] = done
        parts: list[str] = []
        try:
            async with self._gate:
                await self._loaded()
                record = await self._turn_record(key)
                action = turns.decide(record, live=False)
                if action == "replay":
                    reply = await self._stored_reply(key)
                    if on_begin is not None:
                        await on_begin()
                    parts.append(reply)
                    yield reply
                else:
                    resume = record if action == "resume" else None
                    turn = self._turn(text, trace, key, on_begin, resume, streamed=streamed)
                    async with aclosing(turn) as chunks:
                        async for chunk in chunks:
                            parts.append(chunk)
                            yield chunk
            done.set_result("".join(parts))
        except BaseException as err:
            failure = err if isinstance(err, AgentError) else AgentError("turn cut off")
            done.set_exception(failure)
            done.exception()  # retrieved: joiners may be none
            raise
        finally:
            del self._live[key]

    async def _stored_reply(self, key: str) -> str:
        try:
            texts = await self._store.turn_texts(self.name, key)
        except StoreError as err:
            raise AgentError(str(err)) from err
        if texts is None or texts[1] is None:
            raise AgentError(f"the stored reply to {key!r} is gone")
        return texts[1]

    @property
    def turn_keys_held(self) -> int:
        """Turn keys held in memory (at most ``turn_cache``)."""
        return len(self._turns)

    async def _turn_record(self, key: str) -> turns.TurnRecord | None:
        record = self._turns.get(key)
        if record is not None:
            if turns.expired(record, now_ns=now_ns(), retention_s=self._store.turn_retention_s):
                return None  # as the store would answer: its key is past the retention
            return record
        if self._turns_complete:
            return None
        try:
            return await self._store.turn_record(self.name, key)
        except StoreError as err:
            raise AgentError(str(err)) from err

    def _keep(self, key: str, record: turns.TurnRecord) -> None:
        self._turns[key] = record
        self._turns.move_to_end(key)
        while len(self._turns) > self.turn_cache:
            self._turns.popitem(last=False)
            self._turns_complete = False

    # -- one turn (the caller holds the gate) -------------------------------------------------

    async def _loaded(self) -> TripState:
        if self._state is None:
            try:
                state = await self._store.load(self.name)
                keys = await self._store.turns(self.name, limit=self.turn_cache)
                self._turns = OrderedDict(keys.records)
                self._turns_complete = keys.complete
            except StoreError as err:
                raise AgentError(str(err)) from err
            self._state = state
        return self._state

    async def _turn(
        self,
        text: str,
        trace: Trace | None,
        key: str | None,
        on_begin: Callable[[], Awaitable[None]] | None = None,
        resume: turns.TurnRecord | None = None,
        *,
        streamed: bool = False,
    ) -> AsyncGenerator[str, None]:
        state = (await self._loaded()).copy()
        itinerary_changed = False
        asked: PendingCommit | None = None  # the question's commit, until it has settled
        asked_record: turns.TurnRecord | None = None
        question: Callable[[], PendingCommit] | None = None  # queues it, until it is queued
        asking: list[tuple[int, str, str]] = []  # the question's message, until it is queued
        if resume is None:
            change = apply_user_message(state, text, self._catalog)
            itinerary_changed = bool(change.itinerary)
            seq = self._append(state, "user", text)
            start = TurnStart(key, seq, text) if key is not None else None
            asked_record = turns.TurnRecord(turns.STARTED, seq, now_ns())
            record, appended = asked_record, [(seq, "user", text)]
            asking = appended

            def question() -> PendingCommit:
                return self._begin_commit(state, appended, start, key=key, record=record)

            if streamed:  # its chunks will wait for it: under way while the model runs
                asked, question = question(), None
            # Unstreamed, nothing leaves before the reply: the question is written with the
            # reply, in one commit (one fsync, one write of the agent's row) even with no other
            # turn to share with. A process that dies meanwhile leaves no key: the redelivery
            # runs the turn afresh, as a resume would, over the same history.
            history = state
        else:
            # The user's message is committed already (its first run died): not appended again.
            assert key is not None
            stored = await self._stored_message(key, text)
            history = turns.history_until(state, resume.user_seq, stored)
        try:
            # Stamped right before the LLM is asked: the agent.start→llm.done span is the
            # model's alone; the gate wait and loading count as processing before it
            # (worker.recv→agent.start), the commits after it (llm.done→agent.done), apart
            # from what of the question's commit the model's time hides.
            self._stamp(trace, "agent.start")
            if on_begin is not None:
                if asked is not None:
                    await self._settle(asked)
                    asked = None
                await on_begin()
            parts: list[str] = []
            # A backend stamps llm.first and llm.done unguarded: a trace without room for both
            # (a peer sent it nearly full) is not handed over, so the reply still happens.
            llm_trace = trace if trace is not None and trace.room >= LLM_STAMPS else None
            whole = None if streamed else getattr(self._llm, "complete", None)
            try:
                if whole is not None:  # nobody sends chunks on: the reply at once, whole
                    parts.append(
                        await whole(
                            llm_messages(self.name, history), trace=llm_trace, process=self.process
                        )
                    )
                else:
                    async for chunk in self._llm.stream(
                        llm_messages(self.name, history), trace=llm_trace, process=self.process
                    ):
                        parts.append(chunk)
                        if not streamed:  # nobody sends chunks on: the reply goes whole
                            continue
                        if asked is not None:  # a chunk leaves: the question first
                            await self._settle(asked)
                            asked = None
                        yield chunk
            except AgentError:
                raise
            except Exception as err:
                raise AgentError(f"LLM backend failed: {err}") from err
            reply = "".join(parts)
            replied = state.copy()
            seq = self._append(replied, "assistant", reply)
            started = asked_record if resume is None else resume
            done_record = (
                turns.TurnRecord(turns.DONE, started.user_seq, started.t_ns)
                if started is not None
                else None
            )
            if question is not None:  # the question and the reply, written as one
                question = None
                whole_turn = TurnWhole(key, asking[0][0], text, reply) if key is not None else None
                done = self._begin_commit(
                    replied, [*asking, (seq, "assistant", reply)], whole_turn,
                    key=key, record=done_record,
                )  # fmt: skip
            else:
                done = self._begin_commit(
                    replied, [(seq, "assistant", reply)],
                    TurnDone(key, reply) if key is not None else None,
                    after=asked, key=key, record=done_record,
                )  # fmt: skip
            if asked is not None:
                await self._settle(asked)
                asked = None
            await self._settle(done)
        finally:
            # Cut off (the LLM failed, the stream was closed): the question is still committed
            # and settles before the gate opens, so memory and disk agree for the next turn.
            if question is not None:
                with contextlib.suppress(AgentError):
                    asked = question()
            if asked is not None:
                with contextlib.suppress(AgentError):
                    await self._settle(asked)
        self._stamp(trace, "agent.done")
        if itinerary_changed:
            self._announce(
                {"type": "itinerary", "agent": self.name, "itinerary": list(replied.itinerary)}
            )
        if not streamed and reply:
            # One chunk instead of one per token: the layers above only join them.
            yield reply

    async def _stored_message(self, key: str, text: str) -> str:
        try:
            texts = await self._store.turn_texts(self.name, key)
        except StoreError as err:
            raise AgentError(str(err)) from err
        return text if texts is None else texts[0]

    def _stamp(self, trace: Trace | None, name: StampName) -> None:
        if trace is None:
            return
        try:
            trace.stamp(name, self.process)
        except TraceError:  # a peer filled the trace: the turn matters more than the stamp
            log.warning(
                "agent %s: trace %s is full; %s not stamped", esc(self.name), esc(trace.id), name
            )

    def _append(self, state: TripState, role: str, content: str) -> int:
        seq = state.message_count
        state.recent_messages.append({"role": role, "content": content})
        del state.recent_messages[: -self._store.max_recent]
        state.message_count += 1
        return seq

    def _announce(self, event: AgentEvent) -> None:
        """Tell listeners, in commit order, without holding up the reply."""
        previous = self._announcing

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            for listener in list(self._listeners):
                try:
                    await listener(event)
                except Exception:
                    log.exception("agent %s: itinerary listener failed", esc(self.name))

        if self._listeners:
            self._announcing = asyncio.get_running_loop().create_task(run())
