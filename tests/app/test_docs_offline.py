"""/docs and /redoc work without internet: every asset they load is served by the app itself.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), so on
an air-gapped host both pages stayed blank.
"""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    r = client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    urls = [a or b for a, b in ASSET.findall(r.text)]
    assert urls, "the page references no assets at all"
    remote = [u for u in urls if re.match(r"^(https?:)?//", u)]
    assert remote == [], f"{page} loads {remote} from outside the app"
    assert not re.search(r"cdn\.|fonts\.googleapis|unpkg\.com", r.text)
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, url
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts and all(len(client.get(u).content) > 100_000 for u in scripts)  # the real bundles, not stubs
