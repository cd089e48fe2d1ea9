"""bicameral: CQRS for Python microservices.

Declare a ``Service`` with command handlers over event-sourced ``Aggregate``s, ``Projection``s
that fold events into read models, and query handlers that read them; run it with
``bicameral up`` or ``bicameral serve``.
"""

from bicameral.aggregate import Aggregate, Repository
from bicameral.bounds import MAX_MONEY, MAX_QUANTITY, MAX_SAFE_INTEGER, Money, Quantity
from bicameral.bus import (
    AllowAll,
    Authorizer,
    CommandBus,
    CommandCall,
    CommandResult,
    QueryBus,
    QueryCall,
)
from bicameral.consistency import ConsistencyToken
from bicameral.context import ANONYMOUS, MessageContext, Principal
from bicameral.envelope import Envelope, NewEvent, from_cloudevent, to_cloudevent
from bicameral.errors import (
    AccessError,
    AuthenticationError,
    BackendError,
    BicameralError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidMessageError,
    MessageError,
    NotCaughtUpError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RuleViolation,
    UnknownMessageError,
    UnsupportedMediaTypeError,
)
from bicameral.messages import Command, Event, Message, MessageRegistry, Query
from bicameral.ports import (
    EventStore,
    ReadStore,
    Snapshot,
    SnapshotStore,
    StreamAppend,
    Transport,
)
from bicameral.projection import Projection, View
from bicameral.security.policy import PUBLIC, Policy, allow
from bicameral.service import ReadModel, Service
from bicameral.workers.projector import Projector

__all__ = [
    "ANONYMOUS",
    "MAX_MONEY",
    "MAX_QUANTITY",
    "MAX_SAFE_INTEGER",
    "PUBLIC",
    "AccessError",
    "Aggregate",
    "AllowAll",
    "AuthenticationError",
    "Authorizer",
    "BackendError",
    "BicameralError",
    "Command",
    "CommandBus",
    "CommandCall",
    "CommandResult",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConsistencyToken",
    "Envelope",
    "Event",
    "EventStore",
    "IdempotencyKeyReusedError",
    "InvalidMessageError",
    "Message",
    "MessageContext",
    "MessageError",
    "MessageRegistry",
    "Money",
    "NewEvent",
    "NotCaughtUpError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Policy",
    "Principal",
    "Projection",
    "Projector",
    "Quantity",
    "Query",
    "QueryBus",
    "QueryCall",
    "ReadModel",
    "ReadStore",
    "Repository",
    "RuleViolation",
    "Service",
    "Snapshot",
    "SnapshotStore",
    "StreamAppend",
    "Transport",
    "UnknownMessageError",
    "UnsupportedMediaTypeError",
    "View",
    "allow",
    "from_cloudevent",
    "to_cloudevent",
]
