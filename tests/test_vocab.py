"""The vocabulary is defined once and every user of it reads the same values."""

from __future__ import annotations

from travelagent import vocab
from travelagent.link.schedule import LinkShape
from travelagent.topology.scenario import ScenarioWorkerConfig
from travelagent.wire.trace import GATEWAY_PATH, PROCESSES, REALTIME_PATH, STAMP_NAMES
from travelagent.worker.config import WorkerConfig


def test_the_stamp_names_are_exactly_those_of_the_two_paths() -> None:
    assert frozenset(vocab.STAMP_NAMES) == STAMP_NAMES == frozenset(GATEWAY_PATH + REALTIME_PATH)
    assert frozenset(vocab.PROCESSES) == PROCESSES


def test_the_value_tuples_are_read_from_the_literal_types() -> None:
    assert vocab.ARCHES == ("gateway", "realtime", "hybrid")
    assert vocab.PUBLISH_MODES == ("http-new", "http-pooled", "ws-persistent")
    assert vocab.WEBHOOK_MODES == ("after-publish", "ack-first")
    assert vocab.JITTER_KINDS == ("normal", "uniform", "pareto")


def test_the_defaults_of_the_worker_settings_are_in_the_vocabulary() -> None:
    for cfg in (WorkerConfig(), ScenarioWorkerConfig()):
        assert cfg.publish in vocab.PUBLISH_MODES and cfg.webhook_mode in vocab.WEBHOOK_MODES
    assert LinkShape().jitter in vocab.JITTER_KINDS
