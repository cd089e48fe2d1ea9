"""The console's HTML builder escapes every value that is not already HTML."""

from __future__ import annotations

from bicameral.http.console.html import Safe, escape, page, static_file, tag


def test_text_and_attributes_are_escaped_and_safe_html_is_kept() -> None:
    built = tag(
        "a", {"href": '/x?a="1"&b', "hidden": True, "title": None}, "<b>", Safe("<i>ok</i>")
    )
    assert built == '<a href="/x?a=&quot;1&quot;&amp;b" hidden>&lt;b&gt;<i>ok</i></a>'
    assert escape(built) is built
    assert tag("input", {"value": "'"}) == '<input value="&#x27;">'


def test_templates_escape_their_values() -> None:
    html = page("signin.html", message="<script>", refresh=Safe(""))
    assert "&lt;script&gt;" in html
    assert "<script>" not in html


def test_only_the_shipped_static_files_are_served() -> None:
    assert static_file("console.js") is not None
    assert static_file("../html.py") is None
    assert static_file(".hidden") is None
    assert static_file("nope.css") is None
