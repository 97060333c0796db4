"""create_app(): lifespan, middleware, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from mailer.auth.service import KeyCache
from mailer.config import Settings, get_settings
from mailer.db import create_engine, create_sessionmaker
from mailer.errors import TooLarge, error_body, install_handlers
from mailer.logging import configure_logging
from mailer.message.endpoints import MESSAGES_PATH, MessagesEndpoint
from mailer.message.intake import Intake
from mailer.middleware import JsonGuard, RequestContext, send_json
from mailer.openapi import document_errors
from mailer.webhook.endpoints import SNS_PATH, SnsEndpoint
from mailer.webhook.service import NotificationStore
from mailer.webhook.sns import CertStore


class BodyLimit:
    """Answer 413 for bodies over the limit, before the endpoint reads them."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # path prefix → limit

    def _limit(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reject_too_large(send, limit)
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _reject_too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _reject_too_large(send: Send, limit: int) -> None:
    body = error_body(TooLarge.code, f"request body over {limit} bytes")
    await send_json(send, TooLarge.status_code, body)


class MailerAPI(FastAPI):
    """The FastAPI app, with the two hot POSTs dispatched before the middleware stack and
    the router to lean handlers of their own, inside the same ``RequestContext`` and
    ``BodyLimit``: ``/webhooks/sns`` (``mailer.webhook.endpoints.SnsEndpoint``; SNS posts
    thousands a second) and ``/v1/messages`` (``mailer.message.endpoints.MessagesEndpoint``,
    which hands whatever it does not accept to :meth:`routed`)."""

    lean_posts: dict[str, ASGIApp] = {}  # noqa: RUF012 - replaced per app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            lean = self.lean_posts.get(scope["path"])
            if lean is not None:
                scope["app"] = self
                await lean(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            self.openapi_schema = document_errors(self, super().openapi())
        return self.openapi_schema

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The middleware stack and the router, whatever the path."""
        await super().__call__(scope, receive, send)


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


def create_app(settings: Settings | None = None) -> MailerAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.arq = await create_pool(redis_settings(settings))
        app.state.sns_http = httpx.AsyncClient()
        app.state.sns_certs = CertStore(
            settings.sns_cert_dir,
            app.state.sns_http,
            timeout=settings.sns_cert_timeout_seconds,
            max_bytes=settings.sns_cert_max_bytes,
        )
        app.state.sns_store = NotificationStore(engine, app.state.arq)
        app.state.api_keys = KeyCache(app.state.sessionmaker, settings.api_key_cache_seconds)
        # the intake's own connections, without the pre-ping round trip per checkout: a
        # group on a broken connection fails before its commit, and each of its requests
        # is then tried again alone (on a fresh connection)
        intake_engine = create_engine(
            settings, pool_size=settings.intake_concurrency, pre_ping=False
        )
        app.state.intake = Intake(
            create_sessionmaker(intake_engine),
            settings,
            app.state.arq,
            group_size=settings.intake_group_size,
            concurrency=settings.intake_concurrency,
        )
        try:
            yield
        finally:
            await app.state.intake.close()
            await intake_engine.dispose()
            await app.state.sns_store.close()
            await app.state.sns_http.aclose()
            await app.state.arq.aclose()
            await engine.dispose()

    app = MailerAPI(title="mailer", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_handlers(app)

    from mailer.audience.endpoints import router as segments
    from mailer.campaign.endpoints import router as campaigns
    from mailer.contact.endpoints import router as contacts
    from mailer.message.endpoints import router as messages
    from mailer.ops.dashboard import router as dashboard
    from mailer.ops.endpoints import router as ops
    from mailer.reputation.endpoints import router as reputation
    from mailer.suppression.endpoints import public_router as unsubscribe
    from mailer.suppression.endpoints import router as suppressions
    from mailer.template.endpoints import router as templates
    from mailer.webhook.endpoints import router as webhooks

    # first: SNS posts thousands a second, and routes are matched in order
    app.include_router(webhooks)
    for router in (contacts, segments, templates, campaigns, messages, suppressions):
        app.include_router(router, prefix="/v1")
    app.include_router(reputation, prefix="/v1")
    app.include_router(ops)
    app.include_router(dashboard)
    app.include_router(unsubscribe)

    # outermost last: RequestContext ▸ BodyLimit ▸ JsonGuard ▸ the routes
    app.add_middleware(JsonGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        BodyLimit,
        default_limit=settings.max_body_bytes,
        limits={
            "/v1/contacts/imports": settings.max_import_bytes,
            "/webhooks/sns": settings.sns_max_body_bytes,
        },
    )
    app.add_middleware(RequestContext)
    app.lean_posts = {
        SNS_PATH: RequestContext(
            BodyLimit(SnsEndpoint(app.state), settings.sns_max_body_bytes, {})
        ),
        MESSAGES_PATH: RequestContext(
            BodyLimit(MessagesEndpoint(app.state, app.routed), settings.max_body_bytes, {})
        ),
    }
    return app
