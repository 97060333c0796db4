"""The lean client's body writer is ``json.dumps(send_email_params(email))``, byte for byte."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mailer.sending.lean_body import send_email_body
from mailer.sending.transport import OutboundEmail, send_email_params

FULL = OutboundEmail(
    to="Åsa Öberg <asa@example.com>",
    from_address="Nyheter från Butik <news@shop.example>",
    subject='Veckans "nyheter" – 20 % rabatt\t\\',
    html="<p>Hej Åsa,\nhär är veckans nyheter 🎉</p>\x00\x1f\u2028 \ud800",
    text="Hej Åsa, här är veckans nyheter\r\n",
    reply_to="Svar <reply@shop.example>",
    headers={
        "List-Unsubscribe": "<https://mail.example/u/abc>, <mailto:u@shop.example?subject=abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Ünicode": 'quote " and \\ backslash',
    },
    tags={"mail_class": "marketing", "campaign_id": "7", "message_id": "42"},
    configuration_set="marketing",
)

VARIANTS = {
    "full": FULL,
    "bare": OutboundEmail(
        to="a@b.example", from_address="c@d.example", subject="", html="", text=""
    ),
    "no headers": dataclasses.replace(FULL, headers={}),
    "no reply-to": dataclasses.replace(FULL, reply_to=None),
    "empty reply-to": dataclasses.replace(FULL, reply_to=""),
    "no tags": dataclasses.replace(FULL, tags={}),
    "one tag": dataclasses.replace(FULL, tags={"mail_class": "transactional"}),
    "no configuration set": dataclasses.replace(FULL, configuration_set=None),
    "plain sender": dataclasses.replace(FULL, from_address="news@shop.example"),
    "ascii display name": dataclasses.replace(FULL, from_address="Shop News <news@shop.example>"),
}


@pytest.mark.parametrize("email", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_body_is_what_json_dumps_writes(email: OutboundEmail) -> None:
    assert send_email_body(email) == json.dumps(send_email_params(email)).encode()


def test_a_str_subclass_is_written_as_its_text() -> None:
    class Markup(str):
        pass

    email = dataclasses.replace(FULL, html=Markup("<b>bold</b> & more"))
    assert send_email_body(email) == json.dumps(send_email_params(email)).encode()
