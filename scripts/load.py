"""Load: concurrent dashboard sessions and Prometheus scrapes while a collection
writes the same store.

It starts `gpu-usage dashboard` and `gpu-usage exporter` on the policy's store, then
runs for --duration seconds (at least as long as the collection):
  - `gpu-usage collect --from-scratch` on that store (a whole re-read of the history
    in one transaction; readers keep the old figures until it commits), against the
    test cluster given by --run-dir/--base-port;
  - --sessions Streamlit sessions at once (Streamlit's websocket protocol, as a
    browser: testcluster/stclient.py), each visiting the operator pages in turn;
  - /metrics scraped --scrape-rate times a second.
Prints the latencies (median, p95, max) and errors of each, and writes them as JSON
(--out). Needs a store collected earlier, e.g. the 1,000,000-job one of
scripts/benchmark.py, and its cluster up:

  .venv/bin/python -m testcluster up --run-dir /tmp/bench/cluster --base-port 36800
  .venv/bin/python scripts/load.py --config /tmp/bench/facility-1000000.toml \\
      --run-dir /tmp/bench/cluster --base-port 36800 --month 2026-10 \\
      --out docs/benchmark-load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testcluster.browser import dashboard, free_port  # noqa: E402
from testcluster.layout import Layout  # noqa: E402
from testcluster.stclient import Session  # noqa: E402

PAGES = ("", "categories", "allocations", "job_mix", "data_quality", "reports")


def figures(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    return {"n": len(ordered), "median_s": round(statistics.median(ordered), 4),
            "p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 4),
            "max_s": round(ordered[-1], 4)}


async def session_loop(url: str, month: str, stop: asyncio.Event, times: list[float],
                       errors: list[str], index: int) -> None:
    try:
        async with Session(url) as s:
            i = index
            while not stop.is_set():
                page = PAGES[i % len(PAGES)]
                i += 1
                try:
                    run = await s.run(page, f"month={month}", timeout_s=180)
                except (TimeoutError, ConnectionError) as exc:
                    errors.append(f"session {index} {page or 'overview'}: {exc}")
                    return
                if run.finished != "FINISHED_SUCCESSFULLY" or run.exceptions:
                    errors.append(f"session {index} {page or 'overview'}: {run.finished} "
                                  f"{run.exceptions[:1]}")
                times.append(run.seconds)
    except OSError as exc:
        errors.append(f"session {index}: {exc}")


async def scrape_loop(url: str, rate: float, stop: asyncio.Event, times: list[float],
                      errors: list[str]) -> None:
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError
    client = AsyncHTTPClient(max_clients=50)
    period = 1 / rate
    pending: set[asyncio.Task] = set()

    async def one() -> None:
        started = time.perf_counter()
        try:
            reply = await client.fetch(url, request_timeout=30)
            if b"gpu_usage_" not in reply.body:
                errors.append("a scrape without gpu_usage_ series")
        except (HTTPClientError, OSError) as exc:
            errors.append(f"scrape: {exc}")
            return
        times.append(time.perf_counter() - started)

    next_at = time.perf_counter()
    while not stop.is_set():
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += period
        await asyncio.sleep(max(0, next_at - time.perf_counter()))
    await asyncio.gather(*pending)


async def load(args, dash_url: str, metrics_url: str, collect: list[str], env: dict) -> dict:
    stop = asyncio.Event()
    page_times: list[float] = []
    scrape_times: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    tasks = [asyncio.create_task(session_loop(dash_url, args.month, stop, page_times, errors,
                                              i)) for i in range(args.sessions)]
    tasks.append(asyncio.create_task(scrape_loop(metrics_url, args.scrape_rate, stop,
                                                 scrape_times, errors)))
    await asyncio.sleep(5)  # every session open before the writer starts
    proc = await asyncio.create_subprocess_exec(*collect, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    collect_started = time.perf_counter()
    out, err = await proc.communicate()
    collect_s = time.perf_counter() - collect_started
    left = args.duration - (time.perf_counter() - started)
    if left > 0:
        await asyncio.sleep(left)
    stop.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    return {
        "sessions": args.sessions, "scrape_rate_per_s": args.scrape_rate,
        "seconds": round(wall, 1),
        "collection": {"exit": proc.returncode, "seconds": round(collect_s, 1),
                       "said": (out.decode().strip() or err.decode().strip())[-300:]},
        "dashboard_page_runs": figures(page_times),
        "scrapes": dict(figures(scrape_times),
                        achieved_per_s=round(len(scrape_times) / wall, 1)),
        "errors": len(errors), "error_sample": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="policy on a collected store")
    parser.add_argument("--run-dir", type=Path, required=True, help="the test cluster to read")
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--month", required=True, help="YYYY-MM the sessions look at")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--scrape-rate", type=float, default=20, help="scrapes per second")
    parser.add_argument("--duration", type=float, default=120, help="seconds at least")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    lay = Layout(args.run_dir.resolve(), args.base_port)
    env = dict(lay.env())
    cli = [sys.executable, "-m", "collector"]
    jobs = store_jobs(args.config)
    print(f"store: {jobs:,} jobs; {args.sessions} sessions, {args.scrape_rate:g} scrapes/s, "
          "a collection from scratch meanwhile", flush=True)
    port = free_port()
    exporter = subprocess.Popen([*cli, "exporter", "--config", str(args.config), "--address",
                                 "127.0.0.1", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with dashboard(args.config, env) as url:
            time.sleep(2)
            result = asyncio.run(load(args, url, f"http://127.0.0.1:{port}/metrics",
                                      [*cli, "collect", "--config", str(args.config),
                                       "--from-scratch", "--quiet"], env))
    finally:
        exporter.terminate()
        exporter.wait(timeout=20)
    result["store_jobs"] = jobs
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if result["errors"] or result["collection"]["exit"] != 0:
        raise SystemExit(1)


def store_jobs(config: Path) -> int:
    from collector.config import load
    from collector.store.database import Store
    with Store.open_reader(load(config).store.path) as store:
        return store.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


if __name__ == "__main__":
    main()
