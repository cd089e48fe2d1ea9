"""Test apps for parked events, broken for some keys until a flag file says they are fixed.

``PARKING_BROKEN`` names a file listing broken keys, one per line; a missing file (or variable)
means nothing is broken. Every process reads it when it handles an event, so a test "deploys
the fix" for all of them (and for ``bicameral dlq retry``) by deleting the file.

- ``services``: ``bank`` takes deposits; ``ledger`` folds them, read from bank through the
  transport, into a document per account (``books``), and fails for the broken accounts.
- ``shop``: the shop, with orders' ``confirm_paid`` reaction failing for the broken orders, each
  listed by its key ``<customer_id>/<order_id>`` (order ids are per customer).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from bicameral import Aggregate, Command, Envelope, Event, Projection, Service, View, allow
from bicameral.service import Reaction
from shop.app import services as shop_services
from shop.orders.messages import order_key

__all__ = ["BROKEN_ENV", "Deposit", "Deposited", "books", "broken", "services", "shop"]

BROKEN_ENV = "PARKING_BROKEN"


def broken(key: str) -> bool:
    """Returns True while the flag file lists ``key``."""
    path = os.environ.get(BROKEN_ENV)
    if not path:
        return False
    try:
        return key in Path(path).read_text().split()
    except FileNotFoundError:
        return False


class Deposit(Command):
    account: str
    cents: int


class Deposited(Event, name="bank.Deposited"):
    account: str
    cents: int


class Account(Aggregate):
    stream_prefix = "account-"

    def apply(self, event: Event) -> None:
        pass


def deposit(cmd: Deposit, account: Account) -> None:
    """Records a deposit to an account."""
    account.record(Deposited(account=cmd.account, cents=cmd.cents))


books = Projection("books", collections={"accounts": []})


@books.on(Deposited)
async def deposited(event: Deposited, view: View, envelope: Envelope) -> None:
    """Adds a deposit to its account's document, noting the stream version it applied."""
    if broken(envelope.subject):
        raise RuntimeError(f"books cannot fold {envelope.subject}")
    doc = await view.get("accounts", envelope.subject) or {"cents": 0, "versions": []}
    doc["cents"] += event.cents
    doc["versions"].append(envelope.stream_version)
    view.put("accounts", envelope.subject, doc)


def services() -> list[Service]:
    """Returns the bank and its ledger."""
    bank = Service("bank")
    bank.events(Deposited)
    bank.command(key="account", policy=allow(roles={"admin"}))(deposit)
    ledger = Service("ledger")
    ledger.projection(books)
    return [bank, ledger]


def _breakable(reaction: Reaction) -> Reaction:
    original = reaction.fn

    def confirm_paid(event: Any) -> Any:
        key = order_key(event.customer_id, event.order_id)
        if broken(key):
            raise RuntimeError(f"cannot confirm order {key}")
        return original(event)

    return dataclasses.replace(reaction, fn=confirm_paid)


def shop() -> list[Service]:
    """Returns the shop, its orders service's ``confirm_paid`` reaction breakable."""
    found = []
    for service in shop_services():
        reactions = [
            _breakable(r) if r.name == "orders.confirm_paid" else r for r in service.reactions
        ]
        found.append(dataclasses.replace(service, reactions=reactions))
    return found
