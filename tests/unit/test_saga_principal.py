"""The identity reactions act with: the user behind the whole chain of events, never a service."""

from __future__ import annotations

from datetime import UTC, datetime

from bicameral import Envelope, Principal
from bicameral.workers.reactions import service_principal


def caused_by(principal: Principal) -> Envelope:
    return Envelope(
        "id", "s.E.v1", "s", "x-1", datetime.now(UTC), 1, 1, {}, {"principal": principal.to_dict()}
    )


def test_a_reaction_acts_for_the_user_who_caused_the_event() -> None:
    user = Principal(subject="alice", roles=frozenset({"customer"}))
    acting = service_principal("orders", caused_by(user))
    assert (acting.subject, acting.service, acting.on_behalf_of) == (
        "service:orders",
        "orders",
        "alice",
    )


def test_the_user_is_passed_along_a_chain_of_services() -> None:
    first = service_principal("inventory", caused_by(Principal(subject="alice")))
    assert service_principal("orders", caused_by(first)).on_behalf_of == "alice"


def test_a_service_acting_for_nobody_passes_nobody_on() -> None:
    first = service_principal("inventory", caused_by(Principal(subject="")))
    assert first.on_behalf_of is None
    assert service_principal("orders", caused_by(first)).on_behalf_of is None
