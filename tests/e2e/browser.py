"""Headless Chromium for the browser tests: found, or installed from Debian.

Never ``playwright install``: that downloads a browser build, which this
project's machines cannot fetch. Debian's ``chromium`` package is used instead,
driven by Playwright for Python over the Chrome DevTools Protocol.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_INSTALL_LOCK = Path(tempfile.gettempdir()) / "csms-chromium-install.lock"
_APT_TIMEOUT = 900


def find_or_install_chromium() -> tuple[Path | None, str]:
    """Debian's Chromium, installed with apt-get if missing and we may.

    Returns the executable, or None and why it could not be had.
    """
    if CHROMIUM.exists():
        return CHROMIUM, ""
    if os.geteuid() != 0:
        return None, f"{CHROMIUM} is missing; run `apt-get install chromium` as root"
    if shutil.which("apt-get") is None:
        return None, f"{CHROMIUM} is missing and there is no apt-get to install it"

    # Test workers start together: one installs, the others wait for it.
    with _locked(_INSTALL_LOCK):
        if CHROMIUM.exists():
            return CHROMIUM, ""
        failure = _apt("install", "-y", "chromium")
        if failure:
            # An old or empty package list is the usual cause: refresh, retry.
            _apt("update")
            failure = _apt("install", "-y", "chromium")
    if failure or not CHROMIUM.exists():
        return None, f"apt-get install chromium failed: {failure[-500:]}"
    return CHROMIUM, ""


def _apt(*arguments: str) -> str:
    """Run apt-get; returns its error output on failure, "" on success."""
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            ["apt-get", *arguments],
            env=environment,
            capture_output=True,
            text=True,
            timeout=_APT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"apt-get {' '.join(arguments)} took over {_APT_TIMEOUT} s"
    return "" if result.returncode == 0 else (result.stderr or result.stdout)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def chromium_context(
    executable: Path, **options: Any
) -> AsyncIterator[BrowserContext]:
    """A headless Chromium with a fresh profile, closed and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="csms-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(executable),
                args=CHROMIUM_ARGS,
                headless=True,
                **options,
            )
            try:
                yield context
            finally:
                await context.close()
