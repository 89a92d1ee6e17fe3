"""The UI plugin in a real browser: headless Chromium (Debian's, driven through its matching
chromedriver) against the webserver of the built image. On every page checked the footer shows
the Runtime version, the Airflow version and the image tag; the Runtime menu holds the resource
links; the page keeps its layout and logs no console error. Screenshots are kept as artifacts
(RUNTIME_TEST_ARTIFACTS, default ~/.cache/runtime/artifacts/ui/<line>)."""

import os
import time
from pathlib import Path

import pytest

from rules import pip_lock
from tests import services
from tests.containers import AIRFLOW, DAGS, LINE, QUIET_AIRFLOW, RUNTIME, container, http_json, \
    logs, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
ARTIFACTS = Path(os.environ.get("RUNTIME_TEST_ARTIFACTS",
                                pip_lock.default_cache() / "artifacts")) / "ui" / LINE
DAG_ID = "runtime_acceptance"
ADMIN = ("admin", "runtime-ui-test")
PASSWORD_LOGIN = {"RUNTIME_AUTH_PASSWORD_LOGIN": "true"}  # (tokens: test_acceptance_security)
LINKS = {"Documentation", "Release notes", "Airflow documentation", "Support"}
# sqlite, a scheduler in the background to register the DAG, an admin user, the webserver
START = ("airflow db init >/dev/null 2>&1 && airflow users create --role Admin --username {0} "
         "--password {1} --firstname A --lastname B --email a@example.com >/dev/null 2>&1 && "
         "(airflow scheduler >/tmp/scheduler.log 2>&1 &) && exec airflow webserver "
         "--hostname 127.0.0.1 --port {2}")


def pages() -> dict[str, str]:
    grid = f"/dags/{DAG_ID}/grid" if RUNTIME.airflow.startswith("2.3") else \
        f"/tree?dag_id={DAG_ID}"
    return {"home": "/home", "grid": grid, "graph": f"/graph?dag_id={DAG_ID}",
            "task-instances": "/taskinstance/list/", "connections": "/connection/list/",
            "variables": "/variable/list/", "users": "/users/list/"}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def start_webserver(img, name, env=None):
    port = services.free_port()
    handle = container(img, "bash", "-c", START.format(*ADMIN, port), name=name, network="host",
                       env={**QUIET_AIRFLOW, **PASSWORD_LOGIN, **(env or {})},
                       volumes={str(DAGS): "/usr/local/airflow/dags:ro"})
    return port, handle


def footer_text(driver, screenshot: Path) -> str:
    """The footer's text, after a screenshot with the footer scrolled into view."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "#runtime-footer")
    assert len(found) == 1, f"{len(found)} footers on {driver.current_url}"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found[0])
    driver.save_screenshot(str(screenshot))
    assert found[0].is_displayed()
    return found[0].text


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def log_in(driver, base):
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/login/")
    driver.find_element(By.NAME, "username").send_keys(ADMIN[0])
    driver.find_element(By.NAME, "password").send_keys(ADMIN[1])
    driver.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    wait_until(lambda: "/login" not in driver.current_url, 60, "logging in")


def test_footer_and_menu_on_every_page(images, browser):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port, handle = start_webserver(images["base"], "runtime-acceptance-ui")
    with handle as name:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_json(f"{base}/health"), 240, "the webserver answering")
        expected = [f"Astronomer Runtime {RUNTIME.version}", f"Apache Airflow {AIRFLOW}",
                    f"image runtime:{RUNTIME.version}"]
        browser.get(f"{base}/login/")
        text = footer_text(browser, ARTIFACTS / "login.png")
        assert all(e in text for e in expected), text
        log_in(browser, base)
        # the scheduler registers the DAG before its pages exist
        wait_until(lambda: browser.get(f"{base}/home") or DAG_ID in browser.page_source, 180,
                   "the DAG on the home page", every=5)
        checked = {}
        for page, path in pages().items():
            browser.get(base + path)
            time.sleep(1)  # let the page's scripts run before reading the console
            text = footer_text(browser, ARTIFACTS / f"{page}.png")
            assert all(e in text for e in expected), (page, text)
            assert browser.find_elements(By.CSS_SELECTOR, "nav.navbar, .navbar"), page
            menu = {a.get_attribute("textContent").strip(): a.get_attribute("href")
                    for a in browser.find_elements(By.CSS_SELECTOR, "a[href^='https://']")}
            assert LINKS <= set(menu), (page, sorted(menu))
            assert menu["Support"].rstrip("/") == "https://support.astronomer.io"
            errors = console_errors(browser)
            assert not errors, (page, errors)
            checked[page] = text
        assert len(checked) == len(pages()), logs(name)[-2000:]


def test_footer_follows_the_deployments_tag(images, browser):
    tag, digest = "registry.example.com/acme/airflow:2026.11.28", "sha256:" + "0123456789ab" * 5
    port, handle = start_webserver(images["base"], "runtime-acceptance-ui-tag",
                                   env={"RUNTIME_IMAGE_TAG": tag, "RUNTIME_IMAGE_DIGEST": digest})
    with handle:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_json(f"{base}/health"), 240, "the webserver answering")
        browser.get(f"{base}/login/")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        text = footer_text(browser, ARTIFACTS / "login-deployment-tag.png")
    assert f"image {tag} (0123456789ab)" in text, text
    assert f"Astronomer Runtime {RUNTIME.version}" in text
