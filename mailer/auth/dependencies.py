"""FastAPI dependencies: the request's session and the scope check of every /v1 route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.auth import service
from mailer.db import transaction
from mailer.errors import Conflict, Forbidden, Unauthorized, Unavailable
from mailer.middleware import MISSING_KEY, UNKNOWN_KEY, bearer
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


async def lookup_key(sessionmaker: async_sessionmaker[AsyncSession], raw: str) -> ApiKey | None:
    """The live key for the secret ``raw``, looked up now (no cache)."""
    # its own connection in autocommit: the last_used_at write, if any, stays even when
    # the endpoint's transaction rolls back, and the lookup costs no BEGIN and COMMIT
    # round trips (a lookup and at most one UPDATE need no transaction)
    async with sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return await service.authenticate(session, raw)


class RequireScope:
    """Dependency that admits a key holding ``scope`` (or ``admin``). The app's
    ``BodyGate`` has looked the key up already (before any body was read); it is looked
    up here only where no gate did."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> ApiKey:
        key: ApiKey | None = getattr(request.state, "api_key", None)
        if key is None:
            raw = bearer(request.scope)
            if raw is None:
                raise Unauthorized(MISSING_KEY)
            key = await lookup_key(request.app.state.sessionmaker, raw)
        if key is None:
            raise Unauthorized(UNKNOWN_KEY)
        if not service.allows(key, self.scope):
            raise Forbidden(f"this key lacks the '{self.scope}' scope")
        request.state.api_key = key
        return key

    @classmethod
    def depends(cls, scope: str) -> Any:
        """``Depends(RequireScope(scope))`` for a router's or a route's dependencies."""
        return Depends(cls(scope))
