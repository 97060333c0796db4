"""The SES accounts as last polled (GetAccount per region): their rows, and what was sent
in the last 24 hours by region to compare with each account's quota."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Db = AsyncSession | AsyncConnection


_UPSERT_ACCOUNT = text(
    """
    INSERT INTO region_accounts AS a (region, max_send_rate, max_24h_send, sent_last_24h,
                                      sending_enabled, enforcement_status, production_access,
                                      error, checked_at)
    VALUES (:region, :max_send_rate, :max_24h_send, :sent_last_24h, :sending_enabled,
            :enforcement_status, :production_access, :error, now())
    ON CONFLICT (region) DO UPDATE SET
        max_send_rate = COALESCE(EXCLUDED.max_send_rate, a.max_send_rate),
        max_24h_send = COALESCE(EXCLUDED.max_24h_send, a.max_24h_send),
        sent_last_24h = COALESCE(EXCLUDED.sent_last_24h, a.sent_last_24h),
        sending_enabled = COALESCE(EXCLUDED.sending_enabled, a.sending_enabled),
        enforcement_status = COALESCE(EXCLUDED.enforcement_status, a.enforcement_status),
        production_access = COALESCE(EXCLUDED.production_access, a.production_access),
        error = EXCLUDED.error, checked_at = now()
    """
)


async def save_account(
    db: Db, region: str, account: dict[str, Any] | None, error: str | None = None
) -> None:
    values = {
        k: None
        for k in (
            "max_send_rate",
            "max_24h_send",
            "sent_last_24h",
            "sending_enabled",
            "enforcement_status",
            "production_access",
        )
    }
    values.update(account or {})
    await db.execute(_UPSERT_ACCOUNT, {"region": region, "error": error, **values})


_ACCOUNTS = text("SELECT * FROM region_accounts ORDER BY region")


async def accounts(db: Db) -> dict[str, Any]:
    return {r.region: r for r in await db.execute(_ACCOUNTS)}


_SENT_24H = text(
    "SELECT region, sum(sent) AS sent FROM reputation_minutes"
    " WHERE minute >= now() - interval '24 hours' GROUP BY 1"
)


async def sent_24h_by_region(db: Db) -> dict[str, int]:
    return {r.region: int(r.sent) for r in await db.execute(_SENT_24H)}
