"""Debian's Chromium driven by Playwright: no browser download, the installed binary is launched.

Only what the UI test needs on top of Playwright's page: launch, dismiss Dagster's first-visit
dialogs, wait for text, and save a small PNG.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# First-visit dialogs that cover the page: (a text that identifies it, the button closing it).
FIRST_VISIT_DIALOGS = (
    ("Join the Dagster community", "Skip"),
    ("What's new in Dagster", "Dismiss"),
)


def chromium_binary() -> str | None:
    """Debian's chromium, installed by `make setup`."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A page of a headless installed Chromium, closed on exit."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium not found: `make setup` installs Debian's chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=binary,
            headless=True,
            # root in CI containers; small /dev/shm in containers
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            yield page
        finally:
            browser.close()


def dismiss_dialogs(page: Page, wait_ms: int = 3000) -> list[str]:
    """Close the first-visit dialogs shown now (waiting up to ``wait_ms`` for one to appear)."""
    closed: list[str] = []
    for marker, button in FIRST_VISIT_DIALOGS:
        dialog = page.get_by_text(marker)
        try:
            dialog.first.wait_for(state="visible", timeout=wait_ms)
        except PlaywrightTimeout:  # no such dialog on this page
            continue
        page.get_by_role("button", name=button).first.click()
        dialog.first.wait_for(state="hidden", timeout=10_000)
        closed.append(marker)
    return closed


def wait_for_text(page: Page, *needles: str, timeout_ms: int = 120_000) -> str:
    """Wait until the page's text holds every needle; returns the text (raises naming the rest)."""
    script = "needles => needles.every(n => document.body && document.body.innerText.includes(n))"
    try:
        page.wait_for_function(script, arg=list(needles), timeout=timeout_ms)
    except PlaywrightTimeout as exc:
        text = page.inner_text("body")
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"page never showed {missing}; it showed:\n{text[:3000]}") from exc
    return page.inner_text("body")


def save_png(page: Page, path: Path, colors: int = 64) -> Path:
    """Screenshot of the viewport, reduced to a small palette PNG for the docs."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=colors).save(path, optimize=True)
    return path
