"""The toolkit's vocabulary, defined once: what each closed set of names may hold.

Each set is a ``Literal`` type (what mypy checks) and the tuple of its values (what a command
line, a scenario file or a config check offers), the tuple read from the type so the two can
never drift apart. Pure code: import it from anywhere.
"""

from __future__ import annotations

from typing import Literal, get_args

Arch = Literal["gateway", "realtime", "hybrid"]
"""Which path a client takes: the gateway socket, the realtime service, or both (hybrid)."""
ARCHES: tuple[Arch, ...] = get_args(Arch)

PublishMode = Literal["http-new", "http-pooled", "ws-persistent"]
"""How the worker publishes to the realtime service (the note's optimizations made switchable)."""
PUBLISH_MODES: tuple[PublishMode, ...] = get_args(PublishMode)

WebhookMode = Literal["after-publish", "ack-first"]
"""When the worker answers a webhook: once the reply is published, or at once."""
WEBHOOK_MODES: tuple[WebhookMode, ...] = get_args(WebhookMode)

StampName = Literal[
    "client.send",
    "realtime.recv",
    "realtime.webhook",
    "worker.recv",
    "agent.start",
    "llm.first",
    "llm.done",
    "agent.done",
    "worker.send",
    "worker.publish",
    "realtime.publish",
    "realtime.deliver",
    "client.first",
    "client.recv",
]
"""A trace stamp; the order of each path is in ``travelagent.wire.trace``."""
STAMP_NAMES: tuple[StampName, ...] = get_args(StampName)

Process = Literal["client", "worker", "agents", "realtime", "llm"]
"""Who stamped: the process label of a stamp. An agent inside the worker stamps as "worker"."""
PROCESSES: tuple[Process, ...] = get_args(Process)

JitterKind = Literal["normal", "uniform", "pareto"]
"""The distribution of a link's jitter."""
JITTER_KINDS: tuple[JitterKind, ...] = get_args(JitterKind)
