"""Address normalisation: trimmed, lower-cased, the domain in IDNA (Punycode, as SES takes
it), syntactically valid, the local part ASCII (SES sends no SMTPUTF8 mail)."""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

from mailer.errors import Invalid


def normalise(raw: str) -> str:
    address = raw.strip().lower()
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{_idna(domain)}" if at else address


@lru_cache(maxsize=4096)
def _idna(domain: str) -> str:
    """``bücher.example`` → ``xn--bcher-kva.example``; a name IDNA refuses stays as it is
    (the validator then says why)."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


def local_part_problem(address: str) -> str | None:
    """Why SES cannot send to ``address``'s local part (None when it can)."""
    if address.rpartition("@")[0].isascii():
        return None
    return (
        "the part before the @ has non-ASCII characters: SES cannot send to"
        " internationalised (SMTPUTF8) addresses"
    )


def valid_address(raw: str, path: list[str | int] | str = "email") -> str:
    """The normalised address, or a 422 naming ``path``."""
    address = normalise(raw)
    if _plainly_valid(address):
        return address
    problem = local_part_problem(address)
    if problem is not None:
        raise Invalid.at(path, f"not an address SES can send to: {problem}")
    # test_environment admits the reserved .test domain used by the demo and tests
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise Invalid.at(path, f"not a valid email address: {exc}") from exc
    return address


# A dot-atom local part of the plainest characters, which email_validator accepts whatever
# the domain: such an address is valid exactly when its domain is (and it is not too long).
# Domains repeat (a million recipients share a few thousand), local parts do not, and most
# of validate_email's cost is the domain's IDNA checks: those run once per domain.
_PLAIN_LOCAL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
MAX_LOCAL, MAX_ADDRESS = 64, 254


def _plainly_valid(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return (
        bool(at)
        and len(local) <= MAX_LOCAL
        and len(address) <= MAX_ADDRESS
        and domain.isascii()  # an IDN's length is its ASCII form's
        and _PLAIN_LOCAL.fullmatch(local) is not None
        and _valid_domain(domain)
    )


@lru_cache(maxsize=4096)
def _valid_domain(domain: str) -> bool:
    try:
        validate_email(f"a@{domain}", check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return False  # the whole address is checked again, for its message
    return True


# "Display Name <address>" (the name optionally quoted) or a bare address
_MAILBOX = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^"<>]*?))\s*<([^<>]*)>\s*$', re.S)
_NAME_SPECIALS = set('()<>[]:;@\\,."')
MAX_DISPLAY_NAME = 200


def valid_mailbox(raw: str, path: list[str | int] | str = "email") -> str:
    """An RFC 5322 mailbox, ``Name <address>`` or a bare address, normalised: the address
    part validated and lower-cased as :func:`valid_address` does, the name kept as given
    (Unicode; :func:`encode_mailbox` encodes it for the wire). A 422 naming ``path``."""
    known = _valid_mailboxes.get(raw)
    if known is not None:
        return known
    mailbox = _valid_mailbox(raw, path)
    if len(_valid_mailboxes) >= MAX_KNOWN_MAILBOXES:
        _valid_mailboxes.clear()
    _valid_mailboxes[raw] = mailbox
    return mailbox


# senders repeat: every message of a sender names the same few mailboxes (valid ones only)
_valid_mailboxes: dict[str, str] = {}
MAX_KNOWN_MAILBOXES = 1024


def _valid_mailbox(raw: str, path: list[str | int] | str) -> str:
    match = _MAILBOX.match(raw)
    if match is None:
        if "<" in raw or ">" in raw or '"' in raw:
            raise Invalid.at(path, "not a valid mailbox: use 'Name <address>' or an address")
        return valid_address(raw, path)
    quoted, plain, address = match.groups()
    name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
    name = " ".join(name.split())
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Invalid.at(path, "the display name may not hold control characters")
    if len(name) > MAX_DISPLAY_NAME:
        raise Invalid.at(path, f"the display name is longer than {MAX_DISPLAY_NAME} characters")
    address = valid_address(address, path)
    return format_mailbox(name, address)


def format_mailbox(name: str, address: str) -> str:
    """``Name <address>`` (the name quoted where RFC 5322 needs it), or the bare address."""
    if not name:
        return address
    if _NAME_SPECIALS & set(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        name = f'"{escaped}"'
    return f"{name} <{address}>"


def mailbox_address(mailbox: str) -> str:
    """The address part of a mailbox :func:`valid_mailbox` returned."""
    return parseaddr(mailbox)[1] or mailbox


@lru_cache(maxsize=1024)
def encode_mailbox(mailbox: str) -> str:
    """The mailbox as it goes to SES: a non-ASCII display name RFC 2047-encoded."""
    if "<" not in mailbox:
        return mailbox
    name, address = parseaddr(mailbox)
    return formataddr((name, address), charset="utf-8") if address else mailbox
