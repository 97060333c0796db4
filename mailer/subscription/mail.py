"""The built-in double opt-in mail (a form may override it): templates rendered at send
with ``data.confirm_url``, ``data.form`` and ``data.topics``."""

from __future__ import annotations

SUBJECT = "Please confirm your subscription"
HTML = """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Please confirm that you want to receive {{ data.topics | join(', ') }}.</p>
<p><a href="{{ data.confirm_url }}">Yes, subscribe me</a></p>
<p>If you did not ask for this, ignore this mail: nothing will be sent to you.</p>
</body></html>"""
TEXT = """Please confirm that you want to receive {{ data.topics | join(', ') }}:
{{ data.confirm_url }}

If you did not ask for this, ignore this mail: nothing will be sent to you."""
