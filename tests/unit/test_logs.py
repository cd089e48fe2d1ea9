"""Structured logs: JSON lines off a terminal, readable lines on one, fields and ids kept."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from structlog.contextvars import bound_contextvars

from bicameral import Aggregate, Command, CommandBus, Event, MessageContext, Service
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.runtime.logs import configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_its_fields_extra_and_static_ones() -> None:
    out = io.StringIO()
    configure_logging(stream=out, service="orders", roles="projector")
    logging.getLogger("bicameral.test").warning("moved %d", 3, extra={"stream_id": "order-1"})
    (line,) = lines(out)
    assert line["message"] == "moved 3"
    assert (line["level"], line["logger"]) == ("warning", "bicameral.test")
    assert (line["service"], line["roles"], line["stream_id"]) == ("orders", "projector", "order-1")
    assert line["time"].endswith("Z")


def test_fields_other_libraries_add_for_their_own_formatters_are_dropped() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    logging.getLogger("uvicorn.error").info("started", extra={"color_message": "\x1b[36m"})
    (line,) = lines(out)
    assert "color_message" not in line


def test_a_failure_carries_its_traceback() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bicameral.test").exception("failed")
    (line,) = lines(out)
    assert "ValueError: boom" in line["exception"]


def test_bound_context_variables_are_on_every_line_until_unbound() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    with bound_contextvars(correlation_id="c-1"):
        logging.getLogger("bicameral.test").info("inside")
        structlog.get_logger("mine").info("from structlog", sku="mug")
    logging.getLogger("bicameral.test").info("outside")
    inside, native, outside = lines(out)
    assert inside["correlation_id"] == native["correlation_id"] == "c-1"
    assert (native["message"], native["sku"], native["logger"]) == ("from structlog", "mug", "mine")
    assert "correlation_id" not in outside


def test_levels_below_the_configured_one_are_dropped() -> None:
    out = io.StringIO()
    configure_logging("WARNING", stream=out)
    logging.getLogger("bicameral.test").info("quiet")
    structlog.get_logger("mine").info("quiet too")
    assert out.getvalue() == ""


def test_a_terminal_gets_lines_for_people() -> None:
    out = Terminal()
    configure_logging(stream=out, roles="all")
    logging.getLogger("bicameral.test").info("hello", extra={"sku": "mug"})
    text = out.getvalue()
    assert "hello" in text
    assert "sku" in text
    assert "mug" in text
    assert not text.lstrip().startswith("{")


class Noted(Event, name="logs.Noted"):
    id: str


class Note(Command):
    id: str


class Thing(Aggregate):
    def apply(self, event: Event) -> None:
        pass


async def test_every_line_a_command_causes_names_its_correlation_and_message_ids() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    service = Service("logs")
    service.events(Noted)

    @service.command(key="id")
    def note(cmd: Note, thing: Thing) -> None:
        logging.getLogger("user.handler").info("noting %s", cmd.id)
        thing.record(Noted(id=cmd.id))

    bus = CommandBus(service, MemoryEventStore("logs"))
    context = MessageContext(correlation_id="corr-1", causation_id="cause-1")
    await bus.dispatch(Note(id="n1"), context)
    line = next(line for line in lines(out) if line["message"] == "noting n1")
    assert line["correlation_id"] == "corr-1"
    assert line["causation_id"] == "cause-1"
    assert line["message_id"] == context.message_id
    logging.getLogger("bicameral.test").info("after")
    assert "correlation_id" not in lines(out)[-1]
