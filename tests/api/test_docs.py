"""/docs and /redoc work offline: every script and style comes from the API itself."""

from __future__ import annotations

import re


async def test_docs_pages_load_their_assets_from_the_api_only(client):
    for page in ("/docs", "/redoc"):
        r = await client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', r.text)
        urls += re.findall(r"url:\s*'([^']+)'", r.text)
        assert urls, r.text
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            asset = await client.get(url)
            assert asset.status_code == 200, url
    assert "cdn" not in (await client.get("/docs")).text.lower()
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
