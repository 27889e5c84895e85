"""Headless Debian Chromium driven over the DevTools protocol (no browser download, no driver).

Only what the UI test needs: open a URL, wait until the page's text holds some strings, read the
text, click an element by its text, and save a PNG screenshot.
"""

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from tests.integration.servers import free_port, stop, wait_for_port


def chromium_binary() -> str | None:
    """Debian's chromium, installed by `make setup`."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 900) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium not found: `make setup` installs Debian's chromium")
        port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                f"--remote-debugging-port={port}",
                "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--no-sandbox",  # we run as root in CI containers
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, self.proc, timeout=60)
        ws_url = None
        deadline = time.time() + 30
        while ws_url is None and time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            ws_url = pages[0]["webSocketDebuggerUrl"] if pages else None
            time.sleep(0.2)
        if ws_url is None:
            raise RuntimeError("chromium opened no page target")
        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=30)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a DevTools command and return its result (events in between are skipped)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value."""
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return out.get("result", {}).get("value")

    def open(self, url: str) -> None:
        """Navigate to a URL."""
        self.send("Page.navigate", {"url": url})

    def text(self) -> str:
        """The visible text of the page."""
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 120) -> str:
        """Wait until the page text holds every needle; returns the text (raises with it if not)."""
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"page never showed {missing}; it showed:\n{text[:3000]}")

    def click_text(self, text: str, selector: str = "body *") -> bool:
        """Click the first element (matching ``selector``) whose text is exactly ``text``."""
        js = (
            "(() => { const want = " + json.dumps(text) + ";"
            " const els = [...document.querySelectorAll(" + json.dumps(selector) + ")]"
            ".filter(e => e.textContent.trim() === want);"
            " if (!els.length) return false; els[els.length - 1].click(); return true; })()"
        )
        return bool(self.eval(js))

    def screenshot(self, path: Path) -> None:
        """Save the viewport as a PNG."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Close the page and stop Chromium."""
        try:
            self.ws.close()
        finally:
            stop(self.proc)
