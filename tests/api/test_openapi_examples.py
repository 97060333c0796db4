"""The main routes' request bodies carry examples in the OpenAPI, and each is valid."""

from __future__ import annotations

import pytest

from mailer.audience.schemas import SegmentIn
from mailer.campaign.schemas import CampaignIn
from mailer.contact.schemas import ContactIn, ContactPatch
from mailer.message.schemas import MessageIn
from mailer.template.schemas import TemplateIn

MAIN = (ContactIn, ContactPatch, MessageIn, SegmentIn, TemplateIn, CampaignIn)


@pytest.mark.parametrize("model", MAIN, ids=lambda m: m.__name__)
async def test_each_main_body_has_a_valid_example_in_the_schema(client, model) -> None:  # type: ignore[no-untyped-def]
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"][model.__name__]
    assert schema["examples"], model
    for example in schema["examples"]:
        model.model_validate(example)
