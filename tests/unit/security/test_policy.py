"""Policies: roles, public access, ownership of the message; deny by default."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bicameral import Command, Principal
from bicameral.context import ANONYMOUS
from bicameral.security.policy import PUBLIC, Decision, Policy, allow, field_of


class Deposit(Command):
    customer_id: str
    amount: int


ALICE = Principal("alice", frozenset({"customer"}))
ADMIN = Principal("root", frozenset({"admin"}))
CUSTOMER_OR_ADMIN = allow(roles={"admin"}) | allow(roles={"customer"}, owner="customer_id")


def test_a_role_rule_allows_holders_of_any_of_its_roles() -> None:
    policy = allow(roles={"admin", "staff"})
    assert policy.decide(Principal("s", frozenset({"staff"})), Deposit(customer_id="x", amount=1))
    assert policy.decide(ADMIN, Deposit(customer_id="x", amount=1)) is Decision.ALLOW


def test_a_role_rule_denies_other_roles_and_the_anonymous() -> None:
    policy = allow(roles={"admin"})
    assert policy.decide(ALICE, Deposit(customer_id="alice", amount=1)) is Decision.DENY
    assert policy.decide(ANONYMOUS, Deposit(customer_id="", amount=1)) is Decision.DENY


def test_an_owner_rule_allows_only_the_principal_named_in_the_message() -> None:
    assert CUSTOMER_OR_ADMIN.decide(ALICE, Deposit(customer_id="alice", amount=1)).value == "allow"
    assert CUSTOMER_OR_ADMIN.decide(ALICE, Deposit(customer_id="bob", amount=1)) is Decision.DENY


def test_rules_are_alternatives() -> None:
    assert CUSTOMER_OR_ADMIN.decide(ADMIN, Deposit(customer_id="bob", amount=1)) is Decision.ALLOW
    assert len(CUSTOMER_OR_ADMIN.rules) == 2


def test_public_allows_even_the_anonymous() -> None:
    assert PUBLIC.decide(ANONYMOUS, Deposit(customer_id="", amount=0)) is Decision.ALLOW
    assert PUBLIC.is_public
    assert not CUSTOMER_OR_ADMIN.is_public


def test_a_rule_without_roles_allows_any_authenticated_principal() -> None:
    policy = allow()
    assert policy.decide(Principal("x"), Deposit(customer_id="", amount=0)) is Decision.ALLOW
    assert policy.decide(ANONYMOUS, Deposit(customer_id="", amount=0)) is Decision.DENY


def test_a_record_owner_rule_allows_only_the_principals_records() -> None:
    policy = allow(roles={"admin"}) | allow(roles={"customer"}, record_owner="customer_id")
    msg = Deposit(customer_id="", amount=0)
    assert policy.decide(ALICE, msg) is Decision.OWN_RECORDS
    assert policy.owns(ALICE, msg, "orders", {"customer_id": "alice"})
    assert not policy.owns(ALICE, msg, "orders", {"customer_id": "bob"})
    assert not policy.owns(ALICE, msg, "orders", {"other": "alice"})
    assert not policy.owns(ALICE, msg, None, Deposit(customer_id="bob", amount=1))
    assert policy.decide(ADMIN, msg) is Decision.ALLOW


def test_a_record_owner_rule_may_be_limited_to_some_collections() -> None:
    policy = allow(roles={"customer"}, record_owner="customer_id", collections={"orders"})
    msg = Deposit(customer_id="", amount=0)
    assert not policy.owns(ALICE, msg, "orders", {"customer_id": "bob"})
    assert policy.owns(ALICE, msg, "catalogue", {"sku": "mug"})
    assert not policy.owns(ALICE, msg, None, Deposit(customer_id="bob", amount=1))


def test_fields_are_read_from_documents_and_objects() -> None:
    assert field_of({"a": 1}, "a") == 1
    assert field_of(Deposit(customer_id="c", amount=1), "customer_id") == "c"
    assert field_of(object(), "missing") is None


@given(
    subject=st.text(max_size=8),
    roles=st.frozensets(st.sampled_from(["admin", "staff", "customer", "service", "x"])),
)
def test_an_empty_policy_denies_everyone(subject: str, roles: frozenset[str]) -> None:
    principal = Principal(subject, roles)
    assert Policy().decide(principal, Deposit(customer_id=subject, amount=1)) is Decision.DENY


def test_a_policy_admits_whoever_some_rule_could_allow() -> None:
    assert CUSTOMER_OR_ADMIN.admits(ALICE)
    assert CUSTOMER_OR_ADMIN.admits(ADMIN)
    assert not CUSTOMER_OR_ADMIN.admits(Principal("sam", frozenset({"staff"})))
    assert not CUSTOMER_OR_ADMIN.admits(ANONYMOUS)
    assert PUBLIC.admits(ANONYMOUS)
    assert allow().admits(Principal("anyone"))
