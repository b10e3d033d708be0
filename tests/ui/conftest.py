"""The dashboard under test: a real nats-server, the `jetstation ui` binary
and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from jetstation import sync as jetstation

ROOT = Path(__file__).resolve().parents[2]
# Where screenshots go: the build cache by default; `make screenshots` points
# this at docs/screenshots, which the README shows.
CACHE = Path(os.environ.get("JETSTATION_CACHE", Path.home() / ".cache" / "jetstation"))
SCREENSHOTS = Path(os.environ.get("JETSTATION_SCREENSHOTS", CACHE / "screenshots"))

# The nats-server harness of the Python suite (one server per test, free port).
_spec = importlib.util.spec_from_file_location(
    "python_harness", ROOT / "bindings" / "python" / "tests" / "conftest.py"
)
assert _spec and _spec.loader
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
Server = _harness.Server


def jetstation_bin() -> str:
    explicit = os.environ.get("JETSTATION_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "debug" / "jetstation")


class Dashboard:
    """`jetstation ui` on a free port; `url` is the address it printed."""

    def __init__(self, nats_url: str, *flags: str) -> None:
        self.process = subprocess.Popen(
            [jetstation_bin(), "--url", nats_url, "ui", "--listen", "127.0.0.1:0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "JETSTATION_UI_TOKEN")},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://\S+/", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"the dashboard did not start: {line!r} {self.process.stderr.read() if self.process.stderr else ''}")
        self.url = found.group(0)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server() -> Iterator[object]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def client(server: object) -> Iterator[jetstation.Client]:
    c = jetstation.connect(server.url)  # type: ignore[attr-defined]
    yield c
    c.close()


@pytest.fixture
def dashboards(server: object) -> Iterator[Callable[..., Dashboard]]:
    started: List[Dashboard] = []

    def start(*flags: str) -> Dashboard:
        d = Dashboard(server.url, *flags)  # type: ignore[attr-defined]
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    p = context.new_page()
    p.set_default_timeout(20_000)
    errors: List[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert errors == [], f"the page raised: {errors}"


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        # Poll interval; bounded by the deadline above.
        time.sleep(0.05)


def next_message(consumer: jetstation.Consumer, timeout: float = 20.0) -> Optional[jetstation.Message]:
    return consumer.next(timeout=timeout)
