"""The policy authorizer: each handler's declared policy decides, and nothing else allows.

- A service identity (a reaction acting for its own service) may send any command of the
  service; internal commands are for service identities only.
- Otherwise the handler's ``policy=`` decides; a handler without one is denied (deny by default).
- A refused anonymous caller gets AuthenticationError (401), an authenticated one
  PermissionDeniedError (403).
"""

from __future__ import annotations

import logging

from bicameral.bus import CommandCall, QueryCall, RecordFilter
from bicameral.context import Principal
from bicameral.errors import AuthenticationError, PermissionDeniedError
from bicameral.messages import Message
from bicameral.security.policy import Decision, Policy
from bicameral.service import CommandHandler, QueryHandler

__all__ = ["PolicyAuthorizer", "refuse"]

log = logging.getLogger("bicameral.security")


def refuse(principal: Principal, what: str) -> AuthenticationError | PermissionDeniedError:
    """Returns the error refusing ``principal``: 401 when anonymous, else 403."""
    log.info("refused %s to %s", what, principal.subject or "anonymous")
    if principal.is_anonymous:
        return AuthenticationError(f"{what} needs credentials")
    return PermissionDeniedError(f"{what} is not allowed for {principal.subject}")


def _policy(handler_policy: object) -> Policy | None:
    return handler_policy if isinstance(handler_policy, Policy) else None


class PolicyAuthorizer:
    """Authorizes each message by its handler's Policy; denies by default."""

    async def authorize_command(self, call: CommandCall) -> None:
        """Returns when the command may run; raises AuthenticationError or PermissionDeniedError."""
        principal = call.context.principal
        name = call.handler.command.message_name
        if principal.service is not None:
            return
        if call.handler.internal:
            raise refuse(principal, f"{name} (internal: only services may send it)")
        self._check(principal, call.command, _policy(call.handler.policy), name)

    async def authorize_query(self, call: QueryCall) -> None:
        """Returns when the query may run; raises AuthenticationError or PermissionDeniedError."""
        name = call.handler.query.message_name
        self._check(call.context.principal, call.query, _policy(call.handler.policy), name)

    def record_filter(self, call: CommandCall | QueryCall) -> RecordFilter | None:
        """Returns the ownership test of a partly allowed caller, or None when it sees all."""
        principal = call.context.principal
        message: Message = call.command if isinstance(call, CommandCall) else call.query
        policy = _policy(call.handler.policy)
        if principal.service is not None or policy is None:
            return None
        if policy.decide(principal, message) is not Decision.OWN_RECORDS:
            return None
        return lambda collection, record: policy.owns(principal, message, collection, record)

    def screen(self, principal: Principal, handler: CommandHandler | QueryHandler) -> None:
        """Raises unless some message of ``handler`` could be allowed for ``principal``."""
        if principal.service is not None:
            return
        if isinstance(handler, CommandHandler):
            name = handler.command.message_name
            if handler.internal:
                raise refuse(principal, f"{name} (internal: only services may send it)")
        else:
            name = handler.query.message_name
        policy = _policy(handler.policy)
        if policy is None or not policy.admits(principal):
            raise refuse(principal, name)

    @staticmethod
    def _check(principal: Principal, message: Message, policy: Policy | None, name: str) -> None:
        if policy is None or policy.decide(principal, message) is Decision.DENY:
            raise refuse(principal, name)
