"""The OpenAPI document says what the API answers (issue 17): every error a route can give
is documented with the error envelope, never FastAPI's ``{"detail": ...}``, and every /v1
route declares the bearer key it needs."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

ENVELOPE = {"$ref": "#/components/schemas/Error"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


async def test_every_error_answer_is_documented_as_the_envelope(app: FastAPI) -> None:
    schema = app.openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    for method, path, op in _operations(schema):
        errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
        for status, response in errors.items():
            if path.startswith("/unsubscribe/") and status == "404":
                # a person reads it: an HTML page for an unknown link (issue 21)
                assert list(response["content"]) == ["text/html"], f"{method} {path}"
                continue
            body = response["content"]["application/json"]["schema"]
            assert body == ENVELOPE, f"{method} {path} {status}: {body}"
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in errors, f"{method} {path}"
        if "{" in path:
            assert "404" in errors, f"{method} {path}"
        if method in ("POST", "PUT", "PATCH"):
            assert "413" in errors, f"{method} {path}"


async def test_every_v1_route_declares_the_bearer_key(app: FastAPI) -> None:
    schema = app.openapi()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    keyed = [(m, p, op) for m, p, op in _operations(schema) if p.startswith("/v1")]
    assert keyed
    for method, path, op in keyed:
        assert op.get("security") == [{"bearer": []}], f"{method} {path}"
        assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"
    for method, path, op in _operations(schema):
        if not path.startswith("/v1"):
            assert "security" not in op and "401" not in op["responses"], f"{method} {path}"


async def test_a_422_answered_matches_the_documented_envelope(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # the document is served, and an actual 422 has the documented shape
    served = (await client.get("/openapi.json")).json()
    assert served["paths"]["/v1/segments"]["get"]["responses"]["422"]["content"] == {
        "application/json": {"schema": ENVELOPE}
    }
    response = await client.get("/v1/segments", params={"limit": "0"}, headers=admin)
    assert response.status_code == 422
    assert set(response.json()) == {"error"}
    assert {"code", "message", "details"} <= set(response.json()["error"])
