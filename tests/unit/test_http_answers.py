"""The routes' 200 answers are byte for byte those of Starlette's JSONResponse, whatever the
document holds."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from bicameral.http.answers import json_answer

keys = st.text(max_size=6) | st.integers(-3, 3) | st.booleans()
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)  # lone surrogates
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)
headers = st.dictionaries(
    st.sampled_from(["X-Consistency-Token", "Idempotent-Replayed"]), st.text("abc", max_size=4)
)


def _outcome(make: Any) -> tuple[str, Any]:
    try:
        response = make()
    except Exception as exc:
        return ("raises", type(exc))
    return ("answers", (response.status_code, response.raw_headers, bytes(response.body)))


@given(documents, headers)
def test_any_document_is_answered_as_json_response_answers_it(
    document: Any, extra: dict[str, str]
) -> None:
    assert _outcome(lambda: json_answer(document, extra)) == _outcome(
        lambda: JSONResponse(document, headers=extra)
    )


def test_a_plain_document_is_written_by_orjson_and_a_float_by_json() -> None:
    assert json_answer({"a": [1, "b", None, True]}).body == b'{"a":[1,"b",null,true]}'
    assert json_answer({"small": 1e-07}).body == b'{"small":1e-07}'
    assert json_answer({"big": 2**70}).body == b'{"big":1180591620717411303424}'
