"""Contact jobs (arq): plain ``async def f(ctx, ...)``, ids not objects, safe to run twice."""

from __future__ import annotations

from typing import Any

import structlog
from arq import Retry

from mailer.contact import import_merge, import_repository, imports

log = structlog.get_logger(__name__)

IMPORT_TRIES = 5  # a database hiccup is retried; the import resumes after its last chunk


async def import_contacts(ctx: dict[str, Any], import_id: int) -> str:
    """Run a CSV import to completion (or resume it); its final status."""
    try:
        return await import_merge.run_import(ctx["sessionmaker"], import_id)
    except Exception as exc:
        attempt = int(ctx.get("job_try") or 1)
        log.warning(
            "import_failed_attempt",
            import_id=import_id,
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
        )
        if attempt < IMPORT_TRIES:
            raise Retry(defer=2 * attempt) from exc
        # the report is an API answer: the error's class, never its text (SQL, data)
        failure = f"the import failed ({type(exc).__name__}); the worker's log has the details"
        await import_merge.fail_import(ctx["sessionmaker"], import_id, failure)
        return "failed"


async def resume_imports(ctx: dict[str, Any]) -> int:
    """Enqueue every unfinished import (the queue may have lost it); the number enqueued.

    An import's job id is fixed, so one still queued or running is not enqueued twice.
    """
    async with ctx["sessionmaker"]() as session:
        ids = await import_repository.unfinished_imports(session)
    for import_id in ids:
        await imports.enqueue_import(ctx["redis"], import_id)
    return len(ids)
