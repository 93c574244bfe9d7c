"""End to end, in headless Chromium: a customer charges a car from the web app,
and an operator's dashboard follows a station live.

SQLite only: these tests check what the pages show and that they stay live;
the API and services underneath run on both databases in the integration
tests, and a second browser run would double the slowest tests for no new
behaviour.

The screenshots land in docs/screenshots/, so the docs show the pages as they
are today.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from csms.app import Csms
from csms.simulator.station import V201, run_station

from conftest import OPERATOR_TOKEN
from e2e.browser import chromium_context, find_or_install_chromium
from support.charging import FAST, start_charge, wait_for_session
from support.customers import register_customer
from support.databases import SqliteTemplate

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Near Alexanderplatz, Berlin: two stations a short walk apart.
HERE = {"latitude": 52.5200, "longitude": 13.4100}
STATIONS = (
    ("CP-ALEX", "Alexanderplatz", 52.5219, 13.4132),
    ("CP-MITTE", "Rotes Rathaus", 52.5186, 13.4081),
)
PASSWORD = "station-password-0001"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 10_000


@pytest.fixture
def database_backend(sqlite_template: SqliteTemplate) -> SqliteTemplate:
    """SQLite only (see the module docstring)."""
    return sqlite_template


@pytest.fixture(scope="session")
def chromium() -> Path:
    executable, why = find_or_install_chromium()
    if executable is None:
        pytest.skip(f"No headless Chromium for the browser tests: {why}")
    return executable


@pytest.fixture
async def base_url(csms: Csms) -> str:
    for station_id, name, latitude, longitude in STATIONS:
        await csms.stations.register(
            station_id,
            password=PASSWORD,
            name=name,
            latitude=latitude,
            longitude=longitude,
        )
    return f"http://127.0.0.1:{csms.http_port}"


@pytest.fixture
async def phone(chromium: Path) -> AsyncIterator[BrowserContext]:
    async with chromium_context(
        chromium,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation=HERE,
        permissions=["geolocation"],
    ) as context:
        yield context


@pytest.fixture
async def desktop(chromium: Path) -> AsyncIterator[BrowserContext]:
    async with chromium_context(chromium, viewport=DESKTOP) as context:
        yield context


async def _open(context: BrowserContext, url: str, errors: list[str]) -> Page:
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return page


async def _wait_for_energy_above(page: Page, kwh: float, timeout: float = 15) -> None:
    # Polled from here: the page's Content-Security-Policy forbids the string
    # evaluation that page.wait_for_function would need.
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = await page.text_content("#charge-energy") or ""
        try:
            if float(text.split()[0]) > kwh:
                return
        except (ValueError, IndexError):
            pass
        assert asyncio.get_running_loop().time() < deadline, f"energy still {text!r}"
        await asyncio.sleep(0.1)


async def test_a_customer_charges_a_car_from_the_web_app(
    base_url: str, ocpp_url: str, phone: BrowserContext
) -> None:
    errors: list[str] = []
    async with (
        run_station(ocpp_url, "CP-ALEX", PASSWORD, options=FAST),
        run_station(ocpp_url, "CP-MITTE", PASSWORD, version=V201, options=FAST),
    ):
        page = await _open(phone, f"{base_url}/", errors)

        # Registering logs in and asks for a car.
        await page.fill("#register-form [name=name]", "Dana Driver")
        await page.fill("#register-form [name=email]", "dana@example.com")
        await page.fill("#register-form [name=password]", "correct horse battery")
        await page.click("#register-form button[type=submit]")
        await expect(page.locator("#message")).to_contain_text("Welcome")
        await page.fill("#car-form [name=make]", "Volkswagen")
        await page.fill("#car-form [name=model]", "ID.3")
        await page.fill("#car-form [name=plate]", "B-DA 2024")
        await page.click("#car-form button[type=submit]")
        await expect(page.locator("#car-list")).to_contain_text("Volkswagen ID.3")

        # The browser's location finds the stations, nearest first, on the map.
        await page.click("#nav [data-view=find]")
        await page.click("#locate")
        items = page.locator("#station-list li[data-station]")
        await expect(items).to_have_count(2)
        assert await items.nth(0).get_attribute("data-station") == "CP-MITTE"
        await expect(items.nth(1)).to_contain_text("Alexanderplatz")
        await expect(items.nth(1)).to_contain_text("Available")
        await expect(page.locator("#find-map [data-station]")).to_have_count(2)
        await items.nth(1).click()
        await expect(page.locator("#start-button")).to_be_enabled()
        await page.screenshot(path=SCREENSHOTS / "customer.png", full_page=True)

        # Start, and watch the energy rise without reloading.
        await page.click("#start-button")
        await expect(page.locator("#charge-state")).to_have_text("Charging")
        await _wait_for_energy_above(page, 0.3)
        await page.screenshot(path=SCREENSHOTS / "customer-charging.png")

        # Stop; the charge is finished and in the history.
        await page.click("#stop-button")
        await expect(page.locator("#charge-state")).to_have_text("Finished")
        await page.click("#nav [data-view=records]")
        record = page.locator("#record-list li[data-record]")
        await expect(record).to_have_count(1)
        await expect(record).to_contain_text("CP-ALEX")
        await expect(record).to_contain_text("Finished")

    assert errors == []


async def test_a_wrong_password_is_explained_in_words(
    base_url: str, phone: BrowserContext
) -> None:
    errors: list[str] = []
    page = await _open(phone, f"{base_url}/", errors)

    await page.fill("#login-form [name=username]", "nobody@example.com")
    await page.fill("#login-form [name=password]", "wrong password")
    await page.click("#login-form button[type=submit]")

    await expect(page.locator("#message")).to_have_text(
        "That email and password do not match an account. Please try again."
    )
    assert errors == []


async def test_the_operator_page_follows_a_station_live(
    base_url: str,
    ocpp_url: str,
    anonymous_http: httpx.AsyncClient,
    desktop: BrowserContext,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    errors: list[str] = []

    async with (
        run_station(ocpp_url, "CP-ALEX", PASSWORD, options=FAST),
        run_station(ocpp_url, "CP-MITTE", PASSWORD, version=V201, options=FAST),
    ):
        page = await _open(desktop, f"{base_url}/operator", errors)
        await page.fill("#login-form [name=token]", OPERATOR_TOKEN)
        await page.click("#login-form button[type=submit]")
        row = page.locator('#station-table tr[data-station="CP-ALEX"]')
        await expect(row).to_have_attribute("data-state", "Available")
        await expect(page.locator("#live")).to_have_class("live on")

        # The page polls nothing: what changes arrives over its event stream.
        record = await start_charge(customer, car_id=car_id, station_id="CP-ALEX")
        await expect(row).to_have_attribute("data-state", "Charging")
        await expect(row).to_contain_text("1: Charging")
        await page.screenshot(path=SCREENSHOTS / "operator.png", full_page=True)
        await page.click('#filters [data-filter="Charging"]')
        await expect(page.locator("#station-table tr[data-station]")).to_have_count(1)

        await wait_for_session(customer, record["id"], state="Started")
        stop = await customer.post(f"/api/v1/charging-sessions/{record['id']}/stop")
        assert stop.status_code == 202, stop.text
        await page.click('#filters [data-filter="all"]')
        await expect(row).to_have_attribute("data-state", "Available")

        # The station's own page: its events and no open charge left.
        await row.locator("a").click()
        await expect(page.locator("#event-table")).to_contain_text("boot")
        await expect(page.locator("#open-charge")).to_have_text("None.")

    assert errors == []
