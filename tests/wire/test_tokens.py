"""Connection tokens, verified with no sockets: each rule of ``travelagent.wire.tokens``."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from travelagent.wire.tokens import (
    TokenError,
    TokenExpired,
    TokenPolicy,
    bearer_token,
    verify_token,
)

SECRET = "test-secret-that-is-long-enough-for-hs256"
NOW_S = 1_800_000_000.0
POLICY = TokenPolicy(secret=SECRET, max_lifetime_s=3600.0)


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body: dict[str, Any] = {"sub": "u1", "exp": int(NOW_S) + 600}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm)


def test_a_valid_token_gives_its_user_expiry_and_no_room_restriction() -> None:
    claims = verify_token(token(), POLICY, now_s=NOW_S)
    assert (claims.user, claims.exp_s, claims.rooms) == ("u1", NOW_S + 600, None)


def test_a_rooms_claim_that_is_a_list_of_names_restricts_rooms() -> None:
    claims = verify_token(token(rooms=["paris", "rome"]), POLICY, now_s=NOW_S)
    assert claims.rooms == frozenset({"paris", "rome"})


@pytest.mark.parametrize("rooms", ["paris", {"paris": True}, ["paris", 3], [""], ["a/b"], 1, True])
def test_a_malformed_rooms_claim_is_refused_not_ignored(rooms: Any) -> None:
    with pytest.raises(TokenError, match="rooms"):
        verify_token(token(rooms=rooms), POLICY, now_s=NOW_S)


def test_a_token_without_exp_is_refused() -> None:
    with pytest.raises(TokenError, match="exp"):
        verify_token(token(exp=None), POLICY, now_s=NOW_S)


def test_a_token_valid_until_the_year_3000_is_refused() -> None:
    with pytest.raises(TokenError, match="ahead"):
        verify_token(token(exp=32503680000), POLICY, now_s=NOW_S)


def test_a_token_just_inside_the_maximum_lifetime_is_accepted() -> None:
    verify_token(token(exp=int(NOW_S) + 3600), POLICY, now_s=NOW_S)


def test_an_expired_token_is_token_expired_by_the_injected_clock() -> None:
    with pytest.raises(TokenExpired):
        verify_token(token(exp=int(NOW_S) - 60), POLICY, now_s=NOW_S)


@pytest.mark.parametrize(
    "forged",
    [
        token(secret="another-secret-that-is-long-enough-for-hs256"),
        token(secret=SECRET * 2, algorithm="HS512"),
        jwt.encode({"sub": "u1", "exp": int(NOW_S) + 60}, None, algorithm="none"),
        "not-a-jwt",
        "",
    ],
    ids=["wrong-secret", "hs512", "alg-none", "garbage", "empty"],
)
def test_forged_or_unreadable_tokens_are_refused(forged: str) -> None:
    with pytest.raises(TokenError):
        verify_token(forged, POLICY, now_s=NOW_S)


@pytest.mark.parametrize("sub", [None, "", 7, "a/b", "x" * 129, "tab\there"])
def test_a_missing_or_invalid_sub_is_refused(sub: Any) -> None:
    with pytest.raises(TokenError):
        verify_token(token(sub=sub), POLICY, now_s=NOW_S)


def test_issuer_and_audience_are_checked_and_required_only_when_configured() -> None:
    strict = TokenPolicy(secret=SECRET, issuer="travelagent", audience="realtime")
    ok = token(iss="travelagent", aud="realtime")
    assert verify_token(ok, strict, now_s=NOW_S).user == "u1"
    for bad in (
        token(iss="evil", aud="realtime"),
        token(iss="travelagent", aud="elsewhere"),
        token(aud="realtime"),
        token(iss="travelagent"),
    ):
        with pytest.raises(TokenError):
            verify_token(bad, strict, now_s=NOW_S)
    # Not configured: not checked.
    assert verify_token(token(iss="anyone", aud="x"), POLICY, now_s=NOW_S).user == "u1"


def test_no_secret_configured_refuses_every_token() -> None:
    with pytest.raises(TokenError):
        verify_token(token(), TokenPolicy(secret=""), now_s=NOW_S)


def test_bearer_token_reads_the_query_then_the_authorization_header() -> None:
    assert bearer_token({"token": "q"}, {"Authorization": "Bearer h"}) == "q"
    assert bearer_token({}, {"Authorization": "bearer h"}) == "h"
    assert bearer_token({}, {"Authorization": "Basic h"}) is None
    assert bearer_token({}, {}) is None
