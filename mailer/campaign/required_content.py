"""Required content of bulk mail, checked when a campaign is created, changed and launched.

Gmail's and Yahoo's bulk-sender rules and CAN-SPAM want every marketing message to show
a visible unsubscribe link and the sender's postal address; RFC 8058 wants the one-click
URL on https. A campaign that would break them is refused with a 422 naming what is
missing, before a single message is queued. Transactional mail is not held to these rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.deliverability.headers import is_bulk
from mailer.errors import Invalid

# stands in for MAILER_POSTAL_ADDRESS while it is unset: the template is still checked
PROBE_POSTAL_ADDRESS = "1 Probe Street, Probe City"


class RequiredContentMissing(Invalid):
    code = "required_content_missing"


@dataclass(frozen=True)
class Missing:
    what: str  # unsubscribe_link, postal_address, MAILER_POSTAL_ADDRESS, MAILER_PUBLIC_URL
    message: str
    path: tuple[str, ...]


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ses_is_local_emulator(settings: Settings) -> bool:
    """SES is the project's local emulator (or moto): its endpoint is on a loopback
    address. Real SES never is."""
    url = settings.ses_endpoint_url
    return bool(url) and _loopback_host(str(urlsplit(url or "").hostname or ""))


def settings_problems(settings: Settings) -> list[Missing]:
    """What the deployment lacks for bulk mail: a postal address, an https public URL."""
    found: list[Missing] = []
    if not settings.postal_address.strip():
        found.append(
            Missing(
                "MAILER_POSTAL_ADDRESS",
                "MAILER_POSTAL_ADDRESS is not set: bulk mail must show the sender's postal"
                " address (CAN-SPAM); set it to your company's address",
                ("settings", "postal_address"),
            )
        )
    if not ses_is_local_emulator(settings):
        url = urlsplit(settings.public_url)
        if url.scheme != "https" or _loopback_host(url.hostname or ""):
            found.append(
                Missing(
                    "MAILER_PUBLIC_URL",
                    f"MAILER_PUBLIC_URL is {settings.public_url!r}: the one-click unsubscribe"
                    " URL must be https (RFC 8058) on a host recipients can reach; set"
                    " MAILER_PUBLIC_URL=https://<your API's public host>",
                    ("settings", "public_url"),
                )
            )
    return found


def content_problems(html: str, unsubscribe_url: str, postal_address: str) -> list[Missing]:
    """What a rendered HTML part fails to show: a link to ``unsubscribe_url`` with text,
    and ``postal_address`` in its visible text."""
    import lxml.html

    found: list[Missing] = []
    try:
        root = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        root = None
    link = False
    text = ""
    if root is not None:
        for bad in root.xpath("//script|//style|//head|//template"):
            bad.drop_tree()
        link = any(
            (a.get("href") or "").strip() == unsubscribe_url and a.text_content().strip()
            for a in root.iter("a")
        )
        text = " ".join(root.text_content().split())
    if not link:
        found.append(
            Missing(
                "unsubscribe_link",
                "the HTML shows no unsubscribe link: extend layouts/default.html (its footer"
                " has one) or link to {{ unsubscribe_url }} with visible text",
                ("body", "template_id"),
            )
        )
    if " ".join(postal_address.split()) not in text:
        found.append(
            Missing(
                "postal_address",
                "the HTML shows no postal address: extend layouts/default.html (its footer"
                " has it) or write {{ postal_address }} in the template",
                ("body", "template_id"),
            )
        )
    return found


def _source_uses(templates_dir: Path, html: str) -> set[str]:
    """The names the template (and the layouts it extends or includes) reads: the check
    of a template that cannot render without a contact's data."""
    from jinja2 import nodes

    from mailer.template.compiler import template_environment

    env = template_environment(templates_dir)
    seen: set[str] = set()
    names: set[str] = set()
    todo = [html]
    while todo and len(seen) < 16:
        tree = env.parse(todo.pop())
        names.update(n.name for n in tree.find_all(nodes.Name))
        for node in tree.find_all((nodes.Extends, nodes.Include)):
            target = node.template  # type: ignore[attr-defined]
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                if target.value in seen:
                    continue
                seen.add(target.value)
                try:
                    source = env.loader.get_source(env, target.value)[0]  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001, S112 - check_syntax refused it at save
                    continue
                todo.append(source)
    return names


async def template_problems(
    settings: Settings, version: Any, campaign_name: str, unsubscribe_url: str
) -> list[Missing]:
    """Render the template version as a campaign message to a contact without
    attributes; a template that needs a contact's data is checked on its source."""
    from mailer.template.compiler import compiled_off_loop
    from mailer.template.render import RenderError, message_context

    postal = settings.postal_address.strip() or PROBE_POSTAL_ADDRESS
    context = message_context(
        "preview@example.com",
        None,
        None,
        unsubscribe_url,
        postal,
        {"id": 0, "name": campaign_name},
    )
    compiled = await compiled_off_loop(
        settings.templates_dir, version.id, version.subject, version.html, version.text
    )
    try:
        rendered = await asyncio.to_thread(compiled.render, context)
    except RenderError:
        names = await asyncio.to_thread(_source_uses, settings.templates_dir, version.html)
        found = content_problems("", unsubscribe_url, postal)
        return [
            m
            for m in found
            if (m.what == "unsubscribe_link" and "unsubscribe_url" not in names)
            or (m.what == "postal_address" and "postal_address" not in names)
        ]
    return content_problems(rendered.html, unsubscribe_url, postal)


def refuse(problems: list[Missing], action: str) -> None:
    """Raise the 422 naming every missing item (nothing when there is none)."""
    if not problems:
        return
    whats = ", ".join(m.what for m in problems)
    raise RequiredContentMissing(
        f"cannot {action} this marketing campaign: missing {whats}. "
        + "; ".join(m.message for m in problems),
        [{"path": list(m.path), "missing": m.what, "message": m.message} for m in problems],
    )


async def check_campaign(
    settings: Settings, mail_class: str, version: Any, campaign_name: str, action: str
) -> None:
    """A 422 (:class:`RequiredContentMissing`) when a bulk campaign lacks what it must
    show; transactional campaigns pass."""
    if not is_bulk(mail_class):
        return
    from mailer.template.service import preview_unsubscribe_url

    problems = settings_problems(settings)
    problems += await template_problems(
        settings, version, campaign_name, preview_unsubscribe_url(settings)
    )
    refuse(problems, action)
