"""The page in a real browser: Debian's chromium driven headless by selenium.

The browser is the system's (``apt-get install chromium chromium-driver``):
the test never downloads one (selenium's manager is kept offline).  Without
it the test is skipped, unless ``QDHT_REQUIRE_BROWSER=1`` (CI) makes that a
failure.  The screenshot goes to ``QDHT_WEB_SCREENSHOT`` when set (the one
in ``docs/`` was made so), else to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from qdht.messaging import MessagingConfig
from qdht.mixnet import MixnetConfig

from ._harness import page_node

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1100",
)


def _browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None
    assert DRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))


def _wait_for(driver: Any, script: str, timeout: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(script)
    )


PEER_ROWS = """
const n = document.querySelectorAll('#peers tbody tr').length;
return n >= 4 ? n : 0;
"""
LOOKUP_ROW = """
const rows = [...document.querySelectorAll('#lookups tbody tr')];
const hops = Number(document.getElementById('keyspace').dataset.hops || 0);
const done = (kind) => rows.some(
    r => r.textContent.startsWith(kind) && r.textContent.includes('ok'));
return done('find_node') && done('put') && hops > 0
    ? rows.length : 0;
"""


LAYER_PANELS = """
const shown = (id) => !document.getElementById('panel-' + id).hidden;
const cards = (id) => [...document.querySelectorAll('#' + id + '-cards .card')]
    .map(c => c.textContent);
const ok = shown('mixnet') && shown('messaging') && shown('training')
    && cards('mixnet').some(t => t.endsWith('directory epoch'))
    && cards('messaging').some(t => t.endsWith('contacts'))
    && cards('training').some(t => t.startsWith('coordinator'))
    && cards('training').some(t => t.includes('%') && t.endsWith('accuracy'));
return ok ? [cards('mixnet'), cards('messaging'), cards('training')] : null;
"""
NO_LAYER_PANELS = """
return ['mixnet', 'messaging', 'training'].every(
    id => document.getElementById('panel-' + id).hidden) ? 'hidden' : null;
"""


def _need_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    if CHROMIUM is None or DRIVER is None:
        if os.environ.get("QDHT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromium-driver are required (QDHT_REQUIRE_BROWSER=1)")
        pytest.skip("needs Debian's chromium and chromium-driver")
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never fetch a browser


async def test_the_page_fills_its_peer_table_and_draws_a_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_browser(monkeypatch)
    shot = tmp_path / "web-page.png"
    async with page_node(peers=12) as (node, face):
        assert face.url is not None
        driver = await trio.to_thread.run_sync(_browser, tmp_path / "profile")
        try:
            await trio.to_thread.run_sync(driver.get, face.url)
            peers = await trio.to_thread.run_sync(_wait_for, driver, PEER_ROWS)
            assert peers >= 4
            await node.find_node(bytes(32))
            await node.put(b"shown by key and size only")
            rows = await trio.to_thread.run_sync(_wait_for, driver, LOOKUP_ROW)
            assert rows >= 1
            status = await trio.to_thread.run_sync(
                driver.execute_script, "return document.getElementById('status').textContent"
            )
            assert status == "live"
            assert await trio.to_thread.run_sync(_wait_for, driver, NO_LAYER_PANELS) == "hidden"
            shot.parent.mkdir(parents=True, exist_ok=True)
            assert await trio.to_thread.run_sync(driver.save_screenshot, str(shot))
            assert (await trio.Path(shot).stat()).st_size > 10_000
        finally:
            await trio.to_thread.run_sync(driver.quit)


async def test_the_page_shows_the_mixnet_messaging_and_training_panels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the layers on, each gets its panel (the screenshot in ``docs/`` is this page)."""
    _need_browser(monkeypatch)
    shot = Path(os.environ.get("QDHT_WEB_SCREENSHOT", tmp_path / "web-page.png"))
    layers = {"mixnet": MixnetConfig(), "messaging": MessagingConfig()}
    async with page_node(peers=12, layers=layers, training=True) as (node, face):
        assert face.url is not None
        driver = await trio.to_thread.run_sync(_browser, tmp_path / "profile")
        try:
            await trio.to_thread.run_sync(driver.get, face.url)
            await trio.to_thread.run_sync(_wait_for, driver, PEER_ROWS)
            await node.find_node(bytes(32))
            await node.put(b"shown by key and size only")
            await trio.to_thread.run_sync(_wait_for, driver, LOOKUP_ROW)
            mixnet, messaging, training = await trio.to_thread.run_sync(
                _wait_for, driver, LAYER_PANELS
            )
            assert "clientrole" in mixnet  # a card is its figure, then its name
            assert any(card.endswith("outbox") for card in messaging)
            assert "12participants" in training
            # A few samples drawn in the panels' charts before the screenshot.
            await trio.to_thread.run_sync(_wait_for, driver, "return history.length >= 8")
            height = await trio.to_thread.run_sync(
                driver.execute_script, "return document.documentElement.scrollHeight"
            )
            await trio.to_thread.run_sync(driver.set_window_size, 1500, int(height) + 140)
            shot.parent.mkdir(parents=True, exist_ok=True)
            assert await trio.to_thread.run_sync(driver.save_screenshot, str(shot))
            assert (await trio.Path(shot).stat()).st_size > 10_000
        finally:
            await trio.to_thread.run_sync(driver.quit)
