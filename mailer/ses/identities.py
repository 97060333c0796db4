"""The SES account's verified identities, as the console's campaign wizard offers them for
From and Reply-To: SES v2 ListEmailIdentities in every configured region, through the
same clients as ``mailer ses`` (the local emulator included), kept for a few minutes.

A page must not wait on AWS: one quick attempt, a short deadline, and when SES cannot be
asked (no credentials, no network, no permission) the answer is None, remembered for a
shorter while, and the wizard takes any address typed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mailer.config import Settings
from mailer.ses.aws import AwsError, Clients, Target

FRESH_SECONDS = 300.0  # how long a listing is offered before SES is asked again
FAILED_SECONDS = 30.0  # how long "SES could not be asked" stands
DEADLINE_SECONDS = 3.0  # a page waits no longer than this for every region's listing


@dataclass(frozen=True)
class Identity:
    """A verified identity: an address, or a domain (any address at it), and the regions
    it is verified in (a campaign sends through each of its regions)."""

    name: str
    is_domain: bool
    regions: tuple[str, ...]


# (endpoint, regions) → (good until, identities); no lock: two pages that miss at once
# both ask, and the later answer stays
_cache: dict[tuple[str | None, tuple[str, ...]], tuple[float, list[Identity] | None]] = {}


async def _list(settings: Settings) -> list[Identity]:
    verified: dict[str, tuple[bool, list[str]]] = {}
    async with Clients(
        Target.from_settings(settings), attempts=1, connect_timeout=2, read_timeout=4
    ) as aws:
        for region in settings.regions:
            listed = await aws.pages("sesv2", region, "ListEmailIdentities", "EmailIdentities")
            for item in listed:
                if item.get("VerificationStatus") != "SUCCESS" or not item.get(
                    "SendingEnabled", True
                ):
                    continue
                name = str(item.get("IdentityName") or "").lower()
                if name:
                    entry = verified.setdefault(name, ("@" not in name, []))
                    entry[1].append(region)
    # addresses before domains, each in name order
    return [
        Identity(name, is_domain, tuple(regions))
        for name, (is_domain, regions) in sorted(verified.items(), key=lambda i: (i[1][0], i[0]))
    ]


async def verified(settings: Settings) -> list[Identity] | None:
    """The identities verified for sending in any configured region; None when SES could
    not be asked. Listed at most every ``FRESH_SECONDS`` per endpoint and regions."""
    key = (settings.ses_endpoint_url, tuple(settings.regions))
    found = _cache.get(key)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    try:
        identities: list[Identity] | None = await asyncio.wait_for(
            _list(settings), DEADLINE_SECONDS
        )
    except (AwsError, TimeoutError):
        identities = None
    ttl = FRESH_SECONDS if identities is not None else FAILED_SECONDS
    _cache[key] = (time.monotonic() + ttl, identities)
    return identities


def forget() -> None:
    """Drop what was listed: the next call asks SES again."""
    _cache.clear()
