"""FastAPI dependencies: the request's session and the scope check of every /v1 route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.auth import service
from mailer.db import transaction
from mailer.errors import Conflict, Forbidden, Unauthorized, Unavailable
from mailer.models import ApiKey


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction (``mailer.db.transaction``): commit after the
    endpoint, roll back on error; after-commit work runs once the commit is done."""
    committing = False
    try:
        async with transaction(request.app.state.sessionmaker) as session:
            yield session
            committing = True
    except DBAPIError as exc:
        if not committing:
            raise  # the endpoint's own error, rendered as it is
        # the endpoint succeeded but PostgreSQL refused the commit (a deferred constraint,
        # a serialization failure): nothing was saved and no after-commit work ran
        if isinstance(exc, IntegrityError):
            raise Conflict("the change conflicts with data saved meanwhile; not saved") from exc
        raise Unavailable("the change could not be saved; nothing was saved, retry") from exc


# scope="function": the exit (commit, then the after-commit work) runs when the endpoint
# returns and *before* the response is sent, so a commit that fails is answered as an error,
# never as the 2xx the endpoint had prepared. FastAPI's default ("request") exits after the
# response has gone out.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


class RequireScope:
    """Dependency that admits a key holding ``scope`` (or ``admin``)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized("missing API key: send Authorization: Bearer <key>")
        # its own connection in autocommit: the last_used_at write, if any, stays even when
        # the endpoint's transaction rolls back, and the lookup costs no BEGIN and COMMIT
        # round trips (a lookup and at most one UPDATE need no transaction)
        async with request.app.state.sessionmaker() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            key = await service.authenticate(session, raw.strip())
        if key is None:
            raise Unauthorized("unknown API key")
        if not service.allows(key, self.scope):
            raise Forbidden(f"this key lacks the '{self.scope}' scope")
        request.state.api_key = key
        return key

    @classmethod
    def depends(cls, scope: str) -> Any:
        """``Depends(RequireScope(scope))`` for a router's or a route's dependencies."""
        return Depends(cls(scope))
