"""The UI plugin in a real browser: headless Chromium (Debian's, driven through its matching
chromedriver) against the webserver of the built image. On every page checked the footer shows
the Runtime version, the Airflow version and the image tag; the Runtime menu holds the resource
links; the page keeps its layout and logs no console error. Screenshots are kept as artifacts
(RUNTIME_TEST_ARTIFACTS, default ~/.cache/runtime/artifacts/ui/<line>)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests import services
from rules.image import policy
from tests.acceptance.containers import (AIRFLOW, DAGS, FLAVOR_TAGS, IMAGE, LINE, QUIET_AIRFLOW,
                                         RUNTIME, container, http_json, logs, wait_until)
from rules.common.cache import default_cache

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
ARTIFACTS = Path(os.environ.get("RUNTIME_TEST_ARTIFACTS",
                                default_cache() / "artifacts")) / "ui" / LINE
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
                    f"image {policy.reference(IMAGE, next(iter(FLAVOR_TAGS.values())))}"]
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


# a deployment's links: a name that is markup (and has a %), and one unsafe href
INJECTED = '<img src=x onerror="window.runtimeInjected=1;document.title=\'injected\'"> 100% docs'
UNSAFE = {"name": "Unsafe", "href": "javascript:window.runtimeInjected=2"}
REFUSED = ('runtime: RUNTIME_UI_LINKS entry 3 {"name": "Unsafe", "href": '
           '"javascript:window.runtimeInjected=2"}: href must be http:, https: or relative')


def test_runtime_ui_links_cannot_inject_script(images, browser):
    from selenium.webdriver.common.by import By

    value = json.dumps([{"name": INJECTED, "href": "https://example.com/docs"},
                        {"name": "Home", "href": "/home"}, UNSAFE])
    # started through the entrypoint: the webserver is refused at once, with one clear line
    name = f"runtime-acceptance-ui-refused-{os.getpid()}"
    try:
        proc = subprocess.run(["docker", "run", "--rm", "--name", name, "--network", "none",
                               "-e", f"RUNTIME_UI_LINKS={value}", images["base"], "webserver"],
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        proc = None
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert proc is not None, "the webserver started with an unsafe RUNTIME_UI_LINKS"
    assert proc.returncode == 1 and REFUSED in proc.stderr.splitlines(), proc.stderr[-2000:]
    # started another way (bash -c ... airflow webserver): the unsafe entry is left out of the
    # menu and the name is text
    port, handle = start_webserver(images["base"], "runtime-acceptance-ui-links",
                                   env={"RUNTIME_UI_LINKS": value})
    with handle as web:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_json(f"{base}/health"), 240, "the webserver answering")
        log_in(browser, base)
        browser.get(f"{base}/home")
        time.sleep(1)
        menu = {a.get_attribute("textContent").strip(): a.get_attribute("href")
                for a in browser.find_elements(By.CSS_SELECTOR, "ul.dropdown-menu a")}
        source = browser.page_source
        injected = browser.execute_script("return window.runtimeInjected || null")
        title = browser.title
        assert "runtime_ui: " + REFUSED[len("runtime: "):] in logs(web), logs(web)[-3000:]
    assert menu.get(INJECTED) == "https://example.com/docs", sorted(menu)
    assert menu.get("Home") == f"{base}/home", sorted(menu)
    assert "Unsafe" not in menu and "javascript:window" not in source
    assert "<img src=x onerror" not in source and injected is None and title != "injected"
