"""``mailer ses check``'s DMARC look-up (issue 21): the From domain's record, else a
parent's (the organizational domain); none is a warning with a record to publish. Every
look-up goes to a DNS server on loopback (``tests/fixtures/dns``), never the internet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailer.config import Settings
from mailer.ses import dmarc
from tests.fixtures.dns import DnsStub


@pytest.fixture
def stub() -> Iterator[DnsStub]:
    with DnsStub() as server:
        yield server


def _settings(settings: Settings, stub: DnsStub) -> Settings:
    return settings.model_copy(update={"dns_resolvers": [stub.address]})


async def test_a_record_at_the_domain_is_fine(settings: Settings, stub: DnsStub) -> None:
    stub.txt["_dmarc.shop.example"] = ["v=DMARC1; p=quarantine; rua=mailto:d@shop.example"]
    [(domain, fine, detail, fix)] = await dmarc.facts(_settings(settings, stub), ["shop.example"])
    assert (domain, fine, fix) == ("shop.example", True, None)
    assert detail == "v=DMARC1; p=quarantine; rua=mailto:d@shop.example"
    assert stub.questions == ["_dmarc.shop.example"]


async def test_a_parent_domains_record_applies_to_a_subdomain(
    settings: Settings, stub: DnsStub
) -> None:
    stub.txt["_dmarc.shop.example"] = ["v=DMARC1; p=none"]
    [(_, fine, detail, _)] = await dmarc.facts(_settings(settings, stub), ["news.shop.example"])
    assert fine and detail == "v=DMARC1; p=none (from _dmarc.shop.example)"
    # the tree walk stops before the TLD
    assert stub.questions == ["_dmarc.news.shop.example", "_dmarc.shop.example"]


async def test_no_record_warns_with_one_to_publish(settings: Settings, stub: DnsStub) -> None:
    # an SPF record is not a DMARC record
    stub.txt["_dmarc.shop.example"] = ["v=spf1 include:amazonses.com ~all"]
    [(_, fine, detail, fix)] = await dmarc.facts(_settings(settings, stub), ["shop.example"])
    assert not fine
    assert detail.startswith("no DMARC record at _dmarc.shop.example")
    assert fix is not None
    assert (
        'TXT _dmarc.shop.example "v=DMARC1; p=none; rua=mailto:dmarc-reports@shop.example"' in fix
    )
    assert stub.questions == ["_dmarc.shop.example"]


async def test_two_records_are_as_good_as_none(settings: Settings, stub: DnsStub) -> None:
    stub.txt["_dmarc.shop.example"] = ["v=DMARC1; p=none", "v=DMARC1; p=reject"]
    [(_, fine, detail, fix)] = await dmarc.facts(_settings(settings, stub), ["shop.example"])
    assert not fine and "2 DMARC records" in detail and fix and "keep one" in fix


async def test_a_failed_look_up_is_a_warning_of_its_own(settings: Settings) -> None:
    with DnsStub() as silent:
        address = silent.address
    # nothing answers there any more: the look-up times out
    resolver = dmarc.resolver(settings.model_copy(update={"dns_resolvers": [address]}))
    resolver.lifetime = 0.5
    found = await dmarc.lookup(resolver, "shop.example")
    assert found.record is None and found.problem and "LifetimeTimeout" in found.problem
    fine, detail, fix = dmarc.judged("shop.example", found)
    assert not fine and detail.startswith("not looked up") and fix and "MAILER_DNS_RESOLVERS" in fix


def test_resolvers_come_from_the_setting(settings: Settings) -> None:
    resolver = dmarc.resolver(
        settings.model_copy(
            update={"dns_resolvers": ["127.0.0.1:5300", "::1", "[::1]:5301", "10.0.0.2"]}
        )
    )
    assert [(n.address, n.port) for n in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 5300),
        ("::1", 53),
        ("::1", 5301),
        ("10.0.0.2", 53),
    ]
    assert Settings(dns_resolvers="127.0.0.1:5300, 10.0.0.2").dns_resolvers == [
        "127.0.0.1:5300",
        "10.0.0.2",
    ]
