"""A table of good and bad requests to the command and query routes, sent over raw ASGI so
that every byte of each answer (status, header list in order, body) can be compared."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message

from bicameral.security.tokens import MAX_TOKEN_BYTES, issue_token

__all__ = ["EXCHANGES", "Answer", "Exchange", "asgi", "converse"]

LAST_TOKEN = "<the consistency token of the last command answered 200>"
ROLES = {"admin": ["admin"], "staff": ["staff"], "alice": ["customer"], "bob": ["customer"]}


@dataclass(frozen=True)
class Exchange:
    """One request: who sends it (a subject of ``ROLES``, None: no token, or the raw
    ``Authorization`` value with ``auth=`` ...), and what it sends."""

    method: str
    path: str
    query: bytes = b""
    body: Any = None
    chunks: Sequence[bytes] | None = None
    headers: Sequence[tuple[str, str]] = ()
    who: str | None = "admin"
    authorization: str | None = None
    json: bool = True


@dataclass
class Answer:
    """What the app sent back."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    messages: list[str] = field(default_factory=list)


async def asgi(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    chunks: Sequence[bytes] = (b"",),
) -> Answer:
    """Returns the answer of ``app`` to one HTTP request sent as ASGI messages."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "state": {},
    }
    pending = list(chunks)

    async def receive() -> Message:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], list(start["headers"]), body, [m["type"] for m in sent])


def _authorization(exchange: Exchange, secret: bytes) -> str | None:
    if exchange.authorization is not None:
        return exchange.authorization
    if exchange.who is None:
        return None
    token = issue_token(secret, subject=exchange.who, roles=ROLES[exchange.who])
    return f"Bearer {token}"


async def converse(app: ASGIApp, secret: bytes, exchanges: Sequence[Exchange] = ()) -> list[Answer]:
    """Returns the answers of ``app`` to ``exchanges`` (default: ``EXCHANGES``), sent in order;
    a header or query value ``LAST_TOKEN`` is the last 200 command's consistency token."""
    answers: list[Answer] = []
    token = ""
    for exchange in exchanges or EXCHANGES:
        headers: list[tuple[bytes, bytes]] = []
        authorization = _authorization(exchange, secret)
        if authorization is not None:
            headers.append((b"authorization", authorization.encode("latin-1")))
        chunks: Sequence[bytes] = (b"",)
        if exchange.body is not None or exchange.chunks is not None:
            if exchange.chunks is not None:
                chunks = exchange.chunks
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                raw = exchange.body
                if not isinstance(raw, bytes):
                    raw = json.dumps(raw).encode()
                chunks = (raw,)
                headers.append((b"content-length", str(len(raw)).encode()))
            if exchange.json:
                headers.append((b"content-type", b"application/json"))
        for name, value in exchange.headers:
            headers.append((name.lower().encode(), value.replace(LAST_TOKEN, token).encode()))
        answer = await asgi(
            app,
            exchange.method,
            exchange.path,
            query=exchange.query,
            headers=headers,
            chunks=chunks,
        )
        if answer.status == 200 and "/commands/" in exchange.path:
            token = dict(answer.headers)[b"x-consistency-token"].decode()
        answers.append(answer)
    return answers


REGISTER = "/inventory/commands/RegisterProduct"
RECEIVE = "/inventory/commands/ReceiveStock"
GET = "/inventory/queries/GetProduct"
PEN = {"sku": "pen", "name": "Pen", "price_cents": 150}
SEEN = (("X-Consistency-Token", LAST_TOKEN),)

EXCHANGES: tuple[Exchange, ...] = (
    Exchange("POST", REGISTER, body=PEN),
    Exchange("POST", REGISTER, body=PEN),  # 409: registered already
    Exchange("POST", REGISTER, body={**PEN, "sku": "ink"}, who="staff"),
    Exchange(
        "POST",
        RECEIVE,
        body={"sku": "pen", "quantity": 3},
        headers=(
            ("Idempotency-Key", "k-1"),
            ("X-Correlation-Id", "corr-1"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
    ),
    Exchange(
        "POST", RECEIVE, body={"sku": "pen", "quantity": 3}, headers=(("Idempotency-Key", "k-1"),)
    ),
    Exchange(
        "POST", RECEIVE, body={"sku": "pen", "quantity": 4}, headers=(("Idempotency-Key", "k-1"),)
    ),
    Exchange(
        "POST", RECEIVE, body={"sku": "pen", "quantity": 1}, headers=(("traceparent", "\x7fbad"),)
    ),
    Exchange("POST", RECEIVE, body={"sku": "nope", "quantity": 1}),  # 404: no such product
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, who=None),  # 401
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, who="alice"),  # 403
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, authorization="Basic YTpi"),
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, authorization="Bearer"),
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, authorization="Bearer x.y.z"),
    Exchange(
        "POST", RECEIVE, body={"sku": "pen"}, authorization="Bearer " + "a" * (MAX_TOKEN_BYTES + 1)
    ),
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1}, json=False),  # 415
    Exchange(
        "POST",
        RECEIVE,
        body={"sku": "pen", "quantity": 1},
        json=False,
        headers=(("Content-Type", "text/plain"),),
    ),
    Exchange(
        "POST",
        RECEIVE,
        body={"sku": "pen", "quantity": 1},
        json=False,
        headers=(("Content-Type", "application/merge-patch+json; charset=utf-8"),),
    ),
    Exchange("POST", RECEIVE, body=b'{"sku": "pen", "quantity": '),  # not JSON
    Exchange("POST", RECEIVE, body=b""),  # {}: both fields missing
    Exchange("POST", RECEIVE, body=b"  \n"),
    Exchange("POST", RECEIVE, body=b"[1, 2]"),
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": "1"}),
    Exchange("POST", RECEIVE, body={"sku": "pen", "quantity": 1, "colour": "red"}),
    Exchange("POST", RECEIVE, body={"sku": "p\u00e9n!", "quantity": 10**7}),
    Exchange("POST", RECEIVE, body=b'{"sku": "' + b"a" * 5000 + b'"}'),  # over the body limit
    Exchange("POST", RECEIVE, chunks=(b'{"sku": "pen", ', b'"quantity": 2}')),
    Exchange("POST", RECEIVE, chunks=(b'{"sku": "', b"a" * 3000, b"a" * 3000, b'"}')),
    Exchange(
        "POST", RECEIVE, body={"sku": "pen", "quantity": 1}, headers=(("Idempotency-Key", ""),)
    ),
    Exchange(
        "POST",
        RECEIVE,
        body={"sku": "pen", "quantity": 1},
        headers=(("X-Correlation-Id", "a" * 201),),
    ),
    Exchange("POST", RECEIVE, query=b"a=1" + b"&b=2" * 120, body={"sku": "pen", "quantity": 1}),
    Exchange("POST", "/inventory/commands/ReserveStock", body={}),  # internal
    Exchange("POST", "/inventory/commands/ReserveStock", body={}, who="alice"),
    Exchange("POST", "/inventory/commands/Nope", body={}),
    Exchange("POST", RECEIVE + "/", body={"sku": "pen", "quantity": 1}),
    Exchange("GET", RECEIVE),
    Exchange("HEAD", RECEIVE),
    Exchange("PUT", RECEIVE, body={"sku": "pen", "quantity": 1}),
    Exchange("POST", "/inventory/queries/GetProduct", body={}),
    Exchange("GET", GET, query=b"sku=pen", headers=SEEN),
    Exchange("GET", GET, query=b"sku=pen", who=None, headers=SEEN),
    Exchange("GET", GET, query=b"sku=pen", who="alice", headers=SEEN),
    Exchange("GET", GET, query=b"sku=pen", authorization="Bearer x.y.z"),
    Exchange("HEAD", GET, query=b"sku=pen", headers=SEEN),
    Exchange("GET", GET, query=b"sku=missing"),
    Exchange("GET", GET),
    Exchange("GET", GET, query=b"sku="),
    Exchange("GET", GET, query=b"sku=pen&sku=ink"),
    Exchange("GET", GET, query=b"sku=pen&colour=red"),
    Exchange("GET", GET, query=b"sku=p%C3%A9n"),
    Exchange("GET", GET, query=b"sku=pen&" + b"&".join(b"x%d=1" % i for i in range(100))),
    Exchange("GET", GET, query=b"sku=pen", headers=(("X-Consistency-Token", "not a token"),)),
    Exchange("GET", GET, query=b"sku=pen", headers=(("X-Consistency-Timeout", "soon"),)),
    Exchange(
        "GET",
        GET,
        query=b"sku=pen",
        headers=(
            ("X-Consistency-Token", "eyJpbnZlbnRvcnkiOjk5OTl9"),
            ("X-Consistency-Timeout", "0.01"),
        ),
    ),
    Exchange("GET", GET, query=b"sku=pen", headers=(("X-Correlation-Id", "\x01"),)),
    Exchange("GET", "/inventory/queries/ListProducts", headers=SEEN),
    Exchange("GET", "/inventory/queries/ListProducts", query=b"limit=2"),
    Exchange("GET", "/inventory/queries/Nope"),
    Exchange("GET", GET + "/", query=b"sku=pen"),
    Exchange("DELETE", GET),
    Exchange(
        "POST",
        "/payments/commands/DepositFunds",
        body={"customer_id": "alice", "amount_cents": 500},
        who="alice",
    ),
    Exchange(
        "POST",
        "/payments/commands/DepositFunds",
        body={"customer_id": "bob", "amount_cents": 500},
        who="alice",
    ),
    Exchange(
        "GET", "/payments/queries/GetBalance", query=b"customer_id=alice", who="alice", headers=SEEN
    ),
    Exchange("GET", "/payments/queries/GetBalance", query=b"customer_id=bob", who="alice"),
    Exchange(
        "POST",
        "/orders/commands/PlaceOrder",
        body={"order_id": "o1", "customer_id": "alice", "lines": [{"sku": "pen", "quantity": 1}]},
        who="alice",
    ),
    Exchange(
        "POST",
        "/orders/commands/PlaceOrder",
        body={"order_id": "o1", "customer_id": "alice", "lines": [{"sku": "pen", "quantity": "1"}]},
        who="alice",
    ),
    Exchange("GET", "/orders/queries/GetOrder", query=b"order_id=o1", who="alice", headers=SEEN),
    Exchange("GET", "/orders/queries/GetOrder", query=b"order_id=o1", who="bob"),
    Exchange("GET", "/orders/queries/ListCustomerOrders", query=b"customer_id=alice", who="bob"),
)
