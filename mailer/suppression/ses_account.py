"""The SES account-level suppression list of a region, read through SES v2
(``ListSuppressedDestinations``, a page of up to 1,000 at a time; its summaries carry the
address, the reason and the date, so no ``GetSuppressedDestination`` per address)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

PAGE_SIZE = 1000


class SesListError(Exception):
    """SES refused or could not be reached; the message says which and why."""


async def suppressed_destinations(
    region: str,
    endpoint_url: str | None,
    credentials: dict[str, str] | None = None,
) -> list[tuple[str, str, datetime]]:
    """Every entry of ``region``'s account-level list: (address, reason, last update)."""
    session = get_session()
    out: list[tuple[str, str, datetime]] = []
    try:
        async with session.create_client(
            "sesv2", region_name=region, endpoint_url=endpoint_url, **(credentials or {})
        ) as client:
            params: dict[str, Any] = {"PageSize": PAGE_SIZE}
            while True:
                page = await client.list_suppressed_destinations(**params)
                for item in page.get("SuppressedDestinationSummaries", []):
                    when = item.get("LastUpdateTime")
                    if not isinstance(when, datetime):
                        when = datetime.now(UTC)
                    out.append((str(item["EmailAddress"]), str(item["Reason"]), when))
                token = page.get("NextToken")
                if not token:
                    return out
                params["NextToken"] = token
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SesListError(
            f"{region}: SES ListSuppressedDestinations refused: "
            f"{error.get('Code', '?')}: {error.get('Message', '')}"
        ) from exc
    except BotoCoreError as exc:
        raise SesListError(f"{region}: SES could not be reached: {exc}") from exc
