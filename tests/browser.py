"""Headless Chromium (Debian's ``chromium``) for the tests of pages guardedllm writes: open a
file and read back the DOM after it ran and was laid out, every request it made, and its
console errors.

Driven by Playwright, launched on the system's binary (``executable_path``): Playwright's own
browser download (``playwright install``) is never run, and ``pip install playwright`` fetches
nothing but its wheel. Chosen over ``chromium --dump-dom``: that gives only the DOM, while a
page's requests and console errors would have to be scraped from a logging server and Chromium's
log. Here every request the page makes is seen (``requests``) and refused (a route answers none,
so nothing leaves the machine even from a page whose Content-Security-Policy let it through),
and the rendered page can be asked for the size of what it laid out.

Without the binary the tests that need it are skipped, saying how to install it, except in CI
(``CI=true``), where they must run: there a missing binary fails them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    Route,
    sync_playwright,
)

from services import service_binary

INSTALL = "apt-get install -y chromium"

# Chromium runs as root here (no sandbox then), and on a machine whose network is closed: left
# to itself it would phone home (component updates, sync, safe browsing, QUIC probes). Playwright
# gives each launch a fresh profile directory of its own (a new --user-data-dir).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
# A page of ours is a local file that loads nothing; loading it takes milliseconds.
LOAD_TIMEOUT_MS = 20_000


def chromium_binary() -> str:
    """The chromium binary, or skip (fail in CI) the test that needs it."""
    return service_binary(
        "chromium", "chromium-browser", install=INSTALL, tests="the browser tests"
    )


@attrs.define
class LoadedPage:
    """A page after it loaded: ``page`` to query further (``page.evaluate``), the DOM after its
    scripts ran (``dom``), every URL it requested (``requests``, the page's own first; one its
    Content-Security-Policy blocked too), those of them that got past the policy to the
    network and were refused there (``refused``), its console and script errors, and any dialog
    it opened (``alert``)."""

    page: Page
    dom: str
    requests: list[str]
    refused: list[str]
    console_errors: list[str]
    dialogs: list[str]


class HeadlessChromium:
    """One browser; ``open`` loads a file in a fresh context (no cookies, cache or storage
    shared with another page)."""

    def __init__(self, binary: str) -> None:
        self._playwright = sync_playwright().start()
        self._browser: Browser = self._playwright.chromium.launch(
            executable_path=binary, args=list(CHROMIUM_ARGS), headless=True
        )

    @contextmanager
    def open(self, path: Path) -> Iterator[LoadedPage]:
        context = self._browser.new_context(viewport={"width": 1100, "height": 900})
        try:
            requests: list[str] = []
            refused: list[str] = []
            console_errors: list[str] = []
            dialogs: list[str] = []
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda socket: requests.append(socket.url))
            page.on("console", lambda message: _console_error(message, console_errors))
            page.on("pageerror", lambda error: console_errors.append(f"pageerror: {error}"))

            page.on("dialog", lambda opened: _dismiss(opened, dialogs))
            url = path.resolve().as_uri()
            context.route("**/*", lambda route: _only(url, route, refused))
            page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            yield LoadedPage(
                page=page,
                dom=page.content(),
                requests=requests,
                refused=refused,
                console_errors=console_errors,
                dialogs=dialogs,
            )
        finally:
            context.close()

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


def _console_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(f"console: {message.text}")


def _dismiss(dialog: Dialog, dialogs: list[str]) -> None:
    dialogs.append(f"{dialog.type}: {dialog.message}")
    dialog.dismiss()


def _only(url: str, route: Route, refused: list[str]) -> None:
    # A page of ours loads nothing but itself: whatever else reaches the network is refused,
    # so nothing leaves the machine.
    if route.request.url == url:
        route.continue_()
    else:
        refused.append(route.request.url)
        route.abort("blockedbyclient")


@pytest.fixture(scope="module")
def chromium() -> Iterator[HeadlessChromium]:
    """Headless Chromium for a test module (started once: a launch takes about a second)."""
    browser = HeadlessChromium(chromium_binary())
    yield browser
    browser.close()
