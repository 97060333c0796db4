"""Address normalisation: trimmed, lower-cased, syntactically valid."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from mailer.errors import Invalid


def normalise(raw: str) -> str:
    return raw.strip().lower()


def valid_address(raw: str, path: list[str | int] | str = "email") -> str:
    """The normalised address, or a 422 naming ``path``."""
    address = normalise(raw)
    # test_environment admits the reserved .test domain used by the demo and tests
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise Invalid.at(path, f"not a valid email address: {exc}") from exc
    return address
