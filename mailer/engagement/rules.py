"""When an open or a click counts as automated rather than a reader's (docs/engagement.md).

Each Open and Click event is judged on its own when it is read (:func:`automated`); the
verdict is stored with the raw event (``data.automated``), so a replay judges nothing
again. One rule needs a message's other clicks and is applied when the message's
engagement is recomputed (``repository.REFRESH``): the scanner burst.

1. ``apple_proxy``: Apple Mail Privacy Protection fetches every image of every message on
   delivery, through Apple's proxy, whose user agent is exactly ``Mozilla/5.0`` (no
   platform, no engine): an open with that user agent is the proxy's, not the reader's.
2. ``no_human_ua``: no user agent, or one that names a robot, an HTTP library or a mail
   security gateway (:data:`ROBOTS`), or one with no browser or mail-client token at all
   (:data:`HUMAN_TOKENS`). Gmail's and Yahoo's image proxies count as human: they fetch
   when the reader opens the message.
3. ``too_fast``: within :data:`FAST_SECONDS` of SES accepting the message (``mail.
   timestamp``, carried by every event): delivery itself takes about a second, so this is
   "seconds after delivery", before a person could have read anything; pre-fetchers and
   link scanners act then.
4. ``scanner`` (clicks only, in SQL): clicks of one message on two or more different
   links within :data:`SCANNER_WINDOW_SECONDS` of each other: a person clicks one link and
   is taken to a browser; a security scanner follows every link at once.

A message counts as ``human_opened`` when it has a human open or a human click (a reader
who clicked has opened it, with images off or not) and ``human_clicked`` when it has a
human click. ``unique_opened``/``unique_clicked`` count messages with any open/click.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

APPLE_PROXY_UA = "Mozilla/5.0"
FAST_SECONDS = 5.0
SCANNER_WINDOW_SECONDS = 2.0

ROBOTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scan|python|curl/|wget|go-http-client|java/|okhttp"
    r"|libwww|httpclient|http_request|axios|node-fetch|headless|phantomjs|barracuda|mimecast"
    r"|proofpoint|messagelabs|symantec|trendmicro|forcepoint|ironport|fortinet|sophos"
    r"|safelinks|linkchecker|preview",
    re.IGNORECASE,
)
HUMAN_TOKENS = re.compile(
    r"mozilla/\d|opera/|outlook|thunderbird|applewebkit|dalvik|cfnetwork|microsoft office"
    r"|googleimageproxy|yahoomailproxy",
    re.IGNORECASE,
)


def user_agent_verdict(user_agent: object) -> str | None:
    """Rule 1 or 2 for a user agent: ``apple_proxy``, ``no_human_ua`` or None (human)."""
    ua = user_agent.strip() if isinstance(user_agent, str) else ""
    if ua == APPLE_PROXY_UA:
        return "apple_proxy"
    if not ua or ROBOTS.search(ua) or not HUMAN_TOKENS.search(ua):
        return "no_human_ua"
    return None


def automated(data: dict[str, Any], at: datetime, sent_at: datetime) -> str | None:
    """The first rule (1–3) an open or click event breaks, or None when it looks human."""
    verdict = user_agent_verdict(data.get("userAgent"))
    if verdict is not None:
        return verdict
    if (at - sent_at).total_seconds() < FAST_SECONDS:
        return "too_fast"
    return None


def engaged(data: dict[str, Any], at: datetime, sent_at: datetime) -> dict[str, Any]:
    """An open or click event's data with its verdict (``automated``: the rule, or null)
    and the time SES accepted the message (``sentAt``), as the event is stored."""
    return data | {"automated": automated(data, at, sent_at), "sentAt": sent_at.isoformat()}
