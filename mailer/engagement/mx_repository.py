"""``domain_mx``: which recipient domains are due a look-up, and the answers stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# the domains of the last week's feedback (any mail class) outside the fixed table, never
# looked up or looked up too long ago, busiest first: one scan of the week's domain_hours,
# as GET /v1/reputation makes
_DUE = text(
    """
    SELECT d.domain FROM (
        SELECT domain, sum(delivered + bounced + delayed) AS volume FROM domain_hours
         WHERE hour >= date_trunc('hour', now()) - interval '7 days'
         GROUP BY domain) d
      LEFT JOIN domain_mx m ON m.domain = d.domain
     WHERE d.domain LIKE '%_._%' AND d.domain <> ALL(CAST(:fixed AS text[]))
       AND (m.domain IS NULL
            OR m.looked_up_at < now() - CASE WHEN m.failed THEN CAST(:retry AS interval)
                                           ELSE CAST(:ttl AS interval) END)
     ORDER BY m.looked_up_at NULLS FIRST, d.volume DESC, d.domain
     LIMIT :n
    """
)

# a failed look-up keeps the last answer (a domain once known stays grouped while its
# look-ups fail), marked to be tried again sooner
_STORE = text(
    """
    INSERT INTO domain_mx AS t (domain, provider, mx, failed, looked_up_at)
    SELECT *, now() FROM unnest(CAST(:domains AS text[]), CAST(:providers AS text[]),
                                CAST(:hosts AS text[]), CAST(:failed AS boolean[]))
    ON CONFLICT (domain) DO UPDATE
       SET provider = CASE WHEN EXCLUDED.failed THEN t.provider ELSE EXCLUDED.provider END,
           mx = CASE WHEN EXCLUDED.failed THEN t.mx ELSE EXCLUDED.mx END,
           failed = EXCLUDED.failed, looked_up_at = EXCLUDED.looked_up_at
    """
)


async def due_domains(
    session: AsyncSession, fixed: list[str], ttl: timedelta, retry: timedelta, n: int
) -> list[str]:
    """Up to ``n`` recent domains whose MX is due a look-up."""
    params = {"fixed": fixed, "ttl": ttl, "retry": retry, "n": n}
    return list((await session.execute(_DUE, params)).scalars())


async def store(
    session: AsyncSession, found: list[tuple[str, str | None, str | None, bool]]
) -> None:
    """Record each (domain, provider, mx host, failed) as looked up now."""
    if found:
        domains, providers, hosts, failed = (list(c) for c in zip(*found, strict=True))
        params = {"domains": domains, "providers": providers, "hosts": hosts, "failed": failed}
        await session.execute(_STORE, params)
