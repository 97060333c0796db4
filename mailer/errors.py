"""One error hierarchy, each with its status code, and the handlers that render them.

Every error answer is ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the web framework is the API's: a worker raises these without it
    from fastapi import FastAPI, Request


class MailerError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Unauthorized(MailerError):
    status_code = 401
    code = "unauthorized"


class Forbidden(MailerError):
    status_code = 403
    code = "forbidden"


class NotFound(MailerError):
    status_code = 404
    code = "not_found"


class Conflict(MailerError):
    status_code = 409
    code = "conflict"


class TooLarge(MailerError):
    status_code = 413
    code = "too_large"


class TooManyRequests(MailerError):
    status_code = 429
    code = "rate_limited"


class Unavailable(MailerError):
    status_code = 503
    code = "unavailable"


class Invalid(MailerError):
    status_code = 422
    code = "invalid"

    @classmethod
    def at(cls, path: list[str | int] | str, message: str) -> Invalid:
        loc = path if isinstance(path, list) else [path]
        return cls(message, [{"path": loc, "message": message}])


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _clean(value: Any) -> Any:
    # pydantic puts exception objects in ctx; keep the answer JSON
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# pydantic's wording for errors raised in validators ("Value error, not an address"):
# the reader needs the sentence, not the library's name for it
_PREFIXES = ("Value error, ", "Assertion failed, ")
# what a JSON-model body that arrived as something else (form data, text) fails with
_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}


def plain_message(message: str) -> str:
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _not_json(request: Request, details: list[dict[str, Any]]) -> bool:
    """The body failed as a whole because it was not sent as JSON (curl's ``-d``)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return False
    return any(d["path"] == ["body"] and d["type"] in _NOT_AN_OBJECT for d in details)


def install_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(MailerError)
    async def _mailer_error(_: Request, exc: MailerError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "path": [str(p) for p in err.get("loc", ())],
                "message": plain_message(err.get("msg", "")),
                "type": err.get("type", ""),
            }
            for err in _clean(exc.errors())
        ]
        if _not_json(request, details):
            given = request.headers.get("content-type") or "none"
            return JSONResponse(
                error_body(
                    "unsupported_media_type",
                    f"this route takes a JSON body: send it with 'Content-Type:"
                    f" application/json' (curl: --json '{{…}}'); the request said {given!r}",
                ),
                415,
            )
        first = details[0] if details else {"path": [], "message": "invalid input"}
        message = f"{'.'.join(first['path'])}: {first['message']}"
        return JSONResponse(error_body("invalid", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )
