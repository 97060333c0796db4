"""Where the files shipped with the code are: the email templates and the migrations.

They live at the repository root (``templates/``, ``migrations/``). A built wheel carries
them inside the package as ``mailer/_templates`` and ``mailer/_migrations`` (``setup.py``
maps the directories at build time); a source checkout or an editable install, which has
no such directories, finds them at the repository root.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _shipped(packaged: str, in_checkout: str) -> Path:
    inside = Path(str(files("mailer").joinpath(packaged)))
    return inside if inside.is_dir() else SOURCE_ROOT / in_checkout


def templates_dir() -> Path:
    """Jinja layouts and partials (``MAILER_TEMPLATES_DIR`` overrides it)."""
    return _shipped("_templates", "templates")


def migrations_dir() -> Path:
    """The Alembic script directory (``env.py``, ``versions/``)."""
    return _shipped("_migrations", "migrations")
