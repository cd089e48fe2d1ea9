"""The web console's sign-in: one-time links, sessions, and the services it watches.

A sign-in link carries a JWT for the audience ``<audience>#console`` (so it is no bearer token
for the API), signed with the embedded key, naming an admin, valid ``LINK_TTL`` (5 minutes)
and carrying a unique ``jti``. Opening it claims the ``jti`` as a lease in the sign-in store:
the first claim wins and the lease outlives the link, so a link works once across every
process sharing that store.

A session is a random id in an HttpOnly cookie; the store holds a lease named by a hash of the
id, owned by the admin's subject, for ``[console] session_ttl`` seconds; sign-out releases it.
A session's CSRF token is another hash of its id: it needs no storage, and nobody without the
cookie can compute it.

The sign-in store is the read store of the app's first service by name, which every query-api
process of a deployment reaches. A process serving only some services watches all of them
through a node of no role of its own, started at the console's first use (so does a process
whose roles leave some backend unused: status reads every event store and the transport).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from urllib.parse import quote

from bicameral.context import Principal
from bicameral.errors import AuthenticationError, ConfigurationError
from bicameral.ports import ReadStore
from bicameral.runtime.auth import AuthSettings, embedded_key, verifier_for
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.authorizer import refuse
from bicameral.security.tokens import TokenVerifier, issue_token, principal_of
from bicameral.service import Service

__all__ = [
    "ADMIN_ROLE",
    "LINK_TTL",
    "SIGN_IN_PATH",
    "Console",
    "Session",
    "SignIns",
    "console_audience",
    "sign_in_link",
]

ADMIN_ROLE = "admin"
LINK_TTL = timedelta(minutes=5)
SIGN_IN_PATH = "/console/sign-in"
_LINKS = "console/sign-in/"
_SESSIONS = "console/sessions/"


def console_audience(audience: str) -> str:
    """Returns the audience of sign-in links for an API of ``audience``."""
    return f"{audience}#console"


def _digest(kind: str, secret: str) -> str:
    return hashlib.sha256(f"{kind}\0{secret}".encode()).hexdigest()


def sign_in_link(settings: Settings, base_url: str, subject: str, now: float | None = None) -> str:
    """Returns a one-time sign-in link to the console at ``base_url`` for admin ``subject``,
    valid ``LINK_TTL``; ConfigurationError when auth uses a JWKS file (no key to sign with)."""
    auth = AuthSettings.from_mapping(settings.auth)
    if auth.jwks_file is not None:
        raise ConfigurationError(
            f"auth uses a JWKS file: sign in at {base_url.rstrip('/')}{SIGN_IN_PATH} "
            "with an admin's bearer token from the identity provider"
        )
    token = issue_token(
        embedded_key(settings, create=False),
        subject=subject,
        roles=[ADMIN_ROLE],
        ttl=LINK_TTL,
        issuer=auth.issuer,
        audience=console_audience(auth.audience),
        now=now,
    )
    return f"{base_url.rstrip('/')}{SIGN_IN_PATH}?token={quote(token)}"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in admin: the cookie's secret id, and who."""

    id: str = field(repr=False)
    subject: str = ""

    @property
    def csrf(self) -> str:
        """Returns the token every state-changing request of this session must carry."""
        return _digest("csrf", self.id)

    def check_csrf(self, token: str) -> bool:
        """Returns True when ``token`` is this session's CSRF token."""
        return secrets.compare_digest(token.encode(), self.csrf.encode())


def _admin(principal: Principal) -> None:
    if not principal.has_role(ADMIN_ROLE):
        raise refuse(principal, "the console")


class SignIns:
    """One-time sign-in links and sessions, kept as leases in a shared read store."""

    def __init__(self, store: ReadStore, verifier: TokenVerifier, session_ttl: float) -> None:
        self.store = store
        self.bearer = verifier
        self.links = replace(verifier, audience=console_audience(verifier.audience), leeway=0.0)
        self.session_ttl = session_ttl

    async def redeem(self, token: str) -> Session:
        """Returns a new session for a sign-in link's token, the first time only.

        Raises AuthenticationError when the token is not a valid link (signature, audience,
        expiry, a lifetime over ``LINK_TTL``) or was redeemed before, and
        PermissionDeniedError when it names no admin.
        """
        claims = self.links.claims(token)
        principal = principal_of(claims)
        jti, issued, expires = claims.get("jti"), claims.get("iat"), claims.get("exp")
        if not isinstance(jti, str) or not jti or not isinstance(issued, int | float):
            raise AuthenticationError("the sign-in link lacks its one-time id")
        if not isinstance(expires, int | float) or expires - issued > LINK_TTL.total_seconds():
            raise AuthenticationError("the sign-in link is valid for too long")
        _admin(principal)
        ttl = max(1.0, expires - time.time()) + LINK_TTL.total_seconds()
        if not await self.store.acquire_lease(_LINKS + jti, secrets.token_hex(16), ttl):
            raise AuthenticationError("the sign-in link was used before: get a new one")
        return await self.open(principal.subject)

    async def sign_in(self, token: str) -> Session:
        """Returns a new session for an admin's bearer token (as the API takes it)."""
        principal = self.bearer.verify(token)
        _admin(principal)
        return await self.open(principal.subject)

    async def open(self, subject: str) -> Session:
        """Returns a new session of admin ``subject``."""
        session = Session(secrets.token_urlsafe(32), subject)
        await self.store.acquire_lease(self._name(session.id), subject, self.session_ttl)
        return session

    async def session(self, session_id: str) -> Session | None:
        """Returns the live session of ``session_id``, or None (unknown, expired, signed out)."""
        if not session_id or len(session_id) > 128:
            return None
        name = self._name(session_id)
        found = (await self.store.leases(name)).get(name)
        return None if found is None else Session(session_id, found)

    async def close(self, session: Session) -> None:
        """Ends ``session`` (sign-out)."""
        await self.store.release_lease(self._name(session.id), session.subject)

    @staticmethod
    def _name(session_id: str) -> str:
        return _SESSIONS + _digest("session", session_id)


class Console:
    """What the console reads: ``node``, when its roles use every backend of every service of
    ``services`` (``bicameral up``), else a node of no role over all of them, started at first
    use and stopped by ``close``."""

    def __init__(self, node: Node, services: Sequence[Service]) -> None:
        names = sorted({s.name for s in services} | set(node.runtimes))
        needed = {f"{n}.{kind}" for n in names for kind in ("events", "reads")} | {"transport"}
        self.own = not needed <= set(node.used())
        if self.own:
            known = {s.name: s for s in services} | {
                name: rt.service for name, rt in node.runtimes.items()
            }
            self.node = Node(node.settings, [known[n] for n in names], roles=())
        else:
            self.node = node
        self.host = node
        self.settings = node.settings
        self._started = False
        self._lock = asyncio.Lock()
        self._sign_ins: SignIns | None = None

    async def ready(self) -> Node:
        """Returns the node to read, its backends started."""
        if self.own and not self._started:
            async with self._lock:
                if not self._started:
                    await self.node.start()
                    self._started = True
        return self.node

    async def sign_ins(self) -> SignIns:
        """Returns the sign-in store (the first service's read store)."""
        if self._sign_ins is None:
            node = await self.ready()
            first = node.runtimes[min(node.runtimes)]
            await first.reads.start()  # idempotent: a command-api-only node has not started it
            self._sign_ins = SignIns(
                first.reads, verifier_for(self.settings), self.settings.console.session_ttl
            )
        return self._sign_ins

    async def close(self) -> None:
        """Stops the node of no role, if this console started one."""
        if self.own and self._started:
            await self.node.stop()
            self._started = False

    def describe(self) -> dict[str, list[str]]:
        """Returns every service watched, with the roles this process runs of it (none for
        a service only watched from here)."""
        hosted = self.host.runtimes
        return {
            name: sorted(hosted[name].roles) if name in hosted else []
            for name in sorted(self.node.runtimes)
        }
