"""Headers that bulk mail carries beyond List-Unsubscribe.

- ``List-Id`` (RFC 2919) on campaign mail: one list per campaign, named on the From
  domain (``"Spring sale" <campaign-42.news.example.com>``), so mailbox providers and
  readers' filters can tell one list from another;
- the ``mailto:`` of ``List-Unsubscribe`` only when someone reads that mailbox: inbound
  unsubscribes configured (``MAILER_INBOUND_UNSUBSCRIBE_DOMAIN``, see
  :mod:`mailer.deliverability.inbound`). A mailto that goes nowhere breaks CAN-SPAM and
  Gmail's two-day rule, so without a receiver there is none.
"""

from __future__ import annotations

import re
from email.header import Header
from functools import lru_cache

from mailer.config import Settings
from mailer.contact.addresses import mailbox_address

_PHRASE_UNSAFE = re.compile(r"[^A-Za-z0-9 !#$%&\'*+/=?^_`{|}~.,-]")
MAX_NAME = 60


@lru_cache(maxsize=1024)
def list_id(campaign_id: int, name: str, from_address: str) -> str:
    """The ``List-Id`` of a campaign's mail."""
    domain = mailbox_address(from_address).rpartition("@")[2] or "localhost"
    phrase = " ".join(name.split())[:MAX_NAME]
    label = f"<campaign-{campaign_id}.{domain}>"
    if not phrase:
        return label
    if phrase.isascii() and not _PHRASE_UNSAFE.search(phrase):
        quoted = phrase.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" {label}'
    return f"{Header(phrase, 'utf-8').encode()} {label}"


# the mail classes not held to the bulk-sender rules (unsubscribe link, postal address,
# List-Id): mail a person asked for
EXEMPT_CLASSES = frozenset({"transactional"})


def is_bulk(mail_class: str) -> bool:
    """Whether mail of ``mail_class`` is bulk mail, as Gmail, Yahoo and CAN-SPAM mean it."""
    return mail_class not in EXEMPT_CLASSES


def unsubscribe_mailto(settings: Settings, token: str) -> str | None:
    """The ``mailto:`` of List-Unsubscribe, or None without inbound unsubscribes: the
    token in the address and in the subject (either one unsubscribes)."""
    domain = settings.inbound_unsubscribe_domain
    if not domain:
        return None
    return f"mailto:unsubscribe+{token}@{domain}?subject=unsubscribe-{token}"
