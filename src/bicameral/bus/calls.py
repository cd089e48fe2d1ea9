"""What travels through a bus: a command or query call, a command's result, and the
authorizer port both buses consult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bicameral.consistency import ConsistencyToken
from bicameral.context import MessageContext, Principal
from bicameral.envelope import Envelope
from bicameral.errors import PermissionDeniedError
from bicameral.messages import Command, Query
from bicameral.service import CommandHandler, QueryHandler

__all__ = [
    "AllowAll",
    "Authorizer",
    "CommandCall",
    "CommandResult",
    "QueryCall",
    "RecordFilter",
]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What an applied command produced: its service's log position and stream versions."""

    service: str
    position: int
    versions: dict[str, int]
    replayed: bool = False
    envelopes: list[Envelope] = field(default_factory=list)

    @property
    def token(self) -> ConsistencyToken:
        """Returns the consistency token naming the position this command reached."""
        return ConsistencyToken({self.service: self.position})

    def to_json(self) -> dict[str, Any]:
        """Returns the HTTP response body."""
        body: dict[str, Any] = {
            "consistency_token": self.token.encode(),
            "position": self.position,
            "streams": self.versions,
        }
        if len(self.versions) == 1:
            ((stream_id, version),) = self.versions.items()
            body["stream_id"] = stream_id
            body["version"] = version
        return body


@dataclass(frozen=True, slots=True)
class CommandCall:
    """One command on its way through the middleware chain."""

    command: Command
    context: MessageContext
    handler: CommandHandler

    @property
    def message_name(self) -> str:
        """Returns the command's type name."""
        return self.handler.command.message_name


@dataclass(frozen=True, slots=True)
class QueryCall:
    """One query on its way through the middleware chain."""

    query: Query
    context: MessageContext
    handler: QueryHandler
    token: ConsistencyToken | None
    timeout: float

    @property
    def message_name(self) -> str:
        """Returns the query's type name."""
        return self.handler.query.message_name


RecordFilter = Callable[[str | None, Any], bool]
"""Returns True when the caller may see a record: ``(collection, document)`` of a read model,
or ``(None, aggregate)``."""


class Authorizer(Protocol):
    """Decides whether a principal may send a message; raises AccessError when not."""

    async def authorize_command(self, call: CommandCall) -> None:
        """Returns when the command may run; raises AuthenticationError or PermissionDeniedError."""
        ...

    async def authorize_query(self, call: QueryCall) -> None:
        """Returns when the query may run; raises AuthenticationError or PermissionDeniedError."""
        ...

    def record_filter(self, call: CommandCall | QueryCall) -> RecordFilter | None:
        """Returns which loaded records (aggregates, documents) the caller may see; None: all.

        A record the caller may not see looks as if it did not exist.
        """
        ...

    def screen(self, principal: Principal, handler: CommandHandler | QueryHandler) -> None:
        """Returns unless no message of ``handler`` could be allowed for ``principal``; checked
        before the message is read, so a caller without the right never learns its schema's
        errors. Raises AuthenticationError or PermissionDeniedError."""
        ...


class AllowAll:
    """The permissive authorizer: anyone may send anything but internal commands."""

    async def authorize_command(self, call: CommandCall) -> None:
        """Refuses internal commands to anyone but a service identity."""
        if call.handler.internal and call.context.principal.service is None:
            raise PermissionDeniedError(f"{call.handler.command.message_name} is internal")

    async def authorize_query(self, call: QueryCall) -> None:
        """Allows every query."""

    def record_filter(self, call: CommandCall | QueryCall) -> RecordFilter | None:
        """Returns None: every record is visible."""
        return None

    def screen(self, principal: Principal, handler: CommandHandler | QueryHandler) -> None:
        """Lets everyone through (internal commands are refused when sent)."""
