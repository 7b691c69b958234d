"""The console in a real browser: Debian's chromium driven by selenium through chromedriver,
against the real service (uvicorn on a free port, the SQLite database of `make_shop`).

An operator signs in, finds an order and sees its state highlighted and its timeline, tries
to arbitrate a dispute for more than the buyer paid and reads the CLI's refusal, then
arbitrates it and sees the new state. Screenshots go to ``$LIFECYCLE_ARTIFACTS`` (default
``artifacts/console`` under the repository). Without chromium the test fails, loudly; only
``LIFECYCLE_NO_BROWSER=1`` skips it. No browser or driver is ever downloaded: selenium is given
/usr/bin/chromium and /usr/bin/chromedriver, and Selenium Manager is told to stay offline.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

import lifecycle
from lifecycle.service import create_app
from tests.console.conftest import OPERATOR_ID, Shop, cli_refusal, make_shop, park
from tests.service.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LIFECYCLE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LIFECYCLE_CHROMEDRIVER", "/usr/bin/chromedriver")


def artifacts() -> Path:
    directory = Path(os.environ.get("LIFECYCLE_ARTIFACTS") or ROOT / "artifacts") / "console"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def browser_or_fail() -> None:
    if os.environ.get("LIFECYCLE_NO_BROWSER") == "1":
        pytest.skip("LIFECYCLE_NO_BROWSER=1: the console's browser test is switched off")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"the console's browser test needs {' and '.join(missing)}: "
                    "apt-get install -y chromium chromium-driver (or LIFECYCLE_NO_BROWSER=1 to skip)")


@contextmanager
def serving(engine: lifecycle.Engine) -> Iterator[str]:
    """The service on ``engine``, on a free port in a thread of this process: its address."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Shop, str]]:
    """The shop's database served."""
    shop = make_shop(tmp_path)
    try:
        with serving(shop.engine) as address:
            yield shop, address
    finally:
        shop.engine.close()


@pytest.fixture
def browser() -> Iterator[object]:
    browser_or_fail()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never fetches anything
    os.environ["SE_AVOID_STATS"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_operator_finds_an_order_and_arbitrates_a_dispute_in_the_browser(
        served: tuple[Shop, str], browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select

    shop, url = served
    assert isinstance(browser, WebDriver)
    driver = browser
    shots = artifacts()

    # Sign in with the operator's key.
    driver.get(f"{url}/console/")
    assert driver.current_url.endswith("/console/login")
    driver.find_element(By.ID, "token").send_keys(shop.token)
    driver.find_element(By.ID, "sign-in").click()
    assert driver.find_element(By.ID, "who").text == f"operator:{OPERATOR_ID}"
    driver.save_screenshot(str(shots / "01-home.png"))

    # Find the order whose funds were released, by id.
    Select(driver.find_element(By.ID, "kind")).select_by_value("order")
    driver.find_element(By.ID, "search-id").send_keys(shop.released.id)
    driver.find_element(By.ID, "search-go").click()
    hits = driver.find_elements(By.CSS_SELECTOR, "#results a.hit")
    assert [hit.text for hit in hits] == [shop.released.id]
    driver.save_screenshot(str(shots / "02-search.png"))
    hits[0].click()

    # Its state is highlighted on the diagram, and its timeline is there.
    assert driver.find_element(By.ID, "state").text == "funds_released"
    current = driver.find_elements(By.CSS_SELECTOR, "svg.machine g.state.current")
    assert [node.get_attribute("data-state") for node in current] == ["funds_released"]
    fill = driver.execute_script(
        "return getComputedStyle(arguments[0].querySelector('rect')).fill", current[0])
    assert fill == "rgb(242, 169, 0)"  # the highlight's colour, from the packaged CSS
    triggers = [entry.get_attribute("data-trigger")
                for entry in driver.find_elements(By.CSS_SELECTOR, "#timeline li.entry")]
    assert triggers == ["release_funds", "confirm_receipt", "tracking_delivered",
                        "tracking_in_transit", "ship_offline", "pay", "place"]
    assert "by buyer:b-2" in driver.find_element(By.ID, "timeline").text
    driver.save_screenshot(str(shots / "03-order.png"))

    # The dispute under arbitration: ask for more than the buyer paid. Refused as the CLI refuses.
    driver.get(f"{url}/console/search?kind=dispute&state=under_arbitration")
    driver.find_element(By.CSS_SELECTOR, "#results a.hit").click()
    assert driver.find_element(By.ID, "state").text == "under_arbitration"

    def arbitrate(amount: str) -> None:
        driver.find_element(By.CSS_SELECTOR, 'details[data-trigger="arbitrate"] > summary').click()
        Select(driver.find_element(By.ID, "arbitrate-decision")).select_by_value("refund")
        field = driver.find_element(By.ID, "arbitrate-refund_amount")
        field.clear()
        field.send_keys(amount)
        driver.find_element(By.ID, "prepare-arbitrate").click()
        assert '"refund_amount": "' + amount + '"' in driver.find_element(By.ID, "confirm-payload").text
        driver.save_screenshot(str(shots / f"04-confirm-{amount}.png"))
        driver.find_element(By.ID, "confirm").click()

    arbitrate("999.00")
    shown = driver.find_element(By.ID, "refusal").text
    expected = cli_refusal(shop.url, "fire", "dispute", shop.dispute.id, "arbitrate", "--payload",
                      '{"decision": "refund", "refund_amount": "999.00"}', "--as",
                      f"operator:{OPERATOR_ID}")
    assert shown == expected
    assert driver.find_element(By.ID, "state").text == "under_arbitration"
    driver.save_screenshot(str(shots / "05-refused.png"))

    # Arbitrate a refund the buyer paid for: the new state, on the page and in the database.
    arbitrate("15.00")
    assert driver.find_element(By.ID, "state").text == "resolved_refund"
    assert "is resolved_refund" in driver.find_element(By.ID, "done").text
    current = driver.find_elements(By.CSS_SELECTOR, "svg.machine g.state.current")
    assert [node.get_attribute("data-state") for node in current] == ["resolved_refund"]
    first = driver.find_element(By.CSS_SELECTOR, "#timeline li.entry")
    assert first.get_attribute("data-trigger") == "arbitrate"
    assert f"by operator:{OPERATOR_ID}" in first.text
    driver.save_screenshot(str(shots / "06-arbitrated.png"))
    assert shop.engine.get("dispute", shop.dispute.id).state == "resolved_refund"

    # The order the dispute paused went on with it.
    driver.find_element(By.CSS_SELECTOR, 'a.related-link[data-kind="order"]').click()
    assert driver.find_element(By.ID, "state").text == "delivered"
    driver.save_screenshot(str(shots / "07-order-after-dispute.png"))

    # A deadline parked after its retries: the queue shows it, Retry queues it again.
    parked = park(shop, shop.paid.id)
    driver.get(f"{url}/console/deadlines")
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-deadline="{parked}"]')
    assert "AdapterError: gateway down" in row.text
    driver.save_screenshot(str(shots / "08-parked.png"))
    row.find_element(By.CSS_SELECTOR, "button.retry").click()
    assert f"deadline {parked} is queued again" in driver.find_element(By.ID, "done").text
    assert [d.status for d in shop.engine.deadlines(kind="order", id=shop.paid.id)] == ["pending"]

    # A state on the diagram is a search for the aggregates in it (the page's little JS).
    driver.get(f"{url}/console/order/{shop.paid.id}")
    driver.find_element(By.CSS_SELECTOR, 'svg.machine g.state[data-state="funds_released"]').click()
    assert driver.current_url.endswith("/console/search?kind=order&state=funds_released")
    assert [hit.text for hit in driver.find_elements(By.CSS_SELECTOR, "#results a.hit")] == [
        shop.released.id]
    assert sorted(path.name for path in shots.glob("0*.png"))[:3] == [
        "01-home.png", "02-search.png", "03-order.png"]


def test_a_simulation_report_in_the_browser(tmp_path: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver

    from lifecycle import simulation

    assert isinstance(browser, WebDriver)
    url = f"sqlite:///{tmp_path}/sim.db"
    simulation.simulate(url, sellers=3, orders=20, days=10, seed=3, name="tiny")
    with lifecycle.open(url) as engine, serving(engine) as address:
        _, token = engine.create_key("operator", actor_id=OPERATOR_ID)
        browser.get(f"{address}/console/login")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "sign-in").click()
        browser.find_element(By.LINK_TEXT, "Simulations").click()
        browser.find_element(By.LINK_TEXT, "tiny").click()
        frame = browser.find_element(By.ID, "report")
        browser.switch_to.frame(frame)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Simulation tiny: seed 3, 20 orders"
        assert browser.find_elements(By.TAG_NAME, "svg")  # the report's charts
        browser.switch_to.default_content()
        browser.save_screenshot(str(artifacts() / "09-simulation.png"))
