"""Covers: sidecar.operator.console, sidecar.operator.operations, sidecar.operator.packages,
    sidecar.http.handler.

The operator's console in a real headless Chromium (selenium): log in with the token, restart a
worker and see its pid change, run code in the console, install a wheel the test builds into a
named pool's virtualenv from a local wheelhouse, see it listed, and import it in that pool only.
Actions without the token, or a session's POST without its CSRF token, are refused.

``PY3SIDECAR_SCREENSHOT=1`` writes the page's screenshots into docs/ (console.png,
console-packages.png); a plain run writes them into the test's tmp folder.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from sidecar.testing import SidecarProcess, wait_until
from tests.integration.test_dashboard_browser import CHROMEDRIVER, CHROMIUM, browser  # noqa: F401

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="Debian chromium and chromium-driver: make system-deps"),
              pytest.mark.timeout(420)]

DOCS = Path(__file__).resolve().parents[2] / "docs"
WAIT = 30  # seconds any one thing on the page may take (the machine is shared and loaded)


def make_virtualenv(folder: Path) -> Path:
    """A pool's own virtualenv: msgpack (all a worker needs besides this project) and pip."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True, timeout=180)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "msgpack"], check=True, timeout=300)
    return folder


def write_wheel(folder: Path, name: str, version: str, source: str) -> Path:
    """A pure-Python wheel (PEP 427) of one module, written as the zip it is."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": source,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: the console test\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def plant_venv(tmp_path_factory):
    return make_virtualenv(tmp_path_factory.mktemp("venvs") / "plant")


def post(url, body=None, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def card_pids(driver, pool):
    rows = driver.execute_script(
        "return [...document.querySelectorAll(`.card[data-pool='${arguments[0]}'] tbody tr`)]"
        ".map(r => [r.dataset.worker, r.dataset.pid])", pool)
    return {int(worker): int(pid) for worker, pid in rows}


def text_of(driver, element_id):
    return driver.execute_script("return document.getElementById(arguments[0]).textContent",
                                 element_id)


def shoot(driver, tmp_path, name):
    shot = DOCS / name if os.environ.get("PY3SIDECAR_SCREENSHOT") else tmp_path / name
    height = driver.execute_script("window.scrollTo(0, 0); "
                                   "return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 40, 1000), 4000))
    driver.save_screenshot(str(shot))
    driver.set_window_size(1280, 1000)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty image


def test_actions_are_refused_without_the_token_or_the_csrf_token(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0}}) as proc:
        url = proc.http_url
        for path in ("/api/pools/primary/recycle", "/api/console", "/api/quarantine/clear",
                     "/api/pools/primary/workers/1/restart", "/api/pools/primary/size",
                     "/api/pools/primary/breaker", "/api/pools/primary/packages"):
            assert post(url + path, {"code": "1"})[0] == 401, path
            assert post(url + path, headers={"Authorization": "Bearer wrong"})[0] == 401, path
        status, _, _ = post(url + "/api/session", {"token": "not-the-token"})
        assert status == 401
        status, headers, value = post(url + "/api/session", {"token": proc.token})
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would not return
        session = {"Cookie": cookie.split(";")[0]}
        assert post(url + "/api/console", {"code": "1"}, session)[0] == 403  # no CSRF token
        assert post(url + "/api/console", {"code": "1"},
                    {**session, "X-CSRF-Token": "forged"})[0] == 403
        status, _, answer = post(url + "/api/console", {"code": "6 * 7"},
                                 {**session, "X-CSRF-Token": value["csrf"]})
        assert status == 200 and answer["ok"] and answer["value"] == 42
        status, _, answer = post(url + "/api/console", {"code": "6 * 7"},
                                 {"Authorization": f"Bearer {proc.token}"})
        assert status == 200 and answer["value"] == 42  # tools: the Bearer token, no CSRF
        status, _, refused = post(url + "/api/pools/primary/size", {"target": 99},
                                  {"Authorization": f"Bearer {proc.token}"})
        assert status == 400 and "python3.pool.max-size" in refused
        assert "operator action console" in proc.log()  # each action audited
        audit = proc.runtime_dir / "audit.log"
        wait_until(lambda: '"command":"size"' in audit.read_text(), 5, message="audit lines")
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        actions = [(a.get("command"), a["outcome"]) for a in lines if a.get("op") == "operator"]
        assert ("size", "failed") in actions and ("console", "ok") in actions, actions
        assert ("console", "unauthorized") in actions, actions  # refusals audited too
        assert proc.token not in audit.read_text()


def test_the_cli_restarts_recycles_and_resizes(tmp_path):
    """``py3sidecar pool``: the URL and the token found as the other commands find them."""
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0, "max-size": 2},
                         "scaling": {"enabled": False}}) as proc:
        def cli(*args):
            return subprocess.run([sys.executable, "-m", "sidecar", "pool", *args],
                                  capture_output=True, text=True, env=proc.env, timeout=60)
        worker = proc.pool()["workers"][0]
        done = cli("restart", "--worker", str(worker["id"]))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["pid"] == worker["pid"]
        wait_until(lambda: [w["pid"] for w in proc.pool()["workers"]
                            if w["state"] == "idle"] not in ([], [worker["pid"]]), WAIT, 0.05,
                   "a new worker in the old one's place")
        assert cli("size", "2").returncode == 0
        proc.wait_full_strength(2, timeout=WAIT)
        refused = cli("size", "3")
        assert refused.returncode == 1 and "python3.pool.max-size" in refused.stderr
        assert json.loads(cli("recycle").stdout)["renewing"] == 2
        missing = cli("restart", "--worker", "999")
        assert missing.returncode == 1 and "no running worker 999" in missing.stderr


def log_in_and_restart_a_worker(browser, proc, wait):  # noqa: F811 (the fixture's name)
    wait.until(lambda d: card_pids(d, "primary") and card_pids(d, "plant"))
    browser.find_element(By.ID, "login-token").send_keys(proc.token)  # the token, once
    browser.find_element(By.ID, "login").click()
    wait.until(lambda d: "operator" in d.find_element(By.TAG_NAME, "body").get_attribute("class"))
    # restart a worker: its pid leaves the table, a new one takes its place
    before = card_pids(browser, "primary")
    worker, pid = sorted(before.items())[0]
    browser.find_element(By.CSS_SELECTOR, f".card[data-pool='primary'] "
                         f"button.restart[data-worker='{worker}']").click()
    wait.until(lambda d: pid not in card_pids(d, "primary").values()
               and len(card_pids(d, "primary")) == 2)
    assert "done" in text_of(browser, "action-result")
    after = {w["pid"] for w in proc.pool()["workers"]}
    assert pid not in after and len(after) == 2


def run_in_the_console(browser, wait):  # noqa: F811
    Select(browser.find_element(By.ID, "console-pool")).select_by_value("primary")
    code = browser.find_element(By.ID, "console-code")
    code.clear()
    code.send_keys("print('hello from the console')\n6 * 7")
    browser.find_element(By.ID, "console-run").click()
    wait.until(lambda d: "hello from the console" in text_of(d, "console-output")
               and "=> 42" in text_of(d, "console-output"))
    code.clear()
    code.send_keys("1 / 0")
    browser.find_element(By.ID, "console-run").click()
    wait.until(lambda d: "ZeroDivisionError" in text_of(d, "console-error"))


def install_from_the_page(browser, wheelhouse):  # noqa: F811
    Select(browser.find_element(By.ID, "packages-pool")).select_by_value("plant")
    browser.find_element(By.ID, "packages-wheelhouse").send_keys(str(wheelhouse))
    browser.find_element(By.ID, "packages-requirement").send_keys("plantextra")
    browser.find_element(By.ID, "packages-install").click()
    wait = WebDriverWait(browser, 180, 0.2)  # pip on a loaded machine
    wait.until(lambda d: "succeeded" in text_of(d, "packages-output"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR,
                                         "#packages-list tr[data-name='plantextra']"))
    assert "1.2.3" in text_of(browser, "packages-list")
    # pip's output is in the sidecar's log, and so in the logs panel
    wait.until(lambda d: "plantextra" in text_of(d, "logs")
               and "operator action restart_worker" in text_of(d, "logs"))


def check_the_cli(proc, client, wheelhouse):
    """list; a failed install (a missing wheel) leaves the venv working; the sidecar's own
    environment is refused with advice."""
    def cli(action, *args, timeout=120):
        return subprocess.run([sys.executable, "-m", "sidecar", "packages", action, "--url",
                               proc.http_url, f"--token={proc.token}", *args],
                              capture_output=True, text=True, env=proc.env, timeout=timeout)
    listed = cli("list", "--pool", "plant")
    assert listed.returncode == 0 and "plantextra 1.2.3" in listed.stdout
    failed = cli("install", "--pool", "plant", "--no-index", "--find-links", str(wheelhouse),
                 "nosuchpackage", timeout=300)
    assert failed.returncode == 1 and "failed" in failed.stdout
    assert client.execute("import plantextra; plantextra.VALUE",
                          pool="plant").value == "from the wheelhouse"
    own = cli("list", "--pool", "primary")
    assert own.returncode == 1 and "python3.worker.virtualenv" in own.stderr


def test_the_console_acts_runs_code_and_installs_a_wheel_into_a_named_pool(
        browser, plant_venv, tmp_path):  # noqa: F811 (the fixture)
    wheelhouse = tmp_path / "wheelhouse"
    write_wheel(wheelhouse, "plantextra", "1.2.3", "VALUE = 'from the wheelhouse'\n")
    overrides = {"pool": {"initial-size": 2, "spares": 0}, "scaling": {"enabled": False},
                 "pools": {"plant": {"worker": {"virtualenv": str(plant_venv)},
                                     "pool": {"initial-size": 1, "min-size": 1},
                                     "scaling": {"enabled": False}}}}
    with SidecarProcess(overrides) as proc:
        client = proc.client(timeout=30)
        wait_until(lambda: proc.probe().health()["pools"]["plant"]["size"]["ready"] >= 1, WAIT,
                   0.1, "the plant pool ready")
        browser.get(proc.http_url + "/dashboard")
        wait = WebDriverWait(browser, WAIT, 0.1)
        log_in_and_restart_a_worker(browser, proc, wait)
        run_in_the_console(browser, wait)
        shoot(browser, tmp_path, "console.png")
        install_from_the_page(browser, wheelhouse)
        # the next call on that pool imports it; the primary has no such package
        assert client.execute("import plantextra; plantextra.VALUE",
                              pool="plant").value == "from the wheelhouse"
        with pytest.raises(Exception, match="No module named 'plantextra'"):
            client.execute("import plantextra")
        shoot(browser, tmp_path, "console-packages.png")
        check_the_cli(proc, client, wheelhouse)
