"""The pages are served by the API process, self-contained and locked down."""

from __future__ import annotations

import re

import httpx
import pytest

from csms.web.routes import STATIC_DIRECTORY

# Only the SVG namespace name may look like an address: it is never fetched.
_ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


@pytest.mark.parametrize(
    ("path", "script"), [("/", "customer.js"), ("/operator", "operator.js")]
)
async def test_a_page_is_html_with_its_script_and_a_strict_policy(
    path: str, script: str, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.get(path)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert f'src="/static/{script}"' in answer.text
    assert 'name="viewport"' in answer.text
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("common.js", "text/javascript"),
        ("customer.js", "text/javascript"),
        ("operator.js", "text/javascript"),
        ("app.css", "text/css"),
    ],
)
async def test_static_files_are_served_with_their_type(
    name: str, media_type: str, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.get(f"/static/{name}")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_no_page_loads_anything_from_another_origin() -> None:
    found = {
        url
        for path in STATIC_DIRECTORY.iterdir()
        for url in re.findall(r"https?://[^\s\"'`)]+", path.read_text())
    }

    assert found <= _ALLOWED_URLS


async def test_the_pages_are_not_in_the_api_description(
    anonymous_http: httpx.AsyncClient,
) -> None:
    paths = (await anonymous_http.get("/openapi.json")).json()["paths"]

    assert "/" not in paths
    assert "/operator" not in paths
    assert "/api/v1/operator/events" in paths
