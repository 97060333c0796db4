"""The ``mailer`` command: one module per command group, all on the app of
:mod:`mailer.cli.common`."""

from __future__ import annotations

# isort: off
# imported for their commands, in the order `mailer --help` lists them
from mailer.cli import stack, serve, contacts, keys, status, ses, ses_suppressions, users

# isort: on
from mailer.cli.common import app

__all__ = ["app", "main"]

_COMMAND_GROUPS = (stack, serve, contacts, keys, status)

app.add_typer(ses.ses_app, name="ses")
ses_suppressions.add_commands(ses.ses_app)
app.add_typer(users.users_app, name="users")


def main() -> None:
    app()
