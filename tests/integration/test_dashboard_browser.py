"""Covers: sidecar.http.handler, sidecar.observability.views.

The dashboard in a real headless Chromium (Debian chromium + chromium-driver, selenium): it
loads, lists the workers, and shows a worker killed from outside within seconds."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from sidecar.testing import SidecarProcess, wait_until

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# `make screenshot` (PY3SIDECAR_SCREENSHOT=1) refreshes the one in docs/; a plain test run
# writes it into its own tmp folder, so `make test` leaves the checkout clean.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="Debian chromium and chromium-driver: make system-deps")


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="py3sidecar-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# The page redraws every second: read it in one script run, never through element handles
# that a redraw makes stale.
def worker_rows(driver):
    rows = driver.execute_script("return [...document.querySelectorAll('#workers tbody tr')]"
                                 ".map(r => [r.dataset.pid, r.innerText])")
    return {int(pid): text for pid, text in rows}


def text_of(driver, element_id):
    return driver.execute_script("return document.getElementById(arguments[0]).textContent",
                                 element_id)


def test_the_dashboard_lists_the_workers_and_shows_a_kill(browser, tmp_path):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "alerts": {"throttle": {"group-wait": "0s", "group-interval": "1s"}},
                         "circuit-breaker": {"enabled": False}}) as proc:
        client = proc.client()
        for i in range(20):
            client.execute(f"sum(range({i * 1000}))")
        browser.get(proc.http_url + "/dashboard")
        wait_until(lambda: text_of(browser, "status") == "HEALTHY", 10, 0.1,
                   "the page says HEALTHY (members and spare ready)")
        pool = proc.pool()
        pids = {w["pid"] for w in pool["workers"]}
        assert len(pids) == 3
        wait_until(lambda: set(worker_rows(browser)) == pids, 10, 0.1, "the workers listed")
        assert text_of(browser, "healthy") == "2 / 2"
        assert browser.find_elements(By.CSS_SELECTOR, "#latency-chart polyline")

        victim = next(w["pid"] for w in pool["workers"] if w["role"] == "member")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in worker_rows(browser), 10, 0.1, "the dead worker gone")
        wait_until(lambda: "PROCESS_CRASH" in text_of(browser, "failures")
                   and str(victim) in text_of(browser, "failures"),
                   10, 0.1, "the kill listed among the failures")
        wait_until(lambda: "worker" in text_of(browser, "alerts").lower()
                   and "died" in text_of(browser, "alerts").lower(), 10, 0.1,
                   "the CRITICAL alert of the kill listed among the alerts")
        proc.wait_full_strength(2)
        wait_until(lambda: len(worker_rows(browser)) == 3
                   and text_of(browser, "status") == "HEALTHY",
                   10, 0.1, "back to full strength on the page")
        assert not browser.find_element(By.ID, "error").is_displayed()
        shot = DOCS_SCREENSHOT if os.environ.get("PY3SIDECAR_SCREENSHOT") else \
            tmp_path / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000  # a rendered page, not an empty image
