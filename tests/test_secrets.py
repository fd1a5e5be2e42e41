"""Development secrets and bearer tokens: refused off loopback, compared in constant time."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from travelagent.config import (
    AGENT_HOST_TOKEN_ENV,
    API_KEY_ENV,
    JWT_SECRET_ENV,
    WEBHOOK_SECRET_ENV,
    SecretError,
    check_server_secrets,
    is_loopback,
    secret,
)
from travelagent.http_auth import bearer_matches
from travelagent.wire.proxy import api_key_matches

ALL = (JWT_SECRET_ENV, API_KEY_ENV, WEBHOOK_SECRET_ENV, AGENT_HOST_TOKEN_ENV)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
def test_loopback_addresses_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.0.0.5", "example.com"])
def test_other_addresses_are_not(host: str) -> None:
    assert not is_loopback(host)


def test_development_secrets_on_loopback_are_announced_at_start(
    no_secrets: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_server_secrets("realtime", host="127.0.0.1", dev=False) == [
        JWT_SECRET_ENV,
        API_KEY_ENV,
        WEBHOOK_SECRET_ENV,
    ]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "development secrets (loopback)" in err
    # Reading a secret later says nothing more.
    secret(JWT_SECRET_ENV)
    assert capsys.readouterr().err == ""


def test_development_secrets_off_loopback_are_refused_unless_dev(
    no_secrets: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SecretError, match=r"0\.0\.0\.0"):
        check_server_secrets("worker", host="0.0.0.0", dev=False)
    assert check_server_secrets("worker", host="0.0.0.0", dev=True)
    assert "(--dev)" in capsys.readouterr().err


def test_the_public_development_value_set_explicitly_is_refused_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ALL:
        monkeypatch.setenv(name, f"real-{name}")
    assert check_server_secrets("worker", host="0.0.0.0", dev=False) == []
    monkeypatch.setenv(JWT_SECRET_ENV, "travelagent-development-jwt-secret-not-for-production")
    with pytest.raises(SecretError, match=JWT_SECRET_ENV):
        check_server_secrets("worker", host="0.0.0.0", dev=False)


@pytest.mark.parametrize("component", ["realtime", "worker", "agents"])
def test_a_server_on_a_public_address_without_secrets_does_not_start(component: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAVELAGENT_")}
    proc = subprocess.run(
        [sys.executable, "-m", "travelagent", "serve", component, "--host", "0.0.0.0",
         "--port", "9"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refused on '0.0.0.0'" in proc.stderr and "--dev" in proc.stderr


def test_bearer_tokens_and_api_keys_match_exactly() -> None:
    assert bearer_matches({"Authorization": "Bearer t0k"}, "t0k")
    for headers in ({}, {"Authorization": "Bearer t0"}, {"Authorization": "t0k"},
                    {"Authorization": "Bearer t0kk"}):  # fmt: skip
        assert not bearer_matches(headers, "t0k")
    assert not bearer_matches({"Authorization": "Bearer "}, "")
    assert api_key_matches({"X-API-Key": "k"}, "k")
    assert not api_key_matches({"X-API-Key": "K"}, "k")
    assert not api_key_matches({}, "k")
    assert not api_key_matches({"X-API-Key": ""}, "")
