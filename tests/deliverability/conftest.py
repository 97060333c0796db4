"""An API with settings of a test's own (``api_with(**overrides)``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from mailer.config import Settings


@pytest.fixture
def api_with(
    settings: Settings, engine: Any, redis: Any
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    from mailer.app import create_app

    @asynccontextmanager
    async def _api(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
                yield c

    return _api
