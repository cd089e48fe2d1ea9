"""Bearer JWTs: issuing them with the embedded key, and verifying any token into a Principal.

A token names its subject (``sub``) and roles (``roles``, a list of strings). Verification
checks the signature, ``exp``, ``nbf``, ``iss`` and ``aud``, with a clock-skew allowance of at
most 30 seconds. Errors never echo the token or a key.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from bicameral.context import Principal
from bicameral.errors import AuthenticationError, ConfigurationError
from bicameral.security.keys import EMBEDDED_KID, KeySet

__all__ = [
    "MAX_LEEWAY",
    "MAX_TOKEN_BYTES",
    "TokenVerifier",
    "issue_token",
    "parse_ttl",
    "principal_of",
    "too_long",
]

MAX_LEEWAY = 30.0
MAX_TOKEN_BYTES = 8192
"""The longest token read (8 KiB); a longer one is refused before any decoding."""
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta:
    """Returns the duration written as ``90``, ``90s``, ``15m``, ``1h`` or ``7d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigurationError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])


def issue_token(
    secret: bytes,
    *,
    subject: str,
    roles: Iterable[str] = (),
    ttl: timedelta = timedelta(hours=1),
    issuer: str = "bicameral",
    audience: str = "bicameral",
    now: float | None = None,
) -> str:
    """Returns an HS256 token for ``subject`` with ``roles``, valid for ``ttl``."""
    if not subject:
        raise ConfigurationError("a token needs a subject")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": sorted(set(roles)),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": EMBEDDED_KID})


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the bearer token has expired"),
    (jwt.ImmatureSignatureError, "the bearer token is not valid yet"),
    (jwt.InvalidAudienceError, "the bearer token is not meant for this API"),
    (jwt.InvalidIssuerError, "the bearer token comes from an unknown issuer"),
    (jwt.InvalidSignatureError, "the bearer token's signature is not valid"),
    (jwt.MissingRequiredClaimError, "the bearer token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "the bearer token's algorithm is not accepted"),
)


def too_long() -> AuthenticationError:
    """Returns the refusal of a token longer than ``MAX_TOKEN_BYTES``."""
    return AuthenticationError(f"the bearer token is longer than {MAX_TOKEN_BYTES} bytes (8 KiB)")


def _reason(exc: jwt.PyJWTError) -> str:
    for cls, text in _REASONS:
        if isinstance(exc, cls):
            return text
    return "the bearer token is not valid"


@dataclass(frozen=True)
class TokenVerifier:
    """Checks bearer tokens against ``keys`` and turns them into principals."""

    keys: KeySet
    issuer: str
    audience: str
    algorithms: frozenset[str]
    leeway: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"auth leeway must be 0..{MAX_LEEWAY:g} seconds")
        if not self.algorithms:
            raise ConfigurationError("auth needs at least one algorithm")
        if "none" in {a.lower() for a in self.algorithms}:
            raise ConfigurationError("the 'none' algorithm is never accepted")

    def verify(self, token: str) -> Principal:
        """Returns the principal a valid token names; raises AuthenticationError otherwise."""
        return principal_of(self.claims(token))

    def claims(self, token: str) -> dict[str, Any]:
        """Returns the claims of a valid token; raises AuthenticationError otherwise."""
        if len(token) > MAX_TOKEN_BYTES:
            raise too_long()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("the bearer token is malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise AuthenticationError("the bearer token's algorithm is not accepted")
        kid = header.get("kid")
        key = self.keys.key(kid if isinstance(kid, str) else None, algorithm)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from None
        return claims


def principal_of(claims: dict[str, Any]) -> Principal:
    """Returns the principal verified ``claims`` name."""
    subject = claims.get("sub")
    roles = claims.get("roles", [])
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("the bearer token names no subject")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthenticationError("the bearer token's roles claim is not a list of names")
    return Principal(subject=subject, roles=frozenset(roles))
