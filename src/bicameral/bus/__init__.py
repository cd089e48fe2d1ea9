"""The command bus and the query bus, each one chain of middleware around the handler call.

- ``calls``: what travels through a bus (calls, results) and the authorizer port;
- ``chain``: the one middleware chain both buses run, with its outcome counting;
- ``commands``: the command bus and the unit of work a handler call appends atomically;
- ``queries``: the query bus and the read models its handlers get.
"""

from bicameral.bus.calls import (
    AllowAll,
    Authorizer,
    CommandCall,
    CommandResult,
    QueryCall,
    RecordFilter,
)
from bicameral.bus.commands import CommandBus, CommandMiddleware, request_hash
from bicameral.bus.queries import QueryBus, QueryMiddleware, StoreReadModel, VisibleReadModel

__all__ = [
    "AllowAll",
    "Authorizer",
    "CommandBus",
    "CommandCall",
    "CommandMiddleware",
    "CommandResult",
    "QueryBus",
    "QueryCall",
    "QueryMiddleware",
    "RecordFilter",
    "StoreReadModel",
    "VisibleReadModel",
    "request_hash",
]
