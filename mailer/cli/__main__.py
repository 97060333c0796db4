"""``python -m mailer.cli``: the ``mailer`` command."""

from mailer.cli import main

main()
