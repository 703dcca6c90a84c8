"""Chromium against built sites, over http://127.0.0.1:<port> and over file://.

One browser for the session; a fresh context per visit records console errors, page errors and
every request, and aborts (and records) any request that leaves the site. Screenshots go to
``test-artifacts/`` at the repository root (gitignored).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import saesite
from saesite.config import RenderConfig
from saesite.site.render import write_site
from tests.fixtures.sample_records import adversarial_site, sample_site

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(saesite.__file__).resolve().parent.parent / "test-artifacts"
SCHEMES = ("http", "file")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="session")
def server_root(tmp_path_factory) -> Path:
    """The folder the HTTP server serves; each site under test is linked in by name."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def http_port(server_root) -> int:
    handler = functools.partial(_QuietHandler, directory=str(server_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@dataclass
class Site:
    """A built site, reachable by name over HTTP and by path over file://."""

    name: str
    path: Path
    port: int

    def url(self, scheme: str, rel: str = "index.html") -> str:
        if scheme == "http":
            return f"http://127.0.0.1:{self.port}/{self.name}/{rel}"
        path, hash_, fragment = rel.partition("#")
        return (self.path / path).as_uri() + hash_ + fragment

    def prefix(self, scheme: str) -> str:
        return self.url(scheme, "")


def _serve(server_root: Path, port: int, name: str, path: Path) -> Site:
    link = server_root / name
    if not link.exists():
        os.symlink(path, link)
    return Site(name=name, path=path, port=port)


@pytest.fixture(scope="session")
def real_site(tiny_site, server_root, http_port) -> Site:
    """A real build of the tiny model and SAE (tests/conftest.py)."""
    return _serve(server_root, http_port, "real", Path(tiny_site))


@pytest.fixture(scope="session")
def table_site(tmp_path_factory, server_root, http_port) -> Site:
    """Synthetic records with enough features for the table to paginate, and a training log."""
    from tests.site.test_training_page import training_log

    site, features = sample_site(230, seed=5, top_k=4, n_intervals=2, interval_samples=1)
    site["training"] = training_log()  # the training page (generator/site/training_page.py)
    out = write_site(
        site,
        features,
        RenderConfig(out=str(tmp_path_factory.mktemp("t") / "s"), features_per_folder=100),
    )
    return _serve(server_root, http_port, "table", out)


@pytest.fixture(scope="session")
def hostile_site(tmp_path_factory, server_root, http_port) -> Site:
    site, features = adversarial_site()
    out = write_site(site, features, RenderConfig(out=str(tmp_path_factory.mktemp("a") / "s")))
    return _serve(server_root, http_port, "hostile", out)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """A page in a fresh browser context, with what it logged and requested."""

    page: object
    context: object
    allowed: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def outside(self) -> list[str]:
        return [
            url
            for url in self.requests
            if not (url.startswith(self.allowed) or url.startswith("data:"))
        ]

    def assert_clean(self) -> None:
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.outside == [], f"requests outside the site: {self.outside}"
        assert self.page.evaluate("window.__pwned") is None, "a payload ran"

    def screenshot(self, name: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def visit(browser):
    """``visit(site, scheme, rel="index.html", **context_options) -> Visit``."""
    contexts = []

    def open_(site: Site, scheme: str, rel: str = "index.html", **options) -> Visit:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        v = Visit(page=page, context=context, allowed=site.prefix(scheme))

        def on_console(message):
            if message.type == "error":
                v.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: v.errors.append(f"page error: {error}"))
        page.on("request", lambda request: v.requests.append(request.url))

        def guard(route):
            if route.request.url.startswith(v.allowed) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", guard)
        page.goto(site.url(scheme, rel))
        return v

    yield open_
    for context in contexts:
        context.close()
