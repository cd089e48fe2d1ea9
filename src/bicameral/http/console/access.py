"""Who may see the console, and which requests may change anything.

A request with an ``Authorization`` header is judged by its bearer token alone, as every
admin route: 401 without a valid one, 403 without role admin. Otherwise the session cookie
decides; without a live session a browser asking for a page is sent to the sign-in page, and
anything else is answered 401.

A request that changes state in a session (a POST) must come from the console's own pages: an
``Origin`` (or ``Sec-Fetch-Site``) of another site is refused, and the form field ``csrf`` (or
the ``X-CSRF-Token`` header) must be the session's CSRF token; the cookie's SameSite=Strict
keeps it from cross-site requests besides. A bearer token is never sent by a browser on its
own, so a request carrying one needs no CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bicameral.context import Principal
from bicameral.errors import AuthenticationError, PermissionDeniedError
from bicameral.runtime.console import ADMIN_ROLE, SIGN_IN_PATH, Console, Session
from bicameral.security.authn import Authenticator
from bicameral.security.authorizer import refuse

__all__ = ["COOKIE", "CSP", "Access", "Viewer", "secure_headers"]

COOKIE = "bicameral_console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_CROSS = frozenset({"cross-site", "same-site"})


def secure_headers(response: Response) -> Response:
    """Returns ``response`` with the console's security headers."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at the console: an admin, in a session or by bearer token (no session)."""

    principal: Principal
    session: Session | None = None

    @property
    def csrf(self) -> str:
        """Returns the CSRF token the viewer's forms carry (empty without a session)."""
        return self.session.csrf if self.session else ""


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


class Access:
    """Decides who a console request comes from, and whether it may change state."""

    def __init__(self, console: Console, authn: Authenticator) -> None:
        self.console = console
        self.authn = authn

    async def viewer(self, request: Request) -> Viewer:
        """Returns the viewer of ``request``; AuthenticationError (401) without credentials,
        PermissionDeniedError (403) for a bearer token without role admin."""
        if "authorization" in request.headers:
            principal = await self.authn(request)
            if not principal.has_role(ADMIN_ROLE):
                raise refuse(principal, "the console")
            return Viewer(principal)
        session = await self.session(request)
        if session is None:
            raise AuthenticationError(
                "the console needs a session (sign in at /console/sign-in) or a bearer token "
                "with role admin"
            )
        return Viewer(Principal(subject=session.subject, roles=frozenset({ADMIN_ROLE})), session)

    async def session(self, request: Request) -> Session | None:
        """Returns the live session the request's cookie names, or None."""
        cookie = request.cookies.get(COOKIE, "")
        if not cookie:
            return None
        return await (await self.console.sign_ins()).session(cookie)

    async def page_viewer(self, request: Request) -> Viewer | Response:
        """Returns the viewer of a page, or the way to the sign-in page for a browser without
        a session (an API client gets 401)."""
        try:
            return await self.viewer(request)
        except AuthenticationError:
            if "authorization" in request.headers or not _wants_page(request):
                raise
            expired = "?expired=1" if request.cookies.get(COOKIE) else ""
            return secure_headers(RedirectResponse(SIGN_IN_PATH + expired, status_code=303))

    async def changer(self, request: Request) -> tuple[Viewer, dict[str, str]]:
        """Returns the viewer of a state-changing request and its form fields; 403 for a
        cross-site request or a session request without its CSRF token."""
        viewer = await self.viewer(request)
        form = await read_form(request)
        if viewer.session is None:
            return viewer, form
        self.same_origin(request)
        token = form.get("csrf") or request.headers.get("x-csrf-token", "")
        if not viewer.session.check_csrf(token):
            raise PermissionDeniedError("the request lacks the session's CSRF token")
        return viewer, form

    def same_origin(self, request: Request) -> None:
        """Returns when ``request`` comes from the console's own origin; PermissionDeniedError
        otherwise."""
        origin = request.headers.get("origin")
        if origin is not None:
            if origin not in self.origins(request):
                raise PermissionDeniedError(f"a request from {origin} may not change the console")
        elif request.headers.get("sec-fetch-site") in _CROSS:
            raise PermissionDeniedError("a cross-site request may not change the console")

    def origins(self, request: Request) -> set[str]:
        """Returns the origins the console's own pages have: this request's host, and the
        configured ``[console] url``."""
        found = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
        url = urlsplit(self.console.settings.console.url)
        if url.scheme and url.netloc:
            found.add(f"{url.scheme}://{url.netloc}")
        return found


async def read_form(request: Request) -> dict[str, str]:
    """Returns the fields of a URL-encoded form body (the first of each name)."""
    if request.method != "POST":
        return {}
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    text = (await request.body()).decode("utf-8", "replace")
    form: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(key, value)
    return form
