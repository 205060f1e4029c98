"""Benchmark: the exporter's scrape against the length of the queue.

Users decide how long the queue is (one sbatch of a 100,000-task array adds
100,000 pending lines to squeue), so a scrape must not walk the jobs. For each
size it writes squeue and sinfo text in the exporter's own field lists (a
realistic mix: a few thousand running jobs at most, the rest pending, most of
them array tasks; 40 accounts in five categories and two unmapped; three
partitions with three GPU types; 250 nodes, some drained or down), puts a
`squeue` and a `sinfo` that print it on PATH, and measures:
  - refresh: `Exporter.refresh_live()` as the exporter's loop runs it (squeue and
    sinfo as subprocesses, parsing, counting per account, folding per category);
  - aggregation: counting the parsed jobs per account and folding the counts per
    category (`count_jobs` + `live_figures`), the part that replaced per-scrape work;
  - scrape: `generate_latest` on a registry holding the exporter (what
    prometheus-client does for each GET /metrics), --scrapes times; and scrapes
    every 20 ms during one more refresh, which holds the GIL while it parses.
Prints median and p95 per size and writes them as JSON (--out) with the machine
and the date. No Slurm and no store are needed (the store's families cost the
same at any queue length and are left out).

  .venv/bin/python scripts/bench_scrape.py --out docs/benchmark-scrape.json
  .venv/bin/python scripts/bench_scrape.py --jobs 1000 --scrapes 50   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collector import clock
from collector.config import Settings, parse
from collector.export.exporter import Exporter
from collector.export.views import LiveView, count_jobs, live_accounts, live_figures
from collector.slurm.live_parser import parse_squeue

SIZES = (1_000, 100_000, 1_000_000)
MAX_RUNNING = 4_000            # 250 nodes x 8 GPUs: a cluster runs a few thousand jobs
PARTITIONS = (("gpu", "h100"), ("gpu_a100", "a100"), ("gpu_l40s", "l40s"))
CATEGORIES = (("eu_science", "eurohpc", "ehpc_"), ("commercial", "eurohpc", "com_"),
              ("science", "national", "nl_"), ("industry", "national", "ind_"),
              ("education", "national", "edu_"))
ACCOUNTS = (*(f"{prefix}{i:02d}" for _, _, prefix in CATEGORIES for i in range(8)),
            "staff_ops", "guest")   # the last two map to no category
POLICY = {
    "facility": {"name": "Bench Factory", "timezone": "UTC"},
    "slurm": {"cluster": "bench"},
    "pools": [{"name": "eurohpc", "share": 0.5}, {"name": "national", "share": 0.5}],
    "categories": [{"name": name, "pool": pool, "quota_share": 0.2,
                    "account_pattern": f"^{prefix}"} for name, pool, prefix in CATEGORIES],
}


def squeue_text(n: int) -> str:
    """n jobs as `squeue -O JobID:|,State:|,Account:|,Partition:|,tres-alloc:|,NumNodes:|`
    prints them: running jobs first (they hold typed GPUs), then pending ones, four in
    five of them tasks of large arrays (pending tres has no typed GPU entry)."""
    rng = random.Random(n)          # the same text for the same size, run after run
    running = min(n * 3 // 10, MAX_RUNNING)
    lines = []
    for i in range(n):
        account = rng.choice(ACCOUNTS)
        part, gpu_type = rng.choice(PARTITIONS)
        gpus = rng.choice((1, 1, 2, 4, 8))
        nodes = 2 if gpus == 8 and rng.random() < 0.3 else 1
        if i < running:
            lines.append(f"{7_000_000 + i}|RUNNING|{account}|{part}|cpu={gpus * 8},"
                         f"mem={gpus * 64}G,node={nodes},billing={gpus * 8},gres/gpu={gpus},"
                         f"gres/gpu:{gpu_type}={gpus}|{nodes}|")
        elif rng.random() < 0.8:
            array = 8_000_000 + (i // 10_000)   # arrays of 10,000 tasks
            lines.append(f"{array}_{i % 10_000}|PENDING|{account}|{part}|cpu={gpus * 8},"
                         f"mem={gpus * 64}G,node=1,billing={gpus * 8},gres/gpu={gpus}|1|")
        else:
            lines.append(f"{9_000_000 + i}|PENDING|{account}|{part}|cpu={gpus * 8},"
                         f"mem={gpus * 64}G,node={nodes},billing={gpus * 8},"
                         f"gres/gpu={gpus}|{nodes}|")
    return "\n".join(lines) + "\n"


def sinfo_text() -> str:
    """250 nodes of 8 GPUs over the three partitions; some drained, down or in maint."""
    lines = []
    for i in range(250):
        part, gpu_type = PARTITIONS[i % len(PARTITIONS)]
        state = ("drained" if i % 50 == 7 else "down*" if i % 83 == 5 else
                 "maint$" if i % 97 == 11 else ("mixed", "allocated", "idle")[i % 3])
        lines.append(f"gn{i:03d}|{part}{'*' if part == 'gpu' else ''}|{state}|"
                     f"gpu:{gpu_type}:8(S:0-1)|")
    return "\n".join(lines) + "\n"


def fake_slurm(bin_dir: Path, data: Path) -> dict[str, str]:
    """`squeue` and `sinfo` that print the files in `data`, and the environment."""
    for tool in ("squeue", "sinfo"):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\nexec cat '{data / (tool + '.txt')}'\n")
        script.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


def stats(seconds: list[float]) -> dict[str, float | int]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(seconds), "median_s": round(statistics.median(ordered), 6),
            "p95_s": round(p95, 6)}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_aggregation(settings: Settings, text: str, live: LiveView, runs: int
                     ) -> list[float]:
    """Count the parsed jobs per account and fold them per category, `runs` times."""
    jobs, bad = parse_squeue(text)
    assert not bad, bad[:3]

    def aggregate() -> None:
        counted = count_jobs(jobs)
        assert counted == live.jobs
        live_figures(settings, live, live_accounts(settings, None, live))
    return [timed(aggregate) for _ in range(runs)]


def scrapes_during_refresh(exporter: Exporter, registry: CollectorRegistry) -> list[float]:
    """Scrapes every 20 ms while the refresh thread reads squeue (they share the GIL)."""
    done = threading.Event()

    def refresh() -> None:
        exporter.refresh_live()
        done.set()
    thread = threading.Thread(target=refresh)
    thread.start()
    seconds = []
    while not done.is_set() or not seconds:
        seconds.append(timed(lambda: generate_latest(registry)))
        done.wait(0.02)
    thread.join()
    return seconds


def measure(settings: Settings, n: int, tmp: Path, refreshes: int, scrapes: int) -> dict:
    data = tmp / f"slurm-{n}"
    data.mkdir()
    text = squeue_text(n)
    (data / "squeue.txt").write_text(text)
    (data / "sinfo.txt").write_text(sinfo_text())
    bin_dir = tmp / f"bin-{n}"
    bin_dir.mkdir()
    exporter = Exporter(settings, env=fake_slurm(bin_dir, data))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)

    refresh = [timed(exporter.refresh_live) for _ in range(refreshes)]
    assert exporter.status.sources["squeue"].up, exporter.status.sources["squeue"].last_error
    assert exporter.live is not None
    live = exporter.live
    aggregation = time_aggregation(settings, text, live, refreshes)

    body = generate_latest(registry)
    scrape = [timed(lambda: generate_latest(registry)) for _ in range(scrapes)]
    during = scrapes_during_refresh(exporter, registry)
    samples = sum(1 for line in body.decode().splitlines() if not line.startswith("#"))
    pending = sum(live.jobs.pending_gpus.values())
    row = {"queued_jobs": n, "running_jobs": sum(live.jobs.running.values()),
           "pending_array_tasks": sum(1 for line in text.splitlines()
                                      if "_" in line.split("|", 1)[0]),
           "pending_gpus": pending, "accounts": len(live.jobs.accounts()),
           "squeue_bytes": len(text), "refresh": stats(refresh),
           "aggregation": stats(aggregation), "scrape": stats(scrape),
           "scrape_during_refresh": {**stats(during), "max_s": round(max(during), 6)},
           "scrape_samples": samples, "scrape_bytes": len(body)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, action="append",
                        help=f"queued jobs (repeatable) [default: {', '.join(map(str, SIZES))}]")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--refreshes", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    settings = parse(POLICY)
    load = round(os.getloadavg()[0], 2)   # other work on the machine shows in the figures
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-usage-bench-scrape-") as tmp:
        print(f"{'queued jobs':>12} {'refresh median':>15} {'p95':>8} {'aggregation':>12} "
              f"{'p95':>8} {'scrape median':>14} {'p95':>8} {'samples':>8} "
              f"{'scrape in refresh: median':>26} {'max':>9}")
        for n in args.jobs or SIZES:
            row = measure(settings, n, Path(tmp), args.refreshes, args.scrapes)
            rows.append(row)
            r, a, s = row["refresh"], row["aggregation"], row["scrape"]
            d = row["scrape_during_refresh"]
            print(f"{n:>12,} {r['median_s'] * 1e3:>12.1f} ms {r['p95_s'] * 1e3:>5.1f} ms "
                  f"{a['median_s'] * 1e3:>9.1f} ms {a['p95_s'] * 1e3:>5.1f} ms "
                  f"{s['median_s'] * 1e3:>11.2f} ms {s['p95_s'] * 1e3:>5.2f} ms "
                  f"{row['scrape_samples']:>8} "
                  f"{d['median_s'] * 1e3:>23.2f} ms {d['max_s'] * 1e3:>6.1f} ms", flush=True)
    if args.out:
        result = {"measured": time.strftime("%Y-%m-%d", time.gmtime(clock.now())),
                  "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                             f"Python {platform.python_version()}",
                  "load_average_1m_at_start": load,
                  "what": "refresh = Exporter.refresh_live() (squeue and sinfo as "
                          "subprocesses printing the text, parse, count per account, fold "
                          "per category); aggregation = count_jobs + live_figures on the "
                          "parsed jobs; scrape = generate_latest on a registry holding the "
                          "exporter (no store view)",
                  "sizes": rows}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
