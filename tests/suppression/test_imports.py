"""POST /v1/suppressions/imports: CSV suppression lists from other tools."""

from __future__ import annotations

import httpx
from sqlalchemy import text

CSV = "text/csv"


async def post(client, headers, body: str | bytes, content_type: str = CSV) -> httpx.Response:
    return await client.post(
        "/v1/suppressions/imports",
        content=body,
        headers={**headers, "Content-Type": content_type},
    )


async def rows(engine) -> dict[str, tuple[str, str, str]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT email, reason, scope, source FROM suppressions"))
        return {r.email: (r.reason, r.scope, r.source) for r in result}


async def test_good_rows_are_suppressed_and_bad_rows_reported_by_number(
    client, admin, engine
) -> None:
    body = (
        "email,reason,scope\n"
        "Ada@Example.test,hard bounce,all\n"  # row 2
        "not-an-address,,\n"  # row 3
        "bob@example.test,complaint,\n"  # row 4: empty scope of a complaint → marketing
        "\n"  # blank: not a row
        "cy@example.test,,everything\n"  # row 6: bad scope
        "dee@example.test,,\n"  # row 7: defaults
        "ada@example.test,again,marketing\n"  # row 8: a repeat
        "eve@example.test,asked,Marketing\n"  # row 9
    )
    r = await post(client, admin, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report == {
        "total_rows": 7,
        "created": 4,
        "updated": 0,
        "unchanged": 0,
        "rejected": 3,
        "errors": [
            {"row": 3, "email": "not-an-address", "reason": report["errors"][0]["reason"]},
            {
                "row": 6,
                "email": "cy@example.test",
                "reason": "scope must be all or marketing (or empty)",
            },
            {
                "row": 8,
                "email": "ada@example.test",
                "reason": "a repeat of row 2 (the first counts)",
            },
        ],
    }
    assert report["errors"][0]["reason"].startswith("not a valid email address")
    assert await rows(engine) == {
        "ada@example.test": ("hard bounce", "all", "import"),
        "bob@example.test": ("complaint", "marketing", "import"),
        "dee@example.test": ("imported", "all", "import"),
        "eve@example.test": ("asked", "marketing", "import"),
    }
    # the imported addresses are suppressed for the API as any other
    got = await client.get("/v1/suppressions/ada@example.test", headers=admin)
    assert got.status_code == 200 and got.json()["source"] == "import"
    listed = await client.get("/v1/suppressions", params={"source": "import"}, headers=admin)
    assert len(listed.json()["items"]) == 4


async def test_an_import_only_widens_a_scope_never_narrows_it(client, admin, engine) -> None:
    for email, scope in (("wide@example.test", "all"), ("narrow@example.test", "marketing")):
        r = await client.put(
            f"/v1/suppressions/{email}", headers=admin, json={"reason": "by hand", "scope": scope}
        )
        assert r.status_code == 201
    body = (
        "email,scope\n"
        "wide@example.test,marketing\n"  # would narrow: left as it is
        "narrow@example.test,all\n"  # widened
        "new@example.test,marketing\n"
    )
    report = (await post(client, admin, body)).json()
    assert (report["created"], report["updated"], report["unchanged"], report["rejected"]) == (
        1,
        1,
        1,
        0,
    )
    assert await rows(engine) == {
        "wide@example.test": ("by hand", "all", "manual"),
        "narrow@example.test": ("imported", "all", "import"),
        "new@example.test": ("imported", "marketing", "import"),
    }
    # the same file again changes nothing
    again = (await post(client, admin, body)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)


async def test_mailchimp_and_listmonk_exports_are_read(client, admin, engine) -> None:
    mailchimp = (
        '"Email Address","First Name","Last Name",MEMBER_RATING,CLEAN_TIME\n'
        '"cleaned@example.test","Ada","Lovelace",2,"2024-01-02 10:00:00"\n'
    )
    listmonk = (
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        'b6a5,blocked@example.test,Bob,"{""city"": ""Paris""}",blocklisted,2024-01-01,2024-01-01\n'
    )
    for body in (mailchimp, listmonk):
        r = await post(client, admin, body)
        assert r.status_code == 200, r.text
        assert r.json()["created"] == 1 and r.json()["rejected"] == 0
    assert await rows(engine) == {
        "cleaned@example.test": ("imported", "all", "import"),
        "blocked@example.test": ("imported", "all", "import"),
    }


async def test_unusable_files_are_422_and_change_nothing(client, admin, engine) -> None:
    for body, content_type in (
        ("name,reason\nada,bounce\n", CSV),  # no address column
        ("email,Email Address\na@example.test,a@example.test\n", CSV),  # two
        ("", CSV),  # empty
        ('{"email": "a@example.test"}', "application/json"),
    ):
        r = await post(client, admin, body, content_type)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "invalid"
    assert await rows(engine) == {}


async def test_keys_without_the_scope_are_refused(client, make_key, engine) -> None:
    body = "email\nada@example.test\n"
    assert (await post(client, {}, body)).status_code == 401
    assert (await post(client, {"Authorization": "Bearer nope"}, body)).status_code == 401
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    r = await post(client, tx, body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    campaigns = {"Authorization": f"Bearer {await make_key('campaigns')}"}
    assert (await post(client, campaigns, body)).status_code == 200
    assert set(await rows(engine)) == {"ada@example.test"}


async def test_the_import_limit_applies_not_the_json_body_limit(settings, engine, admin_key):
    from mailer.app import create_app

    app = create_app(
        settings.model_copy(update={"max_body_bytes": 1000, "max_import_bytes": 20_000})
    )
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": CSV}
    fits = "email\n" + "".join(f"user{i}@example.test\n" for i in range(500))  # ~11 kB
    over = fits + "".join(f"more{i}@example.test\n" for i in range(1000))

    async def streamed():  # no Content-Length: the limit holds on the bytes received
        for i in range(0, len(over), 1000):
            yield over[i : i + 1000].encode()

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for content in (over, streamed()):
                r = await c.post("/v1/suppressions/imports", content=content, headers=headers)
                assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
            assert await rows(engine) == {}
            r = await c.post("/v1/suppressions/imports", content=fits, headers=headers)
            assert r.status_code == 200 and r.json()["created"] == 500
