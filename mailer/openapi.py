"""The OpenAPI document says what the API answers: the error envelope as the schema of
every 4xx a route can give, and the bearer key on every route that needs one.

FastAPI documents a 422 as its own ``{"detail": [...]}``, which this API never sends
(``mailer.errors`` renders every error as ``{"error": {"code", "message", "details"}}``),
and knows nothing of the key check, the body limit or the request's transaction. Which
errors a route can give follows from what it depends on, so it is worked out here, once,
from the routes themselves: a route added later is documented by being added.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from mailer.auth.dependencies import RequireScope, get_session

ERROR_SCHEMA = "Error"
BEARER = "bearer"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

_DESCRIPTIONS = {
    401: "No API key, or an unknown one",
    403: "The key lacks the scope this route needs",
    404: "No such resource",
    409: "A state transition that is not allowed, an idempotency clash, or a change that "
    "conflicts with data saved meanwhile",
    413: "The request body is over its limit",
    422: "Invalid input; each detail names the path of a bad field",
    503: "PostgreSQL could not save the change; nothing was saved, retry",
}

_ERROR_COMPONENT = {
    "type": "object",
    "title": "Error",
    "description": "Every error answer of the API",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. not_found"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "description": "for invalid input: the path of each bad field",
                    "items": {"type": "object"},
                },
                "request_id": {"type": "string"},
            },
        }
    },
}

_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (`mailer keys create`), with a scope the route accepts",
}


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dep in dependant.dependencies:
        yield from _tree(dep)


def error_statuses(route: APIRoute, dependant: Dependant, methods: set[str]) -> set[int]:
    """The 4xx (and 503) a route can answer, from what it depends on."""
    tree = list(_tree(dependant))
    calls = [d.call for d in tree]
    path_params = any(d.path_params for d in tree)
    statuses: set[int] = set()
    if any(isinstance(call, RequireScope) for call in calls):
        statuses |= {401, 403}
    if get_session in calls and methods & WRITES:
        # the request's transaction: a commit PostgreSQL refuses (mailer.auth.dependencies)
        statuses |= {409, 503}
    if path_params:
        statuses.add(404)
    if methods & (WRITES - {"DELETE"}):
        statuses.add(413)  # mailer.app.BodyLimit, whatever the route reads
    if any(d.path_params or d.query_params or d.header_params or d.body_params for d in tree):
        statuses.add(422)
    for status in route.responses:  # what the route declares itself
        if str(status).isdigit() and 400 <= int(status) < 600:
            statuses.add(int(status))
    return statuses


def _api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], APIRoute, Dependant]]:
    # FastAPI >= 0.165 keeps included routers nested in app.routes
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts: Any = app.routes if iter_contexts is None else iter_contexts(app.routes)
    for ctx in contexts:
        route = getattr(ctx, "original_route", ctx)
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield ctx.path_format, set(ctx.methods or ()), route, ctx.dependant


def document_errors(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the envelope to every 4xx, and the bearer key to every keyed route, in place."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})[ERROR_SCHEMA] = _ERROR_COMPONENT
    components.setdefault("securitySchemes", {})[BEARER] = _BEARER_SCHEME
    envelope = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for path, methods, route, dependant in _api_routes(app):
        statuses = error_statuses(route, dependant, methods)
        for method in methods:
            operation = schema["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's {"detail": ...}, never sent
            for status in sorted(statuses):
                # a route may declare its own answer (an HTML page instead of the envelope)
                own = route.responses.get(status) or route.responses.get(str(status)) or {}
                responses[str(status)] = {
                    "description": own.get("description", _DESCRIPTIONS.get(status, "Error")),
                    "content": own.get("content", envelope),
                }
            if 401 in statuses:
                operation["security"] = [{BEARER: []}]
    # FastAPI's own validation error schemas, now referred to by nothing
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    return schema


def csv_body(description: str) -> dict[str, Any]:
    """``openapi_extra`` of a route whose raw body is a CSV file (it reads the stream
    itself, so FastAPI cannot describe it)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        }
    }
