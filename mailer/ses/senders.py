"""Alignment at the door: a campaign or a transactional message from a domain whose SES
identity is not verified with DKIM ``SUCCESS`` is refused with a 422 naming the fix
(``mailer ses setup --domain …``), whenever the SES account answers ``GetEmailIdentity``.

DMARC passes for SES mail through DKIM: SES signs with the Easy DKIM keys of the From
domain's identity (or of a parent domain's: ``d=`` then aligns in relaxed mode). A From
domain without such an identity is refused by SES or goes out unaligned, into spam. The
verdict for one domain in one region:

- **verified**: the domain or a parent domain has an identity whose DKIM status is
  ``SUCCESS`` with signing on;
- **not verified**: the account answered, and no identity (``NotFoundException`` for every
  candidate) or none with DKIM ``SUCCESS`` (``PENDING``, ``FAILED``, …): refused;
- **unknown**: the account could not be asked (no credentials, ``AccessDenied``, not
  reachable, throttled): nothing is refused because a read failed.

Answers are kept per (region, domain) in each API process, off the accept path once seen:
a verified one for ``MAILER_SENDER_CHECK_SECONDS`` (300 s), an unknown one for
:data:`RECHECK_SECONDS`, and after that each is still served while one background read
refreshes it. A not-verified answer is kept :data:`RECHECK_SECONDS` and then read again
before the next refusal, so that ``mailer ses setup`` takes effect within half a minute.
Concurrent first uses of a domain share one read. Only the first request naming a domain
waits for SES (a few milliseconds to tens of them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailer.config import Settings
from mailer.errors import Invalid
from mailer.ses.aws import AwsError, Clients, Target, shared_session

VERIFIED, UNVERIFIED, UNKNOWN = "verified", "unverified", "unknown"
RECHECK_SECONDS = 30.0
MAX_ANSWERS = 10_000  # (region, domain) pairs kept; more is someone's experiment


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str  # VERIFIED, UNVERIFIED or UNKNOWN
    detail: str  # "identity example.com: DKIM PENDING", "no SES identity", "AccessDenied: …"


class SenderNotVerified(Invalid):
    code = "sender_not_verified"


MAX_CANDIDATES = 8  # a domain of many labels: itself and its 7 shortest parents


def candidates(domain: str) -> list[str]:
    """The domain and its parents, the TLD excepted: ``a.b.example.com`` → itself,
    ``b.example.com``, ``example.com`` (at most :data:`MAX_CANDIDATES` names)."""
    labels = domain.split(".")
    names = [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
    if len(names) > MAX_CANDIDATES:
        names = names[:1] + names[1 - MAX_CANDIDATES :]
    return names


def dkim_of(identity: dict[str, Any]) -> tuple[str, bool]:
    """(DKIM status, signing on) of a GetEmailIdentity answer."""
    dkim = identity.get("DkimAttributes") or {}
    return str(dkim.get("Status") or "NOT_STARTED"), dkim.get("SigningEnabled") is not False


# refused for one identity only (a policy scoped to some identities): ask the next one
_DENIED = ("AccessDenied", "AccessDeniedException")


async def read_verdict(aws: Clients, region: str, domain: str) -> Verdict:
    """Ask SES about ``domain`` and its parents (``GetEmailIdentity``)."""
    nearest: str | None = None
    unasked: str | None = None
    for name in candidates(domain):
        try:
            found = await aws.find("sesv2", region, "GetEmailIdentity", EmailIdentity=name)
        except AwsError as exc:
            if exc.code not in _DENIED:
                return Verdict(UNKNOWN, f"{exc.code}: {exc.message}")
            unasked = unasked or f"{name}: {exc.code}"
            continue
        if found is None:
            continue
        status, signing = dkim_of(found)
        if status == "SUCCESS" and signing:
            return Verdict(VERIFIED, f"identity {name}: DKIM SUCCESS")
        if nearest is None:
            nearest = f"identity {name}: DKIM {status}" + ("" if signing else ", signing off")
    if unasked is not None:  # what could not be asked may be the verified one
        return Verdict(UNKNOWN, unasked)
    return Verdict(UNVERIFIED, nearest or "no SES identity")


def fix(domain: str, region: str) -> str:
    return f"mailer ses setup --domain {domain} --region {region}"


def refusal(domain: str, region: str, verdict: Verdict, path: list[str | int]) -> SenderNotVerified:
    command = fix(domain, region)
    message = (
        f"the From domain {domain} has no SES identity verified with DKIM in {region}"
        f" ({verdict.detail}): SES would refuse its mail or send it unaligned with DMARC."
        f" Run `{command}` and publish the DNS records it prints (SES verifies within 72 h;"
        " this check sees it within a minute)"
    )
    return SenderNotVerified(
        message,
        [
            {
                "path": path,
                "message": message,
                "domain": domain,
                "region": region,
                "identity": verdict.detail,
                "fix": command,
            }
        ],
    )


async def check_sender(
    senders: SenderCheck | None, mailbox: str, regions: Sequence[str] | None
) -> None:
    """A campaign's From (``body.from_address``) checked when there is a check (the API's,
    the console's); a caller without one (a bench) checks nothing."""
    if senders is not None:
        await senders.check(mailbox, regions, ["body", "from_address"])


Reader = Callable[[Clients, str, str], Awaitable[Verdict]]


class SenderCheck:
    """The API process' cached verdicts; :meth:`check` raises :class:`SenderNotVerified`."""

    def __init__(
        self,
        settings: Settings,
        *,
        target: Target | None = None,
        recheck_seconds: float = RECHECK_SECONDS,
        reader: Reader = read_verdict,
    ) -> None:
        self.seconds = settings.sender_check_seconds
        self.recheck_seconds = min(recheck_seconds, self.seconds)
        self.regions = tuple(settings.regions)
        self.target = target or Target.from_settings(settings)
        self.reader = reader
        self.reads = 0  # SES reads started (what the tests count)
        self._aws: Clients | None = None
        # (region, domain) -> (verdict, when it was read)
        self._answers: dict[tuple[str, str], tuple[Verdict, float]] = {}
        self._reads: dict[tuple[str, str], asyncio.Task[Verdict]] = {}

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    async def close(self) -> None:
        for task in list(self._reads.values()):
            task.cancel()
        await asyncio.gather(*self._reads.values(), return_exceptions=True)
        if self._aws is not None:
            await self._aws.__aexit__(None, None, None)
            self._aws = None

    async def check(
        self, mailbox: str, regions: Sequence[str] | None, path: list[str | int]
    ) -> None:
        """Refuse a From ``mailbox`` (as :func:`valid_mailbox` returns it) whose domain is
        known not to be verified in one of ``regions`` (default: every configured one)."""
        if self.seconds <= 0:
            return
        domain = mailbox.rstrip(">").rpartition("@")[2]
        for region in regions or self.regions:
            verdict = await self.verdict(region, domain)
            if verdict.state == UNVERIFIED:
                raise refusal(domain, region, verdict, path)

    async def verdict(self, region: str, domain: str) -> Verdict:
        key = (region, domain)
        known = self._answers.get(key)
        if known is not None:
            verdict, read_at = known
            age = time.monotonic() - read_at
            if verdict.state == UNVERIFIED:
                if age < self.recheck_seconds:
                    return verdict
            else:
                keep = self.seconds if verdict.state == VERIFIED else self.recheck_seconds
                if age >= keep:
                    self._read(key)  # in the background; this answer meanwhile
                return verdict
        # shielded: a request that goes away does not cancel the read others wait for
        return await asyncio.shield(self._read(key))

    def _read(self, key: tuple[str, str]) -> asyncio.Task[Verdict]:
        task = self._reads.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read_now(*key))
            self._reads[key] = task
        return task

    async def _read_now(self, region: str, domain: str) -> Verdict:
        self.reads += 1
        try:
            verdict = await self.reader(self._clients(), region, domain)
        except Exception as exc:  # noqa: BLE001 - a read that failed blocks nothing
            verdict = Verdict(UNKNOWN, repr(exc))
        finally:
            self._reads.pop((region, domain), None)
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[(region, domain)] = (verdict, time.monotonic())
        return verdict

    def _clients(self) -> Clients:
        if self._aws is None:
            # one attempt, short timeouts: an account that cannot answer soon is "unknown"
            self._aws = Clients(
                self.target,
                attempts=1,
                connect_timeout=3,
                read_timeout=5,
                record=False,
                session=shared_session(),
            )
        return self._aws

    def forget(self) -> None:
        """Drop every kept answer: the next use of each domain asks SES again."""
        self._answers.clear()
