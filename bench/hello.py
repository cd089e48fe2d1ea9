"""The HTTP ceiling: a hello-world JSON endpoint as a bare Starlette route, served by uvicorn
with the same settings as ``bicameral up`` (one worker, default loop and HTTP parser).

``python -m bench.hello PORT``
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    """Returns a small JSON document."""
    return JSONResponse({"hello": "world"})


async def health(request: Request) -> JSONResponse:
    """Returns ok."""
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/hello", hello), Route("/health", health)])


def main() -> None:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
