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

from mailer import metrics, secrets
from mailer.auth.dependencies import lookup_key
from mailer.auth.service import KeyCache
from mailer.config import Settings, get_settings
from mailer.console.contact_pages import IMPORTS_PATH as CONSOLE_IMPORTS_PATH
from mailer.console.suppression_pages import IMPORTS_PATH as CONSOLE_SUPPRESSION_IMPORTS_PATH
from mailer.contact.endpoints import IMPORTS_PATH
from mailer.db import create_engine, create_sessionmaker
from mailer.errors import install_handlers
from mailer.logging import configure_logging
from mailer.message.endpoints import MESSAGES_PATH, MessagesEndpoint
from mailer.message.intake import Intake
from mailer.middleware import BodyGate, RequestContext
from mailer.openapi import document_errors
from mailer.ops.docs import install_docs
from mailer.ses.aws import sns_transport
from mailer.ses.senders import SenderCheck
from mailer.subscription.public import SUBSCRIBE_PREFIX, SignupEndpoint
from mailer.subscription.signup import Signups
from mailer.suppression.endpoints import IMPORTS_PATH as SUPPRESSION_IMPORTS_PATH
from mailer.webhook.endpoints import SNS_PATH, SnsEndpoint
from mailer.webhook.sns import CertStore
from mailer.webhook.store import NotificationStore


class MailerAPI(FastAPI):
    """The FastAPI app, with the two hot POSTs dispatched before the middleware stack and
    the router to lean handlers of their own, inside the same ``RequestContext``:
    ``/webhooks/sns`` (``mailer.webhook.endpoints.SnsEndpoint`` in a ``BodyGate`` of its
    own; SNS posts thousands a second), ``/v1/messages``
    (``mailer.message.endpoints.MessagesEndpoint``, which looks its caller up before it
    reads the body and hands whatever it does not accept to :meth:`routed`) and the JSON
    signups of ``/subscribe/{form_id}`` (``mailer.subscription.public.SignupEndpoint``)."""

    lean_posts: dict[str, ASGIApp] = {}  # noqa: RUF012 - replaced per app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            lean = self.lean_posts.get(path)
            if lean is None and path.startswith(SUBSCRIBE_PREFIX):
                lean = self.lean_posts.get(SUBSCRIBE_PREFIX)
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


async def _authenticate(scope: Scope, raw: str) -> object | None:
    return await lookup_key(scope["app"].state.sessionmaker, raw)


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


def create_app(settings: Settings | None = None) -> MailerAPI:
    """The API; raises :class:`mailer.secrets.WeakSecret` for a key that must not sign."""
    settings = settings or get_settings()
    secrets.require(settings)
    configure_logging(settings)
    metrics.declare_known_labels(settings.configuration_sets, settings.regions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.arq = await create_pool(redis_settings(settings))
        app.state.sns_http = httpx.AsyncClient(transport=sns_transport(settings))
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
        # the From domains' SES identities (DKIM), read once per domain and kept
        app.state.senders = SenderCheck(settings)
        app.state.intake = Intake(
            create_sessionmaker(intake_engine),
            settings,
            app.state.arq,
            group_size=settings.intake_group_size,
            concurrency=settings.intake_concurrency,
            senders=app.state.senders,
        )
        app.state.signups = Signups(app.state.sessionmaker, settings, app.state.arq)
        try:
            yield
        finally:
            await app.state.signups.close()
            await app.state.intake.close()
            await app.state.senders.close()
            await intake_engine.dispose()
            await app.state.sns_store.close()
            await app.state.sns_http.aclose()
            await app.state.arq.aclose()
            await engine.dispose()

    app = MailerAPI(title="mailer", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_handlers(app)
    install_docs(app)

    from mailer.audience.endpoints import router as segments
    from mailer.auth.endpoints import router as keys
    from mailer.campaign.endpoints import router as campaigns
    from mailer.campaign.result_endpoints import router as engagement
    from mailer.console.pages import router as console
    from mailer.contact.endpoints import router as contacts
    from mailer.message.endpoints import contact_router as contact_messages
    from mailer.message.endpoints import router as messages
    from mailer.ops.dashboard import router as dashboard
    from mailer.ops.endpoints import router as ops
    from mailer.reputation.endpoints import router as reputation
    from mailer.subscription.endpoints import router as subscriptions
    from mailer.subscription.public import router as subscribe
    from mailer.suppression.endpoints import public_router as unsubscribe
    from mailer.suppression.endpoints import router as suppressions
    from mailer.template.endpoints import router as templates
    from mailer.webhook.endpoints import router as webhooks
    from mailer.webhook_out.endpoints import router as webhooks_out

    # first: SNS posts thousands a second, and signups hundreds (routes are matched in
    # order, and these paths are nobody else's)
    app.include_router(webhooks)
    app.include_router(subscribe)
    for router in (
        contacts,
        contact_messages,
        segments,
        templates,
        campaigns,
        engagement,
        messages,
        suppressions,
    ):
        app.include_router(router, prefix="/v1")
    app.include_router(reputation, prefix="/v1")
    app.include_router(keys, prefix="/v1")
    app.include_router(webhooks_out, prefix="/v1")
    app.include_router(ops)
    app.include_router(dashboard)
    app.include_router(console)
    app.include_router(unsubscribe)
    app.include_router(subscriptions, prefix="/v1")

    # outermost last: RequestContext ▸ BodyGate ▸ the routes
    app.add_middleware(
        BodyGate,
        default_limit=settings.max_body_bytes,
        limits={
            ("POST", IMPORTS_PATH): settings.max_import_bytes,
            ("POST", SNS_PATH): settings.sns_max_body_bytes,
            ("POST", SUPPRESSION_IMPORTS_PATH): settings.max_import_bytes,
            ("POST", CONSOLE_IMPORTS_PATH): settings.max_import_bytes,
            ("POST", CONSOLE_SUPPRESSION_IMPORTS_PATH): settings.max_import_bytes,
        },
        authenticate=_authenticate,
    )
    app.add_middleware(RequestContext)
    app.lean_posts = {
        SNS_PATH: RequestContext(BodyGate(SnsEndpoint(app.state), settings.sns_max_body_bytes)),
        # it looks its caller up before reading the body, and hands anything it does not
        # accept to the whole app (whose gate then answers 401, 413 or 422)
        MESSAGES_PATH: RequestContext(MessagesEndpoint(app.state, app.routed)),
        # /subscribe/{form_id}: a JSON signup here, a form post (and every refusal the app
        # makes of a body) by the whole app
        SUBSCRIBE_PREFIX: RequestContext(SignupEndpoint(app.state, app.routed)),
    }
    return app
