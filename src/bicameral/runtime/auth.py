"""Chooses a process's authenticator and authorizer from its settings (``[auth]``).

Embedded defaults: HS256 tokens signed with the key made in the data dir on first start,
issuer and audience ``bicameral``. Production: ``jwks_file`` names a JWKS file of RS256 or
EdDSA public keys (chosen by kid), with the issuer and audience of the identity provider::

    [auth]
    issuer = "https://id.example.com/"
    audience = "shop-api"
    jwks_file = "/etc/shop/jwks.json"
    algorithms = ["RS256", "EdDSA"]
    leeway = 10          # seconds of clock skew allowed, at most 30
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bicameral.errors import ConfigurationError
from bicameral.runtime.settings import Settings
from bicameral.security.authn import Authenticator, BearerAuthenticator
from bicameral.security.authorizer import PolicyAuthorizer
from bicameral.security.keys import (
    EmbeddedKeySet,
    JwksFileKeySet,
    KeySet,
    embedded_secret,
    existing_secret,
)
from bicameral.security.tokens import TokenVerifier

__all__ = ["AuthSettings", "authenticator_for", "authorizer_for", "embedded_key", "verifier_for"]

DEFAULT_NAME = "bicameral"
KNOWN = {"issuer", "audience", "jwks_file", "algorithms", "leeway"}


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The ``[auth]`` settings, checked."""

    issuer: str = DEFAULT_NAME
    audience: str = DEFAULT_NAME
    jwks_file: Path | None = None
    algorithms: frozenset[str] = frozenset({"HS256"})
    leeway: float = 10.0

    @classmethod
    def from_mapping(cls, auth: Mapping[str, Any]) -> AuthSettings:
        """Returns the auth settings of ``auth``; raises ConfigurationError for unknown keys."""
        unknown = set(auth) - KNOWN
        if unknown:
            raise ConfigurationError(f"unknown [auth] settings {sorted(unknown)}")
        jwks = auth.get("jwks_file")
        default_algorithms = ["RS256", "EdDSA"] if jwks else ["HS256"]
        algorithms = auth.get("algorithms") or default_algorithms
        if isinstance(algorithms, str):
            algorithms = [a.strip() for a in algorithms.split(",") if a.strip()]
        try:
            return cls(
                issuer=str(auth.get("issuer") or DEFAULT_NAME),
                audience=str(auth.get("audience") or DEFAULT_NAME),
                jwks_file=Path(jwks) if jwks else None,
                algorithms=frozenset(str(a) for a in algorithms),
                leeway=float(auth.get("leeway", 10.0)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad [auth] setting: {exc}") from None


def embedded_key(settings: Settings, *, create: bool = True) -> bytes:
    """Returns the embedded HS256 signing key of the data dir, made on first use unless
    ``create`` is False (then a missing key is a ConfigurationError saying where it looked)."""
    if not create:
        return existing_secret(settings.data_dir)
    return embedded_secret(settings.data_dir)


def verifier_for(settings: Settings) -> TokenVerifier:
    """Returns the token verifier the settings ask for."""
    auth = AuthSettings.from_mapping(settings.auth)
    keys: KeySet
    if auth.jwks_file is not None:
        keys = JwksFileKeySet(auth.jwks_file, auth.algorithms)
    else:
        if auth.algorithms != {"HS256"}:
            raise ConfigurationError("without a jwks_file, auth verifies HS256 tokens only")
        keys = EmbeddedKeySet(embedded_key(settings))
    return TokenVerifier(keys, auth.issuer, auth.audience, auth.algorithms, auth.leeway)


def authenticator_for(settings: Settings) -> Authenticator:
    """Returns the HTTP authenticator of bearer tokens the settings describe."""
    return BearerAuthenticator(verifier_for(settings))


def authorizer_for(settings: Settings) -> PolicyAuthorizer:
    """Returns the authorizer every bus of the process uses: handlers' policies, deny by default."""
    return PolicyAuthorizer()
