"""A minimal W3C WebDriver client (the protocol chromedriver speaks is plain HTTP + JSON),
so the browser tests need no Python package beyond the standard library: Debian's
`chromium` and `chromium-driver` are all they use.

Only what the dashboard tests need: open a page, find elements, click, type, run a script,
take screenshots. Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(RuntimeError):
    """chromedriver answered with an error."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _element_id(value: dict) -> str:
    """An element reference: the W3C key, or the one older chromedrivers use."""
    return value.get(ELEMENT) or value["ELEMENT"]


class Element:
    def __init__(self, browser: "Browser", element_id: str):
        self.browser = browser
        self.id = element_id

    def click(self) -> None:
        self.browser._call("POST", f"/element/{self.id}/click", {})

    def send_keys(self, text: str) -> None:
        self.browser._call("POST", f"/element/{self.id}/value", {"text": text})

    def clear(self) -> None:
        self.browser._call("POST", f"/element/{self.id}/clear", {})

    @property
    def text(self) -> str:
        return self.browser._call("GET", f"/element/{self.id}/text")

    def attribute(self, name: str):
        return self.browser._call("GET", f"/element/{self.id}/property/{name}")


class Browser:
    """A headless Chromium driven by chromedriver; close() ends both."""

    def __init__(self, chromedriver: str, chromium: str | None, workdir: Path):
        self.port = _free_port()
        self.driver = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self._raw("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    self.driver.kill()
                    raise
                time.sleep(0.2)
        options = {
            "args": [
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                f"--user-data-dir={workdir / 'chromium-profile'}",
            ]
        }
        if chromium:
            options["binary"] = chromium
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        session = self._raw("POST", "/session", caps)
        self.session = session["sessionId"]

    def _raw(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            answer = json.loads(e.read() or b"{}")
            value = answer.get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:500]}") from None
        return answer.get("value")

    def _call(self, method: str, path: str, body=None):
        return self._raw(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self._call("GET", "/url")

    def find(self, css: str) -> Element:
        value = self._call("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, _element_id(value))

    def find_all(self, css: str) -> list[Element]:
        values = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, _element_id(v)) for v in values]

    def delete_cookies(self) -> None:
        """Forgets every cookie (a logged-out browser)."""
        self._call("DELETE", "/cookie")

    def async_script(self, source: str, *args):
        """Runs `source` with a callback as its last argument; answers what it was called with."""
        return self._call("POST", "/execute/async", {"script": source, "args": list(args)})

    def script(self, source: str, *args):
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait(self, what: str, predicate, timeout: float = 30.0):
        """Polls `predicate()` until it returns something truthy; fails saying `what`."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except WebDriverError as e:
                last_error = e
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))

    def close(self) -> None:
        try:
            self._raw("DELETE", f"/session/{self.session}")
        except Exception:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
