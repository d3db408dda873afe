"""Headless Chromium for the HTML report tests: screenshot, DOM after scripts ran, console messages.

CI installs Debian's ``chromium`` (.ci/run) and sets LOSSDX_REQUIRE_BROWSER=1, so there a missing
browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--force-device-scale-factor=1", "--hide-scrollbars"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("LOSSDX_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (LOSSDX_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return exe


def _run(page: Path, extra: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="lossdx-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout)


def console_messages(stderr: str) -> list[str]:
    """Messages the page wrote to its console (errors, CSP violations, our own logging: none expected)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1200, 1100)) -> list[str]:
    res = _run(page, [f"--window-size={size[0]},{size[1]}", f"--screenshot={out}"])
    assert out.exists(), res.stderr[-2000:]
    return console_messages(res.stderr)


def dump_dom(page: Path, size: tuple[int, int] = (1200, 1100)) -> tuple[str, list[str]]:
    res = _run(page, [f"--window-size={size[0]},{size[1]}", "--dump-dom"])
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, console_messages(res.stderr)
