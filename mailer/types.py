"""Small shared types for the HTTP layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**63 - 1

# a path id that PostgreSQL's bigint can hold: anything else is a 422, never a 500
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
