"""Segment request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SegmentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "adults who are vip",
                    "filter": {
                        "all": [
                            {"field": "tags", "op": "contains", "value": "vip"},
                            {"field": "attributes.age", "op": "gte", "value": 18},
                        ]
                    },
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    filter: dict[str, Any]


class SegmentOut(BaseModel):
    id: int
    name: str
    filter: dict[str, Any]
    created_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentOut]
    next_cursor: str | None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any]


class CountOut(BaseModel):
    matching: int
    eligible: int


class PreviewOut(CountOut):
    sample: list[str]
