"""The frame of every console page: the layout, the sign-in page, tables and forms."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlencode

from bicameral.http.console.access import Viewer
from bicameral.http.console.html import Safe, join, page, tag

__all__ = ["csrf_field", "layout", "query", "sign_in_page", "table"]

_NAV = (
    ("overview", "/console", "Overview"),
    ("events", "/console/events", "Events"),
    ("parked", "/console/parked", "Parked"),
    ("rebuilds", "/console/rebuilds", "Rebuilds"),
)


def layout(name: str, title: str, viewer: Viewer, body: Safe) -> Safe:
    """Returns page ``name`` (a nav entry) titled ``title`` around ``body``."""
    nav = join(
        tag("a", {"href": href, "aria-current": "page" if key == name else None}, text)
        for key, href, text in _NAV
    )
    who = tag("span", {"class": "who"}, "signed in as ", tag("b", None, viewer.principal.subject))
    if viewer.session is None:
        account = tag("div", {"class": "account"}, who, " (bearer token)")
    else:
        account = tag(
            "form",
            {"method": "post", "action": "/console/sign-out", "class": "account"},
            who,
            csrf_field(viewer),
            tag("button", {"type": "submit", "id": "sign-out"}, "Sign out"),
        )
    return page("layout.html", page=name, title=title, nav=nav, account=account, body=body)


def sign_in_page(message: str = "", refresh: bool = False) -> Safe:
    """Returns the sign-in page, with ``message`` (why one is needed) if any; ``refresh``
    goes on to the overview from this page, so from this site: a SameSite=Strict cookie is not
    sent on a navigation that began on another site (a sign-in link clicked in a chat)."""
    note = tag("p", {"class": "message", "role": "alert"}, message) if message else Safe("")
    meta = Safe("")
    if refresh:
        meta = tag("meta", {"http-equiv": "refresh", "content": "0; url=/console"})
    return page("signin.html", message=note, refresh=meta)


def csrf_field(viewer: Viewer) -> Safe:
    """Returns the hidden field carrying the viewer's CSRF token (none without a session)."""
    if viewer.session is None:
        return Safe("")
    return tag("input", {"type": "hidden", "name": "csrf", "value": viewer.csrf})


def table(headers: Sequence[str], rows: Iterable[Safe], attrs: Mapping[str, object]) -> Safe:
    """Returns a table of ``rows`` under ``headers``."""
    head = tag("thead", None, tag("tr", None, join(tag("th", None, h) for h in headers)))
    return tag("table", attrs, head, tag("tbody", None, join(rows)))


def query(**values: str) -> str:
    """Returns ``?a=b`` of the non-empty ``values``."""
    given = {k: v for k, v in values.items() if v}
    return "?" + urlencode(given) if given else ""
