"""Turns keyed by message id: what a delivery does; pure code, no I/O.

Design rules (every rule that decides whether a delivery runs the agent lives here):
- A turn is keyed by ``(agent, msg_id)``. Its durable state is the row the store keeps for it:
  none (``NEW``), the user's message committed (``STARTED``), the reply committed (``DONE``).
  Each state is entered by the commit that also writes the message, in one transaction, so the
  key costs no extra write.
- A delivery whose id has a run live in this process joins it: it waits for that run's reply
  (or its error) and never starts a second one.
- Otherwise the durable state decides: ``NEW`` runs the turn; ``DONE`` replays the stored reply
  without asking the LLM; ``STARTED`` (the run that committed the user's message died with its
  process, or its LLM failed) resumes it: the LLM is asked again over the history up to that
  message, which is not appended twice, and the reply is committed once.
- Keys are kept ``retention_s`` after their turn started: by default the whole Standard Webhooks
  retry schedule and an hour more, so a redelivery as late as that schedule allows still finds
  its key (each attempt is signed anew, so the webhook timestamp tolerance does not bound it).

``TravelAgent`` (``travel_agent.py``) is the adapter: it looks the key up, carries out the
action and commits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from travelagent.agent.state import TripState
from travelagent.wire.webhooks import STANDARD_RETRY_SCHEDULE_S

TurnState = Literal["new", "started", "done"]
Action = Literal["run", "resume", "replay", "join"]

NEW: Final = "new"
STARTED: Final = "started"
DONE: Final = "done"
# The last Standard Webhooks retry comes about 27.6 h after the first attempt; an hour more.
DEFAULT_RETENTION_S: Final = sum(STANDARD_RETRY_SCHEDULE_S) + 3600.0

# (durable state, a run live in this process) -> what the delivery does
DELIVERY: Final[dict[tuple[TurnState, bool], Action]] = {
    ("new", False): "run",
    ("new", True): "join",  # the first delivery is still queued at the input gate
    ("started", False): "resume",
    ("started", True): "join",
    ("done", False): "replay",
    ("done", True): "join",  # its reply is committed and on its way out
}


@dataclass(frozen=True)
class TurnRecord:
    """What the store keeps of one turn (the texts stay in SQLite until a replay asks)."""

    state: TurnState
    user_seq: int  # the user's message's seq in the agent's messages
    t_ns: int  # when the turn started


def decide(record: TurnRecord | None, *, live: bool) -> Action:
    """What a delivery of a key with ``record`` (None: never seen) does."""
    return DELIVERY[(NEW if record is None else record.state, live)]


def history_until(state: TripState, user_seq: int, text: str) -> TripState:
    """``state`` with its recent messages cut after message ``user_seq`` (the user's ``text``):
    the history a resumed turn's LLM sees, as the first run saw it. If that message is no longer
    among the recent ones, the LLM sees it alone."""
    first_seq = state.message_count - len(state.recent_messages)
    keep = user_seq - first_seq + 1
    if keep <= 0:
        return replace(state, recent_messages=[{"role": "user", "content": text}])
    return replace(state, recent_messages=state.recent_messages[:keep])


def expired(record: TurnRecord, *, now_ns: int, retention_s: float) -> bool:
    return record.t_ns < now_ns - int(retention_s * 1e9)


@dataclass(frozen=True)
class StoredReply:
    """A turn as a resuming client asks for it: ``reply`` is None until the turn is done."""

    msg_id: str
    state: TurnState
    user_seq: int
    reply: str | None


@dataclass(frozen=True)
class Replies:
    """What a resume gets (``AgentStore.replies_after``): the done turns after the last one a
    client saw, in commit order, and the state of each message id it still waits for."""

    replies: list[StoredReply]  # done, after ``after`` (or asked for by id), by user_seq
    pending: dict[str, TurnState]  # each asked-for id: "done", "started" or "new" (unknown)


class UnknownMessage(LookupError):
    """A resume names a message id the agent keeps no turn for (never seen, another user's,
    or older than the retention); ``str(err)`` says which."""
