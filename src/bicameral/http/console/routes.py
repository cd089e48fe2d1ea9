"""The routes of ``/console``: sign-in and sign-out, the pages, the live status stream.

``GET /console`` (overview), ``/console/events`` (filters ``service``, ``stream``, ``type``,
``principal``, ``limit``), ``/console/events/{service}/{position}``, ``/console/parked``
(``POST .../{id}/retry`` and ``.../{id}/skip``), ``/console/rebuilds``;
``GET /console/stream`` (``text/event-stream`` of the overview's status, one event a second
from one poller per process; a stream ends after ``STREAM_SECONDS`` and the browser
reconnects, checking the session again); ``GET /console/api/overview`` (the same as JSON);
``GET /console/session``; ``GET|POST /console/sign-in``; ``POST /console/sign-out``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from bicameral.envelope import Envelope
from bicameral.errors import (
    AccessError,
    BicameralError,
    InvalidMessageError,
    NotFoundError,
)
from bicameral.http.console.access import COOKIE, Access, read_form, secure_headers
from bicameral.http.console.html import Safe, static_file
from bicameral.http.console.layout import query, sign_in_page
from bicameral.http.console.log import event_page, events_page
from bicameral.http.console.pages import overview_page, parked_page, rebuilds_page
from bicameral.runtime.console import SIGN_IN_PATH, Console
from bicameral.runtime.dlq import DeadLetters
from bicameral.runtime.history import EventFilter, History, readable
from bicameral.runtime.node import Node
from bicameral.runtime.overview import overview
from bicameral.runtime.poller import Poller
from bicameral.runtime.status import RebuildStatus, rebuild_status
from bicameral.security.authn import Authenticator
from bicameral.service import Service
from bicameral.versions import State, read_catalog

__all__ = ["MAX_EVENTS", "STREAM_SECONDS", "console_router"]

STREAM_SECONDS = 10.0
"""A stream ends after this long and the browser reconnects, checking the session again."""
MAX_EVENTS = 500
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_CROSS_SITE = "cross-site"


def _html(body: Safe, status: int = 200) -> Response:
    return secure_headers(HTMLResponse(str(body), status_code=status))


def _to(path: str, **params: str) -> Response:
    return secure_headers(RedirectResponse(path + query(**params), status_code=303))


def _limit(text: str | None) -> int:
    if not text:
        return 50
    if not text.isdigit() or not 1 <= int(text) <= MAX_EVENTS:
        raise InvalidMessageError(
            f"limit must be 1 to {MAX_EVENTS}",
            [{"loc": ["query", "limit"], "msg": f"1 to {MAX_EVENTS}", "type": "value_error"}],
        )
    return int(text)


async def _builds(node: Node) -> list[RebuildStatus]:
    found = []
    for rt in node.runtimes.values():
        catalog = await read_catalog(rt.reads)
        for projection in rt.service.projections:
            live = catalog.live(projection.name)
            for version in catalog.versions(projection.name):
                newer_failure = version.state == State.FAILED and version.number > live
                if version.state == State.BUILDING or newer_failure:
                    found.append(await rebuild_status(rt, projection, version.number))
    return found


def console_router(node: Node, services: Sequence[Service], authn: Authenticator) -> APIRouter:
    """Returns the console's routes over ``services`` (those ``node`` lacks are read through a
    node of no role), for admins signed in or holding a bearer token."""
    console = Console(node, services)
    access = Access(console, authn)

    async def read() -> dict[str, Any]:
        return await overview(await console.ready())

    poller: Poller[dict[str, Any]] = Poller(read)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await console.close()

    router = APIRouter(prefix="/console", include_in_schema=False, lifespan=lifespan)

    @router.get("")
    async def overview_route(request: Request) -> Response:
        viewer = await access.page_viewer(request)
        if isinstance(viewer, Response):
            return viewer
        reading = poller.latest or await read()
        return _html(overview_page(viewer, console.describe(), reading))

    @router.get("/api/overview")
    async def overview_json(request: Request) -> Response:
        await access.viewer(request)
        return Response(orjson.dumps(await read()), media_type="application/json")

    @router.get("/stream")
    async def stream(request: Request) -> Response:
        await access.viewer(request)
        return StreamingResponse(
            _updates(poller),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/session")
    async def session(request: Request) -> Response:
        viewer = await access.viewer(request)
        body = {"subject": viewer.principal.subject, "session": viewer.session is not None}
        return Response(orjson.dumps(body), media_type="application/json")

    @router.get("/sign-in")
    async def sign_in(request: Request) -> Response:
        token = request.query_params.get("token")
        if token:
            try:
                opened = await (await console.sign_ins()).redeem(token)
            except AccessError as exc:
                return _html(sign_in_page(exc.detail), exc.status)
            return _signed_in(request, opened.id)
        message = ""
        if "expired" in request.query_params:
            message = "Your session has ended: sign in again."
        elif "signed-out" in request.query_params:
            message = "You are signed out."
        cross = request.headers.get("sec-fetch-site") == _CROSS_SITE
        return _html(sign_in_page(message, refresh=cross))

    @router.post("/sign-in")
    async def sign_in_with_token(request: Request) -> Response:
        access.same_origin(request)
        token = (await read_form(request)).get("token", "").strip()
        try:
            opened = await (await console.sign_ins()).sign_in(token)
        except AccessError as exc:
            return _html(sign_in_page(exc.detail), exc.status)
        return _signed_in(request, opened.id)

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        viewer, _ = await access.changer(request)
        if viewer.session is not None:
            await (await console.sign_ins()).close(viewer.session)
        response = _to(SIGN_IN_PATH, **{"signed-out": "1"})
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
        return response

    @router.get("/events")
    async def events(request: Request) -> Response:
        viewer = await access.page_viewer(request)
        if isinstance(viewer, Response):
            return viewer
        node = await console.ready()
        params = request.query_params
        filters = {k: params.get(k, "").strip() for k in ("service", "stream", "type", "principal")}
        limit = _limit(params.get("limit"))
        if filters["service"] and filters["service"] not in node.runtimes:
            known = ", ".join(sorted(node.runtimes))
            raise InvalidMessageError(
                f"no service {filters['service']!r} (the services: {known})",
                [{"loc": ["query", "service"], "msg": f"one of {known}", "type": "enum"}],
            )
        where = EventFilter(filters["stream"], filters["type"], filters["principal"])
        history = History(node, where, [filters["service"]] if filters["service"] else ())
        found = [
            (name, readable(env, node.runtimes[name].service.registry))
            for name, env in reversed(await history.newest(limit))
        ]
        return _html(events_page(viewer, sorted(node.runtimes), filters, limit, found))

    @router.get("/events/{service}/{position}")
    async def event(request: Request, service: str, position: int) -> Response:
        viewer = await access.page_viewer(request)
        if isinstance(viewer, Response):
            return viewer
        node = await console.ready()
        env = await _event(node, service, position)
        shown = readable(env, node.runtimes[service].service.registry)
        return _html(event_page(viewer, service, shown, env.type))

    @router.get("/parked")
    async def parked(request: Request) -> Response:
        viewer = await access.page_viewer(request)
        if isinstance(viewer, Response):
            return viewer
        found = await DeadLetters(await console.ready()).sequences()
        message = request.query_params.get("message", "")
        return _html(parked_page(viewer, [f.sequence for f in found], message))

    @router.post("/parked/{sequence}/retry")
    async def retry(request: Request, sequence: str) -> Response:
        await access.changer(request)
        try:
            result = await DeadLetters(await console.ready()).retry(sequence)
        except BicameralError as exc:
            return _to("/console/parked", message=exc.detail)
        if result.ok:
            return _to("/console/parked", message=f"retried {sequence}: {result.applied} applied")
        failure = result.failure
        why = f"{failure.error}: {failure.message}" if failure else "failed"
        return _to(
            "/console/parked",
            message=f"{sequence} failed again after {result.applied} applied ({why}); "
            f"{result.left} still parked",
        )

    @router.post("/parked/{sequence}/skip")
    async def skip(request: Request, sequence: str) -> Response:
        viewer, form = await access.changer(request)
        letters = DeadLetters(await console.ready())
        try:
            await letters.skip(sequence, form.get("reason", ""), viewer.principal.subject)
        except BicameralError as exc:
            return _to("/console/parked", message=exc.detail)
        return _to("/console/parked", message=f"skipped {sequence}")

    @router.get("/rebuilds")
    async def rebuilds(request: Request) -> Response:
        viewer = await access.page_viewer(request)
        if isinstance(viewer, Response):
            return viewer
        return _html(rebuilds_page(viewer, await _builds(await console.ready())))

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        body = static_file(name)
        kind = _TYPES.get(name[name.rfind(".") :]) if "." in name else None
        if body is None or kind is None:
            raise NotFoundError(f"no console file {name!r}")
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    return router


def _signed_in(request: Request, session_id: str) -> Response:
    """Returns the way to the overview, setting the session cookie: a browser-session cookie,
    so that once the server ends the session the browser still says it ended."""
    response = _to("/console")
    response.set_cookie(
        COOKIE,
        session_id,
        path="/console",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def _event(node: Node, service: str, position: int) -> Envelope:
    rt = node.runtimes.get(service)
    if rt is None or position < 1:
        raise NotFoundError(f"no event {service}/{position}")
    found = await rt.events.read_all(position - 1, 1)
    if not found or found[0].position != position:
        raise NotFoundError(f"no event {service}/{position}")
    return found[0]


async def _updates(poller: Poller[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Yields the overview's status as server-sent events for ``STREAM_SECONDS``."""
    yield b"retry: 1000\n\n"
    loop = asyncio.get_running_loop()
    end = loop.time() + STREAM_SECONDS
    async with poller.watch() as watch:
        while (left := end - loop.time()) > 0:
            reading = await watch.next(min(left, 10.0))
            if reading is None:
                yield b": keep-alive\n\n"
                continue
            yield b"event: status\ndata: " + orjson.dumps(reading) + b"\n\n"
