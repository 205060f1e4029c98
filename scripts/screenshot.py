"""Screenshots of the dashboard's pages in Debian's headless Chromium (the README's
picture of the overview is made with this).

  .venv/bin/python scripts/screenshot.py --config testcluster/facility.toml \\
      --month 2026-10 --page overview --out docs/overview.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from testcluster.browser import (
    CHARTS,
    PAGES,
    TITLES,
    chromium,
    dashboard,
    errors_on_page,
    open_page,
    wait_rendered,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--month", required=True, help="YYYY-MM")
    parser.add_argument("--page", action="append", choices=list(PAGES),
                        help="page(s) to take [default: all]")
    parser.add_argument("--out", type=Path, required=True,
                        help="a .png file (one page) or a directory")
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    pages = args.page or list(PAGES)
    with dashboard(args.config, dict(os.environ)) as url:
        driver = chromium(1400, args.height)
        try:
            driver.get(f"{url}/?month={args.month}")
            wait_rendered(driver, charts=3, timeout_s=120)
            for page in pages:
                open_page(driver, page, TITLES[page], timeout_s=120)
                wait_rendered(driver, charts=CHARTS.get(page, 0))
                if errors_on_page(driver):
                    raise SystemExit(f"{page}: {errors_on_page(driver)}")
                out = args.out if args.out.suffix == ".png" else args.out / f"{page}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
                print(f"wrote {out}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
