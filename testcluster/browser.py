"""A real headless browser on the dashboard, for the tests, the benchmark and the
README screenshot: Debian's Chromium and chromedriver (packages chromium and
chromium-driver) driven by Selenium; never a downloaded browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from .ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Streamlit's own markers: an uncaught exception, and an st.error box.
ERROR_SELECTOR = "[data-testid='stException'], [data-testid='stAlertContentError']"
# The URL path of each page (st.Page derives it from the file name).
PAGES = {"overview": "", "categories": "categories", "allocations": "allocations",
         "job_mix": "job_mix", "energy": "energy", "efficiency": "efficiency", "live": "live",
         "data_quality": "data_quality", "reports": "reports"}
# Each page's title starts with this; and how many charts it draws on a month with data.
TITLES = {"overview": "GPU usage", "categories": "Categories", "allocations": "Allocations",
          "job_mix": "Job mix", "energy": "Energy", "efficiency": "GPU efficiency",
          "live": "Live",
          "data_quality": "Data quality", "reports": "Monthly reports"}
CHARTS = {"overview": 3, "categories": 3, "allocations": 1, "job_mix": 2, "energy": 1,
          "efficiency": 1}


class BrowserError(RuntimeError):
    pass


__all__ = ["BrowserError", "chromium", "dashboard", "free_port", "open_page", "wait_rendered"]


@contextmanager
def dashboard(config: Path, env: dict[str, str] | None = None, port: int | None = None,
              log: Path | None = None) -> Iterator[str]:
    """`gpu-usage dashboard` on a free local port; yields its base URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "collector", "dashboard", "--config",
                             str(config), "--address", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"the dashboard did not start on {url}"
                                   + (f"; see {log}" if log else ""))
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def chromium(width: int = 1400, height: int = 1800):
    """A headless Chromium session (selenium WebDriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            raise BrowserError(f"{program} not found: apt-get install chromium chromium-driver "
                               "(scripts/setup-debian.sh testcluster,test does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions",
                "--disable-component-update", "--no-first-run", "--mute-audio",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    # Selenium Manager must not look for (or download) a driver: give it Debian's.
    # chromedriver's own port below the ephemeral range too (Selenium would take one in it).
    return webdriver.Chrome(service=Service(CHROMEDRIVER, port=free_port()), options=opts)


def wait_rendered(driver, charts: int = 0, timeout_s: float = 60) -> None:
    """Until the page has its title, `charts` drawn Vega charts, and Streamlit has
    stopped running the script."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d) -> bool:
        if not d.find_elements(By.CSS_SELECTOR, "h1"):
            return False
        if d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget'] *"):
            return False  # "Running..." while the script runs
        drawn = d.find_elements(By.CSS_SELECTOR, ".vega-embed canvas, .vega-embed svg.marks")
        return len(drawn) >= charts

    # Streamlit replaces elements while it re-renders: a stale one means "look again".
    WebDriverWait(driver, timeout_s, poll_frequency=0.05,
                  ignored_exceptions=(StaleElementReferenceException,)).until(done)


def open_page(driver, page: str, title: str, charts: int = 0, timeout_s: float = 60) -> None:
    """Click the page's link in the sidebar (same session) and wait until it is drawn."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    links = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNavLink']")
    path = PAGES[page]
    link = next((a for a in links
                 if urlparse(a.get_attribute("href") or "").path.strip("/") == path), None)
    if link is None:
        raise BrowserError(f"no sidebar link to {page!r}")
    link.click()
    WebDriverWait(driver, timeout_s, poll_frequency=0.05,
                  ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: any(h.text.startswith(title) for h in d.find_elements(By.CSS_SELECTOR, "h1")))
    wait_rendered(driver, charts, timeout_s)


def errors_on_page(driver) -> list[str]:
    from selenium.webdriver.common.by import By
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR)]


def have_browser() -> str | None:
    """None if Chromium, chromedriver and selenium are here, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the test extra)")
    return ", ".join(missing) or None
