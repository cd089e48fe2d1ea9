"""The 200 answers of the command and query routes, laid out byte for byte as Starlette's
``JSONResponse`` lays them out, for less work per request.

``orjson`` writes a document of strings, integers, booleans, nulls, lists and string-keyed
objects exactly as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` does; it
writes floats differently (``1e-07`` is ``1e-7``), refuses integers past 64 bits and lone
surrogates. So a document is written with ``orjson`` only when it holds none of those, and
otherwise by ``JSONResponse`` itself.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

__all__ = ["json_answer"]

_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
_JSON = (b"content-type", b"application/json")


class _JsonAnswer(Response):
    """A 200 answer whose JSON body is already written."""

    media_type = "application/json"

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        headers.append(_JSON)
        self.raw_headers = headers


def json_answer(content: Any, headers: dict[str, str] | None = None) -> Response:
    """Returns the 200 JSON answer of ``content`` with ``headers``, as ``JSONResponse`` would."""
    headers = headers or {}
    if _plain(content):
        try:
            body = orjson.dumps(content)
        except TypeError:  # an integer past 64 bits or a lone surrogate: JSONResponse decides
            pass
        else:
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            return _JsonAnswer(body, raw)
    return JSONResponse(content, headers=headers)


def _plain(content: Any) -> bool:
    """Returns True when ``content`` is strings, integers, booleans and nulls in lists and
    string-keyed dicts (no floats, no other types), as the two writers agree on."""
    stack = [content]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    return False
                if type(item) in _PLAIN_TYPES:
                    continue
                stack.append(item)
        elif kind is list or kind is tuple:
            stack.extend(value)
        elif kind not in _PLAIN_TYPES:
            return False
    return True
