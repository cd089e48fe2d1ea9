"""The OpenAPI document, generated once from the services' declarations: the API's contract.

- Every command is ``POST /{service}/commands/{Name}`` with its message as the JSON request
  body (its schema and an example); every query is ``GET /{service}/queries/{Name}`` with the
  message's fields as query parameters.
- Every operation lists each status it can answer. Errors are ``application/problem+json``
  with one ``Problem`` schema (a 422 lists the fields at fault in ``errors``).
- A bearer ``securityScheme``; each operation's ``security`` says whether it needs a token
  (public ones say ``security: []``), and its description and ``x-roles`` say who may call it.

The routes read their requests by hand (no per-request dependency solving), so nothing here is
inferred from them: the document is built from the same declarations the routes serve.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from bicameral.consistency import TOKEN_PATTERN
from bicameral.http.edge import MAX_KEY_CHARS, MAX_QUERY_PARAMS
from bicameral.http.routes import SECONDS_PATTERN
from bicameral.messages import Message
from bicameral.security.policy import Policy
from bicameral.security.tokens import MAX_TOKEN_BYTES
from bicameral.service import CommandHandler, QueryHandler, Service

__all__ = ["PROBLEM_JSON", "CommandResponse", "ServiceApi", "complete_document", "example_of"]

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/{model}"
_PRINTABLE = f"^[\\x20-\\x7E]{{1,{MAX_KEY_CHARS}}}$"


class CommandResponse(BaseModel):
    """What an applied command answers."""

    consistency_token: str
    position: int
    streams: dict[str, int]
    stream_id: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class ServiceApi:
    """A service whose commands and/or queries the document describes."""

    service: Service
    commands: bool = True
    queries: bool = True


_PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "An RFC 9457 problem document: every error the API answers.",
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "description": "A URI naming the kind of problem."},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The path that was asked."},
            "errors": {
                "type": "array",
                "description": "The fields at fault (422, and 400/413 where one is named).",
                "items": {"$ref": "#/components/schemas/FieldError"},
            },
        },
    },
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"type": "string"},
                "description": 'Where: ["body", "lines", "0", "quantity"], ["query", "sku"], '
                '["header", "Idempotency-Key"].',
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
}

_STATUS_TEXT = {
    400: "Bad request: `Idempotency-Key` or `X-Correlation-Id` is not 1 to "
    f"{MAX_KEY_CHARS} printable ASCII characters, or the query string has more than "
    f"{MAX_QUERY_PARAMS} parameters.",
    401: "No valid credentials: the operation needs a bearer token, or the one sent is "
    f"malformed, expired, not for this API, or longer than {MAX_TOKEN_BYTES} bytes.",
    403: "The caller's roles or identity do not allow this.",
    404: "Not found: what the message names does not exist, or is not the caller's.",
    409: "Conflict: the command breaks a business rule, or another writer changed the same "
    "entity first (retrying may succeed).",
    413: "The request body is larger than the server accepts (`[http] max_body_bytes`, "
    "1 MiB by default); it was not read.",
    415: "The request body is not `application/json`.",
    422: "The message is invalid: `errors` names each field at fault; or an "
    "`Idempotency-Key` was sent again with another body.",
    503: "A backend is unavailable, or a read model did not reach the consistency token in "
    "time; retry after `Retry-After` seconds.",
}
_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidMessage",
    503: "Unavailable",
}


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _STATUS_TEXT.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
        }
    if status == 503:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return response


def _problems(statuses: Iterable[int]) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/{_NAMES[s]}"} for s in sorted(statuses)}


def _header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": False,
        "description": description,
        "schema": schema,
    }


_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": _PRINTABLE}
_IDEMPOTENCY_KEY = _header(
    "Idempotency-Key",
    "Sending the same key again (with the same body) replays the first answer instead of "
    f"applying the command twice. 1 to {MAX_KEY_CHARS} printable ASCII characters.",
    _KEY_SCHEMA,
)
_CORRELATION_ID = _header(
    "X-Correlation-Id",
    "Carried on every event the request causes, across services. "
    f"1 to {MAX_KEY_CHARS} printable ASCII characters.",
    _KEY_SCHEMA,
)
_TRACEPARENT = _header(
    "traceparent",
    "W3C trace context, carried on the events; ignored unless 1 to "
    f"{MAX_KEY_CHARS} printable ASCII characters.",
    {"type": "string"},
)
_CONSISTENCY_TOKEN = _header(
    "X-Consistency-Token",
    "A command's `consistency_token`: the query waits until the read models it reads have "
    "caught up with it (at most `X-Consistency-Timeout` seconds), else 503.",
    {"type": "string", "pattern": TOKEN_PATTERN},
)
_CONSISTENCY_TIMEOUT = _header(
    "X-Consistency-Timeout",
    "Seconds to wait for `X-Consistency-Token` (capped by the server's `max_consistency_timeout`).",
    {"type": "string", "pattern": SECONDS_PATTERN},
)


def _roles(names: Iterable[str]) -> str:
    ordered = sorted(names)
    return f"role{'s' if len(ordered) > 1 else ''} " + " or ".join(f"`{r}`" for r in ordered)


def _who(policy: Policy | None) -> tuple[str, list[str]]:
    """Returns who may call an operation, in words, and the roles named."""
    if policy is None:
        return "Who may call it: no user (the service's own reactions only).", []
    if policy.is_public:
        return "Who may call it: anyone; no token needed.", []
    plain = {
        r for rule in policy.rules if not (rule.owner or rule.record_owner) for r in rule.roles
    }
    ways = [_roles(plain)] if plain else []
    for rule in policy.rules:
        if rule.roles and not (rule.owner or rule.record_owner):
            continue
        way = _roles(rule.roles) if rule.roles else "any authenticated caller"
        if rule.owner:
            way += f" where `{rule.owner}` is the caller's subject (else 403)"
        if rule.record_owner:
            way += (
                f", for records whose `{rule.record_owner}` is the caller's subject "
                "(another's answer as missing: 404)"
            )
        ways.append(way)
    roles = sorted({r for rule in policy.rules for r in rule.roles})
    return "Who may call it (bearer token): " + "; ".join(ways) + ".", roles


def _description(doc: str | None, policy: Policy | None) -> tuple[str, list[str]]:
    who, roles = _who(policy)
    text = (doc or "").strip()
    return (f"{text}\n\n{who}" if text else who), roles


def _security(policy: Policy | None) -> list[dict[str, list[str]]]:
    return [] if policy is not None and policy.is_public else [{"bearer": []}]


def _policy(value: object) -> Policy | None:
    return value if isinstance(value, Policy) else None


def _denials(policy: Policy | None) -> set[int]:
    return {401} if policy is not None and policy.is_public else {401, 403}


def _command_operation(
    service: str, handler: CommandHandler, ref: dict[str, Any], example: Any
) -> dict[str, Any]:
    name = handler.command.message_name
    policy = _policy(handler.policy)
    description, roles = _description(handler.fn.__doc__, policy)
    body: dict[str, Any] = {"schema": ref}
    if example is not None:
        body["example"] = example
    return {
        "tags": [service],
        "summary": f"{name} ({service} command)",
        "description": description,
        "operationId": f"{service}.{name}",
        "x-roles": roles,
        "security": _security(policy),
        "parameters": [_IDEMPOTENCY_KEY, _CORRELATION_ID, _TRACEPARENT],
        "requestBody": {"required": True, "content": {"application/json": body}},
        "responses": {
            "200": {
                "description": "Applied: the positions it produced.",
                "headers": {
                    "X-Consistency-Token": {
                        "description": "The same token as `consistency_token`.",
                        "schema": {"type": "string"},
                    },
                    "Idempotent-Replayed": {
                        "description": "`true` when this is the replayed answer of an "
                        "`Idempotency-Key` sent before.",
                        "schema": {"type": "string"},
                    },
                },
                "content": {
                    "application/json": {"schema": {"$ref": _REF.format(model="CommandResponse")}}
                },
            },
            **_problems({400, 404, 409, 413, 415, 422, 503} | _denials(policy)),
        },
    }


def _query_operation(
    service: str, handler: QueryHandler, fields: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    name = handler.query.message_name
    policy = _policy(handler.policy)
    description, roles = _description(handler.fn.__doc__, policy)
    required = set(fields.get("required", ()))
    parameters = [
        {"in": "query", "name": field, "required": field in required, "schema": schema}
        for field, schema in fields.get("properties", {}).items()
    ]
    return {
        "tags": [service],
        "summary": f"{name} ({service} query)",
        "description": description,
        "operationId": f"{service}.{name}",
        "x-roles": roles,
        "security": _security(policy),
        "parameters": [
            *parameters,
            _CONSISTENCY_TOKEN,
            _CONSISTENCY_TIMEOUT,
            _CORRELATION_ID,
            _TRACEPARENT,
        ],
        "responses": {
            "200": {
                "description": "The answer.",
                "content": {"application/json": {"schema": result}},
            },
            **_problems({400, 404, 413, 422, 503} | _denials(policy)),
        },
    }


def _result_type(handler: QueryHandler) -> Any:
    try:
        return handler.result
    except (NameError, TypeError):  # an annotation that cannot be resolved: any JSON
        return None


def _schemas(apis: Sequence[ServiceApi]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """Returns a reference per (message or result model, mode) and the schemas they refer to."""
    models: list[tuple[type[BaseModel], Any]] = [(CommandResponse, "serialization")]
    for api in apis:
        if api.commands:
            models += [(h.command, "validation") for h in _commands(api.service)]
        if api.queries:
            for handler in api.service.queries.values():
                models.append((handler.query, "validation"))
                result = _result_type(handler)
                if isinstance(result, type) and issubclass(result, BaseModel):
                    models.append((result, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)
    return dict(refs), dict(defs.get("$defs", {}))


def _commands(service: Service) -> list[CommandHandler]:
    return [h for h in service.commands.values() if not h.internal]


def _result_schema(
    handler: QueryHandler, refs: Mapping[Any, dict[str, Any]], defs: dict[str, Any]
) -> dict[str, Any]:
    result = _result_type(handler)
    if result is None:
        return {}
    if isinstance(result, type) and issubclass(result, BaseModel):
        return refs[(result, "serialization")]
    schema = TypeAdapter(result).json_schema(mode="serialization", ref_template=_REF)
    defs.update(schema.pop("$defs", {}))
    return schema


def _resolve(schema: dict[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return _resolve(defs[ref.rsplit("/", 1)[1]], defs)
    return schema


def complete_document(base: dict[str, Any], apis: Sequence[ServiceApi]) -> dict[str, Any]:
    """Returns ``base`` (the document of the app's own routes) with every error answered as
    problem+json, the operations of ``apis``' services, and the security scheme."""
    doc = dict(base)
    refs, defs = _schemas(apis)
    paths: dict[str, Any] = dict(doc.get("paths", {}))
    for api in apis:
        service = api.service
        if api.commands:
            for handler in _commands(service):
                cls = handler.command
                operation = _command_operation(
                    service.name, handler, refs[(cls, "validation")], example_of(cls, defs)
                )
                paths[f"/{service.name}/commands/{cls.message_name}"] = {"post": operation}
        if api.queries:
            for qhandler in service.queries.values():
                fields = _resolve(refs[(qhandler.query, "validation")], defs)
                result = _result_schema(qhandler, refs, defs)
                operation = _query_operation(service.name, qhandler, fields, result)
                paths[f"/{service.name}/queries/{qhandler.query.message_name}"] = {"get": operation}
    for item in paths.values():
        for operation in item.values():
            _errors_as_problems(operation)
    doc["paths"] = paths
    components = dict(doc.get("components", {}))
    schemas = {
        k: v
        for k, v in components.get("schemas", {}).items()
        if k not in ("HTTPValidationError", "ValidationError")
    }
    schemas.update(defs)
    schemas.update(_PROBLEM_SCHEMAS)
    components["schemas"] = dict(sorted(schemas.items()))
    components["responses"] = {_NAMES[s]: _problem_response(s) for s in sorted(_NAMES)}
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "`Authorization: Bearer <token>`; `bicameral token issue` makes one "
            f"with the embedded key. At most {MAX_TOKEN_BYTES} bytes.",
        }
    }
    doc["components"] = components
    return doc


def _errors_as_problems(operation: dict[str, Any]) -> None:
    """Makes every error response of an operation a problem+json document."""
    responses = operation.get("responses", {})
    for status, response in list(responses.items()):
        if "$ref" in response or not status.isdigit() or int(status) < 400:
            continue
        problem = _problem_response(int(status), response.get("description"))
        problem.setdefault("headers", {}).update(response.get("headers", {}))
        responses[status] = problem if problem["headers"] else _without_headers(problem)


def _without_headers(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "headers"}


# Examples ---------------------------------------------------------------------------------


def example_of(cls: type[Message], defs: Mapping[str, Any]) -> Any:
    """Returns an example body of ``cls``: the first of its schema's ``examples`` if it gives
    any, else one built from its schema; None when no built value validates."""
    schema = cls.model_json_schema(ref_template=_REF)
    given = schema.get("examples")
    if isinstance(given, list) and given:
        return given[0]
    local = {**defs, **schema.get("$defs", {})}
    value = _example(schema, local, "value", 0)
    try:
        cls.model_validate(value)
    except ValidationError:
        return None
    return value


def _example(schema: Any, defs: Mapping[str, Any], name: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "$ref" in schema:
        return _example(_resolve(schema, defs), defs, name, depth + 1)
    for key in ("examples", "enum"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, ()) if o.get("type") != "null"]
        if options:
            return _example(options[0], defs, name, depth + 1)
    kind = schema.get("type")
    if kind == "object":
        return {
            field: _example(sub, defs, field, depth + 1)
            for field, sub in schema.get("properties", {}).items()
            if field in schema.get("required", ())
        }
    if kind == "array":
        item = _example(schema.get("items", {}), defs, name, depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema)
    if kind == "boolean":
        return True
    return None


def _string(schema: Mapping[str, Any], name: str) -> str:
    formats = {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "uuid": "123e4567-e89b-12d3-a456-426614174000",
        "email": "someone@example.com",
        "uri": "https://example.com/",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    stem = name.removesuffix("_id").replace("_", "-") or "value"
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", 1 << 16))
    pattern = schema.get("pattern")
    for candidate in (f"{stem}-1", stem, "a" * max(low, 1), "1" * max(low, 1)):
        fits = low <= len(candidate) <= high
        if fits and (pattern is None or re.search(pattern, candidate)):
            return candidate
    return "a" * max(low, 1)


def _number(schema: Mapping[str, Any]) -> int:
    low = schema.get("minimum")
    if "exclusiveMinimum" in schema:
        low = int(schema["exclusiveMinimum"]) + 1
    high = schema.get("maximum")
    if "exclusiveMaximum" in schema:
        high = int(schema["exclusiveMaximum"]) - 1
    value = 10
    if low is not None:
        value = max(value, int(low))
    if high is not None:
        value = min(value, int(high))
    return value
