"""Deliverability: what Gmail, Yahoo, CAN-SPAM and SES require of a message, checked
before it is queued (issue 21).

- :mod:`.required` — bulk mail shows an unsubscribe link and the postal address, and its
  one-click URL is https on a public host (checked at campaign create and launch);
- :mod:`.tags` — SES message tags: names and values SES accepts;
- :mod:`.hygiene` — scripts, event handlers, ``javascript:`` URLs and forms removed from
  templates on save, with warnings for what mailbox providers distrust;
- :mod:`.headers` — ``List-Id`` of bulk mail;
- :mod:`.inbound` — unsubscribes received by mail (SES receipt rule → SNS → webhook).
"""
