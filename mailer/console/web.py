"""The console's plumbing: the signed-in person of a request, the role check and the CSRF
check of every route, the pages' Jinja environment, and HTML answers for errors.

Every console route is declared with the permission it needs (``route``): the check runs
before the handler, and ``ROUTES`` lists them all (the table-driven role test reads it).
A session is a ``web_sessions`` row of subject kind ``person`` (``mailer.auth.sessions``,
shared with the dashboard) named by the ``mailer_console`` cookie (HttpOnly,
SameSite=Strict, Secure behind https, path ``/`` so that the dashboard reads it too).
Every POST carries a CSRF token derived from the session: a form field ``csrf`` or, from
the console's script, the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from mailer.auth import sessions
from mailer.console.roles import PUBLIC, allows
from mailer.errors import MailerError, error_body
from mailer.models import Person
from mailer.people import repository as people
from mailer.people.service import Actor

if TYPE_CHECKING:
    from jinja2 import Environment

COOKIE = "mailer_console"
LOGIN_COOKIE = "mailer_console_login"  # the login form's CSRF nonce
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

# a filter form's "any" option sends an empty value: no filter, not a 422
# (``segment: Annotated[BodyId | None, Blank] = None``)
Blank = BeforeValidator(lambda value: None if value == "" else value)

# (method, path) → permission, filled by ``route``
ROUTES: dict[tuple[str, str], str] = {}


@dataclass
class Viewer:
    """The signed-in person of a request."""

    person: Person
    session_id: int
    token: str  # the session's secret: CSRF tokens are derived from it
    csrf: str

    def can(self, permission: str) -> bool:
        return allows(self.person.role, permission)

    @property
    def actor(self) -> Actor:
        return Actor(self.person.id, self.person.email)


class SignInNeeded(Exception):
    pass


class Refused(MailerError):
    status_code = 403
    code = "forbidden"


def secure(request: Request) -> bool:
    return str(request.app.state.settings.public_url).startswith("https://")


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int, path: str = "/"
) -> None:
    """A sign-in cookie (the console's and the dashboard's): HttpOnly, SameSite=Strict,
    Secure behind https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def forget_cookie(request: Request, response: Response, name: str, path: str = "/") -> None:
    response.delete_cookie(
        name, path=path, httponly=True, samesite="strict", secure=secure(request)
    )


async def find_viewer(request: Request) -> Viewer | None:
    """The person signed in by the request's console cookie, else None."""
    if hasattr(request.state, "viewer"):
        return request.state.viewer  # type: ignore[no-any-return]
    settings = request.app.state.settings
    viewer = None
    async with request.app.state.sessionmaker() as db:
        found = await sessions.find(db, settings, request.cookies.get(COOKIE))
        if found is not None and found[0].subject_kind == people.SUBJECT_KIND:
            row, token = found
            person = await people.get(db, row.subject_id)
            if person is not None and person.disabled_at is None:
                viewer = Viewer(person, row.id, token, sessions.csrf_token(settings, token))
    request.state.viewer = viewer
    return viewer


async def _check(request: Request, permission: str) -> None:
    if permission == PUBLIC:
        return
    viewer = await find_viewer(request)
    if viewer is None:
        raise SignInNeeded
    if request.method != "GET":
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            given = str((await request.form()).get("csrf", ""))
        if not sessions.csrf_ok(request.app.state.settings, viewer.token, given or ""):
            raise Refused("The form's CSRF token does not match your session; reload the page.")
    if not viewer.can(permission):
        raise Refused(f"Your role ({viewer.person.role}) does not allow this.")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


class ConsoleRoute(APIRoute):
    """Runs the route's permission and CSRF check first; answers the error hierarchy, a
    missing sign-in and a refusal as pages (or JSON, for the script)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        permission = getattr(self.endpoint, "permission", None)
        assert permission is not None, f"{self.path} declares no permission"  # noqa: S101

        async def checked(request: Request) -> Response:
            try:
                await _check(request, permission)
                return await handler(request)
            except SignInNeeded:
                if _wants_json(request) or request.method != "GET":
                    return JSONResponse(error_body("unauthorized", "sign in first"), 401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/console/login?next={quote(target)}", 303)
            except MailerError as exc:
                if _wants_json(request):
                    return JSONResponse(
                        error_body(exc.code, exc.message, exc.details), exc.status_code
                    )
                return render(
                    request,
                    "message.html",
                    exc.status_code,
                    title={401: "Sign in", 403: "Not allowed", 404: "Not found"}.get(
                        exc.status_code, "Not done"
                    ),
                    message=exc.message,
                    details=exc.details,
                )

        return checked


router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


def route(method: str, path: str, permission: str) -> Callable[[Any], Any]:
    """Declare a console route and the permission it needs."""

    def register(endpoint: Any) -> Any:
        endpoint.permission = permission
        ROUTES[(method, f"/console{path}")] = permission
        router.add_api_route(path, endpoint, methods=[method])
        return endpoint

    return register


@lru_cache
def page_templates(directory: Path, folder: str = "console") -> Environment:
    """The Jinja environment of the pages in ``directory / folder`` (the console's, the
    dashboard's): autoescaped, loaded once."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(directory / folder),
        autoescape=select_autoescape(default=True),
        auto_reload=False,
    )
    from mailer.campaign import service as campaigns

    env.globals["progress"] = campaigns.progress
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    return env


def render(
    request: Request,
    name: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    env = page_templates(request.app.state.settings.templates_dir)
    viewer = getattr(request.state, "viewer", None)
    html = env.get_template(name).render(request=request, viewer=viewer, **context)
    return HTMLResponse(
        html,
        status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "same-origin",
            **(headers or {}),
        },
    )


def viewer_of(request: Request) -> Viewer:
    """The signed-in person (the route's check found them)."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    assert viewer is not None  # noqa: S101 - the check ran first
    return viewer


async def form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def parse(model: Any, data: dict[str, Any]) -> Any:
    """``model(**data)``, its validation errors as a 422 of the error hierarchy."""
    from pydantic import ValidationError

    from mailer.errors import Invalid

    try:
        return model(**data)
    except ValidationError as exc:
        details = [{"path": ["body", *e["loc"]], "message": e["msg"]} for e in exc.errors()]
        first = details[0]
        raise Invalid(
            f"{'.'.join(str(p) for p in first['path'][1:])}: {first['message']}", details
        ) from exc
