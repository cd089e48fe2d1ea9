"""API documentation pages: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

Their scripts and styles are served from ``/docs/assets/``, out of the files the
``fastapi-offline`` package installs: the pages load nothing from another host, so they work
offline and behind a strict firewall.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from bicameral.errors import NotFoundError

__all__ = ["ASSETS", "install_docs"]

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
"""The files under ``/docs/assets/``, with their media types."""
_PREFIX = "/docs/assets/"
_CACHED = {"Cache-Control": "public, max-age=86400"}


@cache
def _asset(name: str) -> bytes:
    return (files(fastapi_offline) / "static" / name).read_bytes()


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Adds ``/docs``, ``/redoc`` and their assets to ``app`` (none of them in its document)."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url=_PREFIX + "swagger-ui-bundle.js",
            swagger_css_url=_PREFIX + "swagger-ui.css",
            swagger_favicon_url=_PREFIX + "favicon.png",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            redoc_js_url=_PREFIX + "redoc.standalone.js",
            redoc_favicon_url=_PREFIX + "favicon.png",
            with_google_fonts=False,
        )

    @app.get(_PREFIX + "{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFoundError(f"no documentation asset {name!r}")
        return Response(_asset(name), media_type=ASSETS[name], headers=_CACHED)
