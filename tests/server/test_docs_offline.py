"""Issue 18: /docs (Swagger UI) was blank on a closed network: it loaded its script and
styles from a CDN. They are vendored under static/ now: the page names only this server's
URLs, each of them answers, and the page's policy allows nothing from elsewhere."""

import re

from fastapi.testclient import TestClient


def test_docs_reference_only_local_files_that_are_served(app_client: TestClient) -> None:
    r = app_client.get("/docs")
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), urls
    assert any(u.endswith("swagger-ui.css") for u in urls), urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # no other host
        got = app_client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 0, url
    openapi = re.search(r'data-openapi-url="([^"]+)"', r.text)
    assert openapi and app_client.get(openapi.group(1)).status_code == 200
    policy = r.headers["content-security-policy"]
    assert "http" not in policy.split("img-src")[0], policy  # scripts, styles: 'self' only
    assert "cdn" not in r.text.lower()
