"""Alembic from code: ``mailer migrate`` and the test suite use the same configuration.

Nothing is read from ``alembic.ini`` (an installed wheel has none); the file at the
repository root serves the plain ``alembic`` command (``alembic revision`` and friends).
"""

from __future__ import annotations

import logging

from alembic.config import Config

from mailer.config import get_settings
from mailer.resources import migrations_dir


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    # the option values go through configparser interpolation: a '%' in a password must not
    url = database_url or get_settings().database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    if not logging.getLogger().handlers:
        # what alembic.ini's logging section gave the command line: one line per migration
        logging.basicConfig(
            level=logging.WARNING, format="%(levelname)-5.5s [%(name)s] %(message)s"
        )
        logging.getLogger("alembic").setLevel(logging.INFO)
    command.upgrade(alembic_config(database_url), revision)
