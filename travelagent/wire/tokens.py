"""Connection tokens: the HS256 JWT that the realtime service and the gateway both accept.

Pure code, no I/O; the clock is passed in. Every rule that decides whether a token lets someone
in lives here, so the two services cannot drift apart:

- HS256 only, signed with the shared secret (``TRAVELAGENT_JWT_SECRET``).
- ``sub`` is required: the user, 1-128 printable characters with no '/' (the same rule as a
  gateway ``userId``, so a user's channel and agent always have a valid name).
- ``exp`` is required, must lie in the future, and no further ahead than ``max_lifetime_s``:
  a token valid until the year 3000 is refused, not trusted for ever.
- ``aud`` and ``iss`` are checked (and then required) only when the policy names them.
- ``rooms``, when present, must be a list of room names; anything else is refused rather than
  ignored, because ignoring it would open every room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from travelagent.wire.gateway import valid_user_id

ALGORITHMS = ["HS256"]
DEFAULT_MAX_LIFETIME_S = 24 * 3600.0
# Clock skew allowed between signer and verifier (PyJWT's default is none, as here).
DEFAULT_LEEWAY_S = 0.0


class TokenError(ValueError):
    """The token is refused; the message says why (safe to show the client)."""


class TokenExpired(TokenError):
    """The token was valid but its ``exp`` has passed: the client may fetch a new one."""


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must satisfy. ``audience``/``issuer`` None: not checked."""

    secret: str
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S
    audience: str | None = None
    issuer: str | None = None
    leeway_s: float = DEFAULT_LEEWAY_S


@dataclass(frozen=True)
class TokenClaims:
    """A verified token: its user, its expiry (Unix seconds) and the rooms it grants (None: the
    token does not restrict rooms)."""

    user: str
    exp_s: float
    rooms: frozenset[str] | None
    claims: Mapping[str, Any]


def parse_rooms_claim(value: Any) -> frozenset[str] | None:
    """The ``rooms`` claim as a set; None when absent. Raise TokenError when malformed."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(valid_user_id(r) for r in value):
        raise TokenError("rooms must be a list of room names")
    return frozenset(value)


def verify_token(token: str, policy: TokenPolicy, *, now_s: float) -> TokenClaims:
    """The claims of ``token`` at time ``now_s``; raise TokenExpired or TokenError."""
    if not isinstance(token, str) or not token:
        raise TokenError("no token")
    if not policy.secret:
        raise TokenError("no secret configured")
    require = ["sub", "exp"]
    if policy.audience is not None:
        require.append("aud")
    if policy.issuer is not None:
        require.append("iss")
    try:
        claims = jwt.decode(
            token,
            policy.secret,
            algorithms=ALGORITHMS,
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={
                "require": require,
                # exp is checked below against the injected clock
                "verify_exp": False,
                "verify_aud": policy.audience is not None,
                "verify_iss": policy.issuer is not None,
            },
        )
    except jwt.InvalidTokenError as err:
        raise TokenError(str(err) or type(err).__name__) from None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("exp must be a number")
    if exp + policy.leeway_s <= now_s:
        raise TokenExpired("token expired")
    if exp - now_s > policy.max_lifetime_s + policy.leeway_s:
        raise TokenError(f"exp is more than {policy.max_lifetime_s:g} s ahead")
    user = claims.get("sub")
    if not isinstance(user, str) or not valid_user_id(user):
        raise TokenError("sub must be 1-128 printable characters, no '/'")
    rooms = parse_rooms_claim(claims.get("rooms"))
    return TokenClaims(user=user, exp_s=float(exp), rooms=rooms, claims=claims)


def bearer_token(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The token of an HTTP request: ``?token=`` or ``Authorization: Bearer``; None if neither."""
    token = query.get("token")
    if token:
        return token
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None
