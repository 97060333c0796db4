"""What each role may do in the console: one table, read by every route and every page.

``admin`` may do everything; ``marketer`` runs contacts, segments, templates, campaigns,
suppressions, topics and forms; ``operator`` reads everything and pauses and resumes (the
dashboard); ``viewer`` only reads.
"""

from __future__ import annotations

VIEW = "view"  # read any page
EDIT = "edit"  # change contacts, segments, templates, campaigns, suppressions, topics, forms
PAUSE = "pause"  # pause and resume campaigns (the dashboard's buttons too)
PEOPLE = "people"  # invite people, change roles, end their sessions, read the audit
PUBLIC = "public"  # no sign-in: login, invitation and reset links, the script

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({VIEW, EDIT, PAUSE, PEOPLE}),
    "marketer": frozenset({VIEW, EDIT, PAUSE}),
    "operator": frozenset({VIEW, PAUSE}),
    "viewer": frozenset({VIEW}),
}


def allows(role: str, permission: str) -> bool:
    return permission == PUBLIC or permission in PERMISSIONS.get(role, frozenset())
