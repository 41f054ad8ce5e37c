"""The report node's dashboard in a real headless Chromium (Debian's `chromium` +
`chromium-driver`, driven over the W3C WebDriver protocol by `webdriver.py`).

The shipped flows run for real (`loupe run`, ONNX Runtime inference, SQLite records, media),
on free ports in a scratch tree. The coil flow's dashboard has logins (a users file made with
`loupe users add`): the tests log in as a reviewer and as a viewer and see the difference
(the viewer has no review form and is refused). They load every page, watch a new record
arrive live, review one (the record changes, the review is stored under the logged-in user
with when), check an image by hand through the upload page, and save screenshots to
`$LOUPE_SCREENSHOTS` (default `target/screenshots/`). They also check that no page loads
anything from elsewhere. The surface flow's dashboard runs as shipped: open, on loopback.

Needs `LOUPE_TEST_CHROMEDRIVER` (path of chromedriver; `LOUPE_TEST_CHROMIUM` optionally names
the browser): `.ci/run` installs the Debian packages and sets it. Without it the tests are
skipped (`SKIPPED: ...`) on a newcomer's machine, and fail in CI (`CI=true`).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, missing
from webdriver import Browser

SCREENSHOTS = Path(os.environ.get("LOUPE_SCREENSHOTS", REPO / "target" / "screenshots"))
PORTS = ("8090", "8091", "8092", "8093")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = os.environ.get("LOUPE_TEST_CHROMEDRIVER")
    if not driver:
        # In CI a missing browser is a failure, never a silent pass.
        missing(
            "LOUPE_TEST_CHROMEDRIVER is not set: no chromedriver "
            "(apt-get install chromium chromium-driver; export LOUPE_TEST_CHROMEDRIVER=/usr/bin/chromedriver)"
        )
    chromium = os.environ.get("LOUPE_TEST_CHROMIUM") or shutil.which("chromium")
    b = Browser(driver, chromium, tmp_path_factory.mktemp("browser"))
    yield b
    b.close()


def _get_json(url: str, cookie: str | None = None):
    request = urllib.request.Request(url, headers={"cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def _login_cookie(base: str, name: str, password: str) -> str:
    """Logs in with the form (no browser): the session cookie, `loupe_session=...`."""
    host = base.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=30)
    body = urllib.parse.urlencode({"name": name, "password": password, "next": "/"})
    connection.request("POST", "/login", body, {"content-type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    assert response.status == 303, response.status
    cookie = response.getheader("set-cookie").split(";")[0]
    connection.close()
    return cookie


# The coil flow's users: NAME -> (role, password).
USERS = {"anna": ("reviewer", "anna's long password"), "victor": ("viewer", "victor's password")}


def _log_in(browser: Browser, base: str, name: str) -> None:
    """A fresh browser session logs in through the login page, as a person would."""
    browser.delete_cookies()
    browser.get(base + "/")
    browser.wait("the login page", lambda: "/login?next=" in browser.url)
    browser.find("#login-name").send_keys(name)
    browser.find("#login-password").send_keys(USERS[name][1])
    browser.find("#login").click()
    browser.wait("the list after login", lambda: "/login" not in browser.url and browser.find_all("#inspections"))
    assert browser.find("#user").text == name
    assert browser.find("#role").text == USERS[name][0]


class Flow:
    """A shipped flow running in a scratch tree with its ports moved to free ones."""

    def __init__(self, loupe: Path, root: Path, flow: str, state: str, users: dict | None = None):
        (root / "flows").mkdir(parents=True)
        text = (REPO / "flows" / flow).read_text()
        self.cookie = None
        if users:
            # Logins: the users file next to the flow, made by `loupe users add`.
            for name, (role, password) in users.items():
                subprocess.run(
                    [str(loupe), "users", "add", name, "--role", role, "--file", str(root / "flows" / "users")],
                    input=password + "\n", text=True, check=True, capture_output=True,
                )
            assert text.count("      dashboard:\n") == 1
            text = text.replace("      dashboard:\n", "      dashboard:\n        auth:\n          users_file: users\n")
        self.ports = {}
        for port in PORTS:
            if f"127.0.0.1:{port}" in text:
                self.ports[port] = _free_port()
                text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[port]}")
        (root / "flows" / flow).write_text(text)
        (root / "models").symlink_to(REPO / "models")
        self.root, self.loupe, self.flow, self.state = root, loupe, flow, root / state
        self.users = users
        self.process = None

    def dashboard(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"

    def synth(self, *args: str) -> None:
        subprocess.run([str(self.loupe), "synth", *args, "--out", str(self.state / "inbox")], check=True, capture_output=True)

    def start(self) -> None:
        self.log = open(self.root / "run.log", "wb")
        self.process = subprocess.Popen(
            [str(self.loupe), "run", f"flows/{self.flow}", "--progress", "off",
             "--provenance", str(self.state / "provenance.jsonl")],
            cwd=self.root,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_records(self, base: str, n: int, timeout: float = 120.0) -> list:
        deadline = time.monotonic() + timeout
        records = []
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.root / "run.log").read_text()
            try:
                if self.users and not self.cookie:
                    name = next(iter(self.users))
                    self.cookie = _login_cookie(base, name, self.users[name][1])
                records = _get_json(f"{base}/api/inspections?limit=1000", self.cookie)
                if len(records) >= n:
                    return records
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{len(records)} of {n} records after {timeout}s:\n" + (self.root / "run.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def recheck(loupe_bin_path, tmp_path_factory):
    flow = Flow(loupe_bin_path, tmp_path_factory.mktemp("recheck"), "loose-wire-recheck.yaml", ".loupe/recheck", USERS)
    flow.synth("coils", "--products", "3", "--seed", "5")
    flow.start()
    base = flow.dashboard("8090")
    flow.wait_records(base, 24)
    yield flow, base
    flow.stop()


def _only_local_resources(browser: Browser, base: str) -> None:
    names = browser.script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [n for n in names if not n.startswith(base)]
    assert not outside, f"the page loaded from elsewhere: {outside}"


def test_live_list_review_and_daily_report(browser, recheck):
    flow, base = recheck
    _log_in(browser, base, "anna")
    browser.wait("the 24 records", lambda: len(browser.find_all("#inspections tbody tr")) >= 24)
    browser.wait("the live stream", lambda: "live" in browser.find("#live-status").text)
    _only_local_resources(browser, base)
    browser.screenshot(SCREENSHOTS / "dashboard-list.png")

    # A new photo in the camera folder appears at the top without a reload.
    done = sorted((flow.state / "done").rglob("*.png"))[0]
    shutil.copy(done, flow.state / "inbox" / "late-arrival.png")
    browser.wait(
        "the new record in the live list",
        lambda: len(browser.find_all("#inspections tbody tr")) >= 25,
        timeout=60,
    )
    newest = browser.find("#inspections tbody tr a.detail").attribute("href").rsplit("/", 1)[1]
    assert _get_json(f"{base}/api/inspections/{newest}", flow.cookie)["filename"] == "late-arrival.png"
    assert len(browser.find_all("#inspections tbody tr")) == 25
    browser.screenshot(SCREENSHOTS / "dashboard-list-live.png")

    # Filters: only the camera-vs-model disagreements.
    browser.find("input[name=disagree]").click()
    browser.find("#filters button[type=submit]").click()
    browser.wait("the filtered list", lambda: "disagree=1" in browser.url)
    rows = browser.find_all("#inspections tbody tr")
    assert all("disagree" in r.attribute("className") for r in rows)

    # Review: open a record, correct its verdict, see it changed and stored.
    browser.get(base + "/")
    browser.wait("rows", lambda: browser.find_all("#inspections tbody tr a.detail"))
    browser.find("#inspections tbody tr a.detail").click()
    browser.wait("the detail page", lambda: "/inspections/" in browser.url)
    uuid = browser.url.rsplit("/", 1)[1]
    browser.wait("the original image", lambda: browser.script(
        "const i = document.getElementById('original'); return i && i.complete && i.naturalWidth > 0;"))
    before = _get_json(f"{base}/api/inspections/{uuid}", flow.cookie)
    assert before["review"] is None
    model = before["model_label"]
    other = next(l for l in ("ok", "burr", "loose_wire") if l != model)
    browser.screenshot(SCREENSHOTS / "dashboard-detail.png")
    assert browser.find("#reviewing-as").text == "anna", "reviews are stored under the login"
    assert not browser.find_all("#reviewer"), "no name to type in"
    browser.script("document.getElementById('label').value = arguments[0];", other)
    browser.find("#note").send_keys("checked on the bench")
    browser.find("#correct").click()
    browser.wait("the reviewed verdict", lambda: browser.find("#verdict").text == other)
    assert "by anna" in browser.find("#reviews").text
    after = _get_json(f"{base}/api/inspections/{uuid}", flow.cookie)
    assert after["review"]["label"] == other
    assert after["review"]["reviewer"] == "anna"
    assert after["review"]["action"] == "corrected"
    assert after["review"]["reviewed_ms"] > 0
    browser.screenshot(SCREENSHOTS / "dashboard-reviewed.png")
    # Confirming the model instead is one click.
    browser.find("#confirm").click()
    browser.wait("the confirmed verdict", lambda: browser.find("#verdict").text == model)
    assert _get_json(f"{base}/api/inspections/{uuid}", flow.cookie)["review"]["action"] == "confirmed"

    # The daily report: the table, the charts, the CSV.
    browser.get(base + "/daily")
    table = browser.wait("the daily table", lambda: browser.find("#daily").text)
    assert "L1" in table and "loose_wire" in table
    assert len(browser.find_all("svg.chart")) == 2
    _only_local_resources(browser, base)
    browser.screenshot(SCREENSHOTS / "dashboard-daily.png")
    csv_url = browser.find("#csv").attribute("href")
    with urllib.request.urlopen(urllib.request.Request(csv_url, headers={"cookie": flow.cookie}), timeout=10) as r:
        csv = r.read().decode()
    assert csv.startswith("day,line,defect_class,products_inspected,camera_flagged,confirmed")
    assert ",L1,loose_wire,4," in csv, csv  # 3 coils + the late photo (its own product)
    assert browser.find_all("#daily-coils tbody tr"), "the per-coil table"

    # The coil view: one decision per coil, each linking to its 8 angles.
    browser.get(base + "/coils")
    browser.wait("the 3 coils", lambda: len(browser.find_all("#coils tbody tr")) >= 3)
    figures = browser.find("#coil-figures").text
    assert "coils judged" in figures and "Loupe stopped" in figures, figures
    verdicts = [r.text for r in browser.find_all("#coils tbody tr")]
    assert all(any(v in row for v in ("ok", "defective", "review")) for row in verdicts), verdicts
    _only_local_resources(browser, base)
    browser.screenshot(SCREENSHOTS / "dashboard-coils.png")
    browser.find("#coils tbody tr a").click()
    browser.wait("the coil's angles", lambda: "product=" in browser.url)
    browser.wait("8 angles", lambda: len(browser.find_all("#inspections tbody tr")) == 8)


def test_a_viewer_sees_but_cannot_review_or_upload(browser, recheck):
    flow, base = recheck
    _log_in(browser, base, "victor")
    uuid = browser.find("#inspections tbody tr a.detail").attribute("href").rsplit("/", 1)[1]
    browser.get(f"{base}/inspections/{uuid}")
    browser.wait("the detail page", lambda: browser.find_all("#facts"))
    assert not browser.find_all("#review-form"), "no review form for a viewer"
    assert "victor is a viewer" in browser.find("#review-off").text
    browser.screenshot(SCREENSHOTS / "dashboard-detail-viewer.png")
    # Going round the page is refused too, even with the page's own CSRF token.
    status = browser.async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/api/inspections/' + arguments[0] + '/review', {method: 'POST',
          headers: {'content-type': 'application/json',
                    'x-csrf-token': document.querySelector('meta[name=csrf-token]').content},
          body: JSON.stringify({label: 'ok'})}).then(r => done(r.status));""",
        uuid,
    )
    assert status == 403
    browser.get(base + "/upload")
    assert "victor" in browser.find("#upload-refused").text and not browser.find_all("#upload-form")
    # Logging out: back to the login page, and the pages are closed again.
    browser.find("#logout").click()
    browser.wait("the login page", lambda: "/login" in browser.url)
    browser.get(base + "/daily")
    browser.wait("sent to log in", lambda: "/login?next=%2Fdaily" in browser.url)


def test_upload_page_checks_one_image_through_the_running_flow(browser, recheck):
    flow, base = recheck
    _log_in(browser, base, "anna")
    browser.get(base + "/upload")
    image = sorted((flow.state / "done").rglob("*.png"))[1]
    browser.find("#file").send_keys(str(image))
    browser.find("#line").send_keys("BENCH")
    browser.find("#send").click()
    verdict = browser.wait("the verdict of the uploaded image", lambda: browser.find_all("#upload-verdict") and browser.find("#upload-verdict").text, timeout=60)
    assert verdict in ("ok", "burr", "loose_wire")
    browser.screenshot(SCREENSHOTS / "dashboard-upload.png")
    browser.find("#result-link").click()
    browser.wait("the uploaded image's page", lambda: "/inspections/" in browser.url)
    uuid = browser.url.rsplit("/", 1)[1]
    record = _get_json(f"{base}/api/inspections/{uuid}", flow.cookie)
    assert record["line"] == "BENCH"
    assert record["attributes"]["capture.input"] == "upload"
    assert record["model_label"] == verdict


def test_surface_detail_shows_original_and_overlay(browser, loupe_bin_path, tmp_path_factory):
    flow = Flow(loupe_bin_path, tmp_path_factory.mktemp("surfaces"), "surface-defects.yaml", ".loupe/surface-defects")
    flow.synth("surfaces", "--images", "2", "--seed", "3")
    flow.start()
    try:
        base = flow.dashboard("8092")
        records = flow.wait_records(base, 2)
        defect = next(r for r in records if r["model_label"] == "defect")
        browser.get(f"{base}/inspections/{defect['uuid']}")
        for image in ("original", "overlay"):
            browser.wait(f"the {image} image", lambda: browser.script(
                f"const i = document.getElementById('{image}'); return i && i.complete && i.naturalWidth > 0;"))
        assert "defect" in browser.find("#verdict").text
        assert "FORK" in browser.find("#events").text, "provenance events listed"
        _only_local_resources(browser, base)
        browser.screenshot(SCREENSHOTS / "dashboard-surface-detail.png")
    finally:
        flow.stop()
