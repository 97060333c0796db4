"""The verdict on a From domain (``mailer.ses.senders``) and how answers are kept: read
once per domain (concurrent first uses share the read), a verified answer served while a
background read refreshes it, a refusal read again before the next one, and nothing
blocked when SES cannot be asked. The API side: ``tests/deliverability/test_alignment.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mailer.config import Settings
from mailer.ses.aws import AwsError
from mailer.ses.senders import (
    UNKNOWN,
    UNVERIFIED,
    VERIFIED,
    SenderCheck,
    SenderNotVerified,
    Verdict,
    candidates,
    read_verdict,
)


def identity(status: str = "SUCCESS", signing: bool = True) -> dict[str, Any]:
    return {"DkimAttributes": {"Status": status, "SigningEnabled": signing}}


class Account:
    """``Clients.find`` over a dict: an identity's answer, None (NotFoundException) or an
    error to raise."""

    def __init__(self, **identities: Any) -> None:
        self.identities = {k.replace("_", "."): v for k, v in identities.items()}
        self.asked: list[str] = []

    async def find(self, service: str, region: str, operation: str, **params: Any) -> Any:
        assert (service, operation) == ("sesv2", "GetEmailIdentity")
        name = params["EmailIdentity"]
        self.asked.append(name)
        found = self.identities.get(name)
        if isinstance(found, Exception):
            raise found
        return found


def denied() -> AwsError:
    return AwsError("GetEmailIdentity", "AccessDeniedException", "not allowed")


async def verdict(account: Account, domain: str) -> Verdict:
    return await read_verdict(account, "us-east-1", domain)  # type: ignore[arg-type]


def test_candidates_are_the_domain_and_its_parents_without_the_tld() -> None:
    assert candidates("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com"]
    assert candidates("example.com") == ["example.com"]
    assert candidates("localhost") == ["localhost"]
    many = ".".join("abcdefghijkl") + ".example"  # 13 labels: itself and 7 shortest parents
    assert candidates(many) == [many] + [".".join([*"fghijkl", "example"][i:]) for i in range(7)]


async def test_the_verdicts() -> None:
    shop = Account(shop_example=identity())
    assert await verdict(shop, "shop.example") == Verdict(
        VERIFIED, "identity shop.example: DKIM SUCCESS"
    )
    # a subdomain is signed with its parent's keys: d= aligns (relaxed)
    shop.asked.clear()
    assert (await verdict(shop, "news.shop.example")).state == VERIFIED
    assert shop.asked == ["news.shop.example", "shop.example"]

    nothing = Account()
    assert await verdict(nothing, "news.shop.example") == Verdict(UNVERIFIED, "no SES identity")
    assert nothing.asked == ["news.shop.example", "shop.example"]  # never "example"

    pending = Account(shop_example=identity("PENDING"))
    assert await verdict(pending, "shop.example") == Verdict(
        UNVERIFIED, "identity shop.example: DKIM PENDING"
    )
    off = Account(shop_example=identity(signing=False))
    assert await verdict(off, "shop.example") == Verdict(
        UNVERIFIED, "identity shop.example: DKIM SUCCESS, signing off"
    )
    # the nearest identity is named; a verified parent still makes it aligned
    both = Account(news_shop_example=identity("FAILED"), shop_example=identity())
    assert (await verdict(both, "news.shop.example")).state == VERIFIED


async def test_what_cannot_be_asked_is_unknown_never_unverified() -> None:
    # a policy scoped to other identities: the next candidate is asked
    scoped = Account(news_shop_example=denied(), shop_example=identity())
    assert (await verdict(scoped, "news.shop.example")).state == VERIFIED
    unasked = Account(news_shop_example=denied())
    assert await verdict(unasked, "news.shop.example") == Verdict(
        UNKNOWN, "news.shop.example: AccessDeniedException"
    )
    # not reachable: unknown at once, no further call
    down = Account(news_shop_example=AwsError("GetEmailIdentity", "EndpointConnectionError", "x"))
    assert (await verdict(down, "news.shop.example")).state == UNKNOWN
    assert down.asked == ["news.shop.example"]


class Reader:
    """A reader returning ``answers`` in turn (the last one again), slowly."""

    def __init__(self, *answers: Verdict | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, aws: Any, region: str, domain: str) -> Verdict:
        self.calls += 1
        await asyncio.sleep(0.02)
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def age(check: SenderCheck, domain: str, seconds: float) -> None:
    """Make the kept answer for ``domain`` ``seconds`` older."""
    key = ("us-east-1", domain)
    verdict_, read_at = check._answers[key]  # noqa: SLF001
    check._answers[key] = (verdict_, read_at - seconds)  # noqa: SLF001


async def test_concurrent_first_uses_share_one_read_and_later_ones_read_nothing(
    settings: Settings,
) -> None:
    reader = Reader(Verdict(VERIFIED, "ok"))
    check = SenderCheck(settings, reader=reader)
    await asyncio.gather(*(check.check("a@shop.example", None, ["body"]) for _ in range(50)))
    assert reader.calls == 1
    for _ in range(1000):
        await check.check("Shop <b@shop.example>", None, ["body"])
    assert reader.calls == 1 and check.reads == 1

    # past MAILER_SENDER_CHECK_SECONDS: served at once, one read in the background
    age(check, "shop.example", settings.sender_check_seconds + 1)
    await asyncio.gather(*(check.check("a@shop.example", None, ["body"]) for _ in range(20)))
    assert reader.calls == 2
    await asyncio.sleep(0.05)
    assert reader.calls == 2
    await check.close()


async def test_a_refusal_is_read_again_before_the_next_one(settings: Settings) -> None:
    reader = Reader(Verdict(UNVERIFIED, "no SES identity"), Verdict(VERIFIED, "ok"))
    check = SenderCheck(settings, reader=reader)
    for _ in range(3):
        with pytest.raises(SenderNotVerified) as refused:
            await check.check("a@shop.example", ["us-east-1"], ["body", "from_address"])
    assert reader.calls == 1
    assert (
        refused.value.details[0]["fix"]
        == "mailer ses setup --domain shop.example --region us-east-1"
    )
    assert refused.value.details[0]["path"] == ["body", "from_address"]
    age(check, "shop.example", 31)  # after mailer ses setup: read before refusing again
    await check.check("a@shop.example", ["us-east-1"], ["body"])
    assert reader.calls == 2
    await check.close()


async def test_a_failed_read_blocks_nothing_and_the_check_can_be_off(settings: Settings) -> None:
    reader = Reader(RuntimeError("boom"))
    check = SenderCheck(settings, reader=reader)
    await check.check("a@shop.example", None, ["body"])
    assert check._answers[("us-east-1", "shop.example")][0].state == UNKNOWN  # noqa: SLF001
    off = SenderCheck(
        settings.model_copy(update={"sender_check_seconds": 0}),
        reader=Reader(Verdict(UNVERIFIED, "no SES identity")),
    )
    assert not off.enabled
    await off.check("a@shop.example", None, ["body"])
    assert off.reads == 0
    await check.close()


async def test_every_region_of_the_send_is_checked(settings: Settings) -> None:
    class ByRegion:
        async def __call__(self, aws: Any, region: str, domain: str) -> Verdict:
            return Verdict(VERIFIED if region == "us-east-1" else UNVERIFIED, region)

    check = SenderCheck(
        settings.model_copy(update={"regions": ["us-east-1", "eu-west-1"]}), reader=ByRegion()
    )
    await check.check("a@shop.example", ["us-east-1"], ["body"])
    with pytest.raises(SenderNotVerified) as refused:
        await check.check("a@shop.example", None, ["body"])
    assert refused.value.details[0]["region"] == "eu-west-1"
    await check.close()
