"""The packages, plus the repository's ``templates/`` and ``migrations/`` shipped inside the
wheel as ``mailer/_templates`` and ``mailer/_migrations`` (``mailer.resources`` finds them).

Everything else is in pyproject.toml; this file exists because a package-dir mapping cannot
be combined with automatic package discovery there.
"""

from setuptools import find_packages, setup

SHIPPED = {"mailer._templates": "templates", "mailer._migrations": "migrations"}

setup(
    packages=[*find_packages(include=["mailer", "mailer.*", "workers", "workers.*"]), *SHIPPED],
    package_dir=SHIPPED,
    package_data={
        "mailer": ["py.typed"],
        "mailer._templates": ["**/*"],
        "mailer._migrations": ["script.py.mako", "versions/*.py"],
    },
    include_package_data=False,
)
