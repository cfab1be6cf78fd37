"""Headless Chromium for the browser e2e tests: one place for the binary, flags and driver.

Chromium and its driver come from Debian (``make test`` installs them when missing); a
test module calls ``require()`` at import, which skips the module (listed at the end of
``make test``) only when they are missing, never for a file of the project.
"""
from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def require():
    """Skip the calling test module unless selenium, Chromium and chromedriver are here."""
    pytest.importorskip("selenium.webdriver", reason="selenium not installed (dev extra)")
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium/chromedriver not installed: apt-get install chromium "
                    "chromium-driver (make test does it)", allow_module_level=True)


def chromium(user_data_dir, script_timeout: float | None = 20, extra_flags=(),
             network_log: bool = False):
    """A started headless Chromium driver (the caller quits it). ``network_log``: keep the
    DevTools performance log, whose ``Network.requestWillBeSent`` entries name every URL the
    page asked for (``requested_urls``)."""
    from selenium import webdriver
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}", *extra_flags]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    if script_timeout:
        driver.set_script_timeout(script_timeout)
    return driver


def requested_urls(driver) -> list[str]:
    """Every URL the browser requested since the last call (needs ``network_log=True``)."""
    import json
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
