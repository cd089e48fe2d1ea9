"""Declarative access policies, given as ``policy=`` beside each command and query handler::

    ADMIN = allow(roles={"admin"})
    inventory.command(key="sku", policy=ADMIN | allow(roles={"staff"}))
    payments.command(policy=ADMIN | allow(roles={"customer"}, owner="customer_id"))
    orders.query(policy=ADMIN | allow(roles={"customer"}, record_owner="customer_id",
                                      collections={"orders"}))
    inventory.query(policy=PUBLIC)

A policy is a list of rules; a principal may send the message when any rule allows it. A rule
allows when the principal holds one of its ``roles`` (or, with no roles, is authenticated), and
``owner``, a field of the message, equals the principal's subject. ``record_owner`` names a
field of the aggregate or read-model documents the handler loads (``collections`` limits it to
some collections): records whose field is not the subject are hidden, so another user's
entity looks like one that does not exist (404).
A handler with no policy is denied to everyone but the service itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bicameral.context import Principal
from bicameral.messages import Message

__all__ = ["PUBLIC", "Decision", "Policy", "Rule", "allow", "field_of"]


class Decision(Enum):
    """What a policy says about one principal and message."""

    DENY = "deny"
    ALLOW = "allow"
    OWN_RECORDS = "own-records"


def field_of(record: Any, name: str) -> Any:
    """Returns field ``name`` of a document (mapping) or an aggregate (attribute), or None."""
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


@dataclass(frozen=True, slots=True)
class Rule:
    """One way to be allowed: by role, by owning the message, or by owning the records read."""

    roles: frozenset[str] = frozenset()
    public: bool = False
    owner: str | None = None
    record_owner: str | None = None
    collections: frozenset[str] = frozenset()

    def decide(self, principal: Principal, message: Message) -> Decision:
        """Returns ALLOW, OWN_RECORDS (allowed for the principal's records only) or DENY."""
        if self.public:
            return Decision.ALLOW
        if principal.is_anonymous:
            return Decision.DENY
        if self.roles and not principal.has_role(*self.roles):
            return Decision.DENY
        if self.owner is not None and field_of(message, self.owner) != principal.subject:
            return Decision.DENY
        return Decision.ALLOW if self.record_owner is None else Decision.OWN_RECORDS

    def owns(self, principal: Principal, collection: str | None, record: Any) -> bool:
        """Returns True when ``record`` (a document of ``collection``, or an aggregate when
        None) belongs to ``principal`` under this rule, or is not one this rule restricts."""
        if self.record_owner is None:
            return True
        if collection is not None and self.collections and collection not in self.collections:
            return True
        value = field_of(record, self.record_owner)
        return value is not None and value == principal.subject

    def __or__(self, other: Rule | Policy) -> Policy:
        return Policy((self,)) | other


@dataclass(frozen=True, slots=True)
class Policy:
    """Rules of which any one allows."""

    rules: tuple[Rule, ...] = ()

    def __or__(self, other: Rule | Policy) -> Policy:
        more = other.rules if isinstance(other, Policy) else (other,)
        return Policy(self.rules + more)

    def decide(self, principal: Principal, message: Message) -> Decision:
        """Returns ALLOW when a rule allows outright, else OWN_RECORDS when one allows partly."""
        best = Decision.DENY
        for rule in self.rules:
            decision = rule.decide(principal, message)
            if decision is Decision.ALLOW:
                return decision
            if decision is Decision.OWN_RECORDS:
                best = decision
        return best

    def owns(
        self, principal: Principal, message: Message, collection: str | None, record: Any
    ) -> bool:
        """Returns True when a rule that allows ``principal`` partly covers ``record``."""
        return any(
            rule.decide(principal, message) is Decision.OWN_RECORDS
            and rule.owns(principal, collection, record)
            for rule in self.rules
        )

    def admits(self, principal: Principal) -> bool:
        """Returns True when some rule could allow ``principal``, whatever the message."""
        return any(
            rule.public
            or (not principal.is_anonymous and (not rule.roles or principal.has_role(*rule.roles)))
            for rule in self.rules
        )

    @property
    def is_public(self) -> bool:
        """Returns True when anyone, even without credentials, is allowed."""
        return any(rule.public for rule in self.rules)


def allow(
    *,
    roles: Iterable[str] = (),
    owner: str | None = None,
    record_owner: str | None = None,
    collections: Iterable[str] = (),
) -> Policy:
    """Returns a one-rule policy: holders of any of ``roles`` (any authenticated principal if
    none), where the message's ``owner`` field and the loaded records' ``record_owner`` field
    are the principal's subject. ``collections`` limits ``record_owner`` to the documents of
    those read-model collections (aggregates are always checked)."""
    return Policy((Rule(frozenset(roles), False, owner, record_owner, frozenset(collections)),))


PUBLIC = Policy((Rule(public=True),))
"""Anyone may send the message, even without credentials."""
