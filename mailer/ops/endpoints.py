"""Health, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from mailer import metrics
from mailer.ops import scrape

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["postgresql"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["postgresql"] = f"error: {type(exc).__name__}"
    try:
        await request.app.state.arq.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    """Every process' counters (multiprocess files) and the system's numbers, as text;
    only to a scraper with the metrics token."""
    settings = request.app.state.settings
    metrics.require(request.headers.get("authorization"), settings)
    async with request.app.state.sessionmaker() as session:
        extra = await scrape.families(session, request.app.state.arq, settings)
    body = metrics.exposition(settings.metrics_dir, extra)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
