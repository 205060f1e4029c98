"""Benchmark: the collector and the report against Slurm's own tools, side by side.

For each size (jobs in one month) it backfills a test cluster, then measures in
the same run:
  - `sacct` dump of the collection window (the source: the floor) vs
    `gpu-usage collect` from an empty store, and the collector's peak memory;
  - `gpu-usage collect` again with nothing new (incremental);
  - `sreport ... AccountUtilizationByUser` vs `gpu-usage report --format json` for
    the month (process start included; run in turn, 7 times each: medians);
  - `gpu-usage exporter` on that store: time to prepare its views, and the time
    of one scrape of /metrics over HTTP (median and p95 of 200) with the number of
    series it returns;
  - `gpu-usage dashboard` on that store in a real headless Chromium: time from
    opening the overview page of the month until its tiles and three charts are
    drawn, cold (first visit after the dashboard starts) and warm (median of 5
    later visits, each a new session).
Prints a table and writes the figures as JSON (--out).

With --gpu-use (on a release whose slurmdbd has gres/gpuutil: 24.11 by default) it
measures what GPU use from steps costs instead: for each size, the backfill writes
step rows too, and in the same run it times the sacct dump of the jobs and of their
steps, `collect` from an empty store with `[slurm] gpu_steps = "off"` and with
`"auto"`, `report` on each store, and each store's size (growth per job).

  .venv/bin/python scripts/benchmark.py --gpu-use --jobs 100000 --jobs 1000000 \
      --out docs/benchmark-gpu-use.json

With --sources it compares the doors to Slurm instead, for the same month: the
plain sacct dump (the floor), then `gpu-usage collect` from an empty store through
sacct, slurmrestd on its UNIX socket, slurmrestd over HTTP with a JWT, and pyslurm
where a pyslurm matching the cluster's Slurm is installed (else the reason).

  .venv/bin/python scripts/benchmark.py --sources --jobs 100000 --slurm 22.05 \
      --out docs/benchmark-sources.json

  .venv/bin/python scripts/benchmark.py --jobs 100000 --jobs 1000000 \
      --out docs/benchmark.json
  # the dashboard alone, on a store collected earlier (merged into --out's entry):
  .venv/bin/python scripts/benchmark.py --dashboard-only /tmp/facility-1000000.toml \
      --month 2026-10 --jobs 1000000 --out docs/benchmark.json

With --year it measures a year of a large site instead: --jobs over 12 months,
backfilled a month at a time (about 80 minutes for 10 million jobs on 2 cores; with
--reuse and --run-dir, the earlier backfill in that run dir, first finished with
`testcluster backfill --resume` if it was interrupted), then the sacct dump of
the year vs `collect` from empty, no-op collection, each month's report vs sreport of
that month, the year's report vs sreport of the year, the exporter, the dashboard's
overview, and the store's size per million jobs.

  GPU_USAGE_CLUSTER_INNODB_BUFFER=4G .venv/bin/python scripts/benchmark.py --year \
      --jobs 10000000 --run-dir /var/tmp/bench10m/cluster --base-port 22800 --keep \
      --out docs/benchmark-year.json

Needs the test cluster's packages (scripts/setup-debian.sh testcluster). It starts
its own cluster in --run-dir on --base-port and stops it at the end.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPU_USAGE = [sys.executable, "-m", "collector"]
TESTCLUSTER = [sys.executable, "-m", "testcluster"]
PEAK = [sys.executable, str(ROOT / "scripts" / "peak_rss.py")]


def run(argv: list[str], env: dict[str, str], out: Path | None = None) -> float:
    """Wall time of one command; its stdout goes to `out` (or nowhere)."""
    t0 = time.perf_counter()
    with open(out or os.devnull, "w") as sink:
        proc = subprocess.run(argv, env=env, stdout=sink, stderr=subprocess.PIPE, text=True,
                              check=False)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... failed: {proc.stderr[-2000:]}")
    return took


# A report and sreport of the same month are timed in turn this many times each (medians).
REPORT_ROUNDS = 7


def median_of(n: int, argv: list[str], env: dict[str, str], out: Path | None = None) -> float:
    """Median wall time of n runs; the last run's stdout goes to `out` (or nowhere)."""
    return statistics.median(run(argv, env, out) for _ in range(n))


def side_by_side(n: int, ours: list[str], theirs: list[str], env: dict[str, str],
                 ours_out: Path | None = None, theirs_out: Path | None = None
                 ) -> tuple[float, float]:
    """Median wall times of `ours` and `theirs`, run in turn n times each (ours first
    in one round, theirs in the next): both meet the same moments of a VM whose speed
    moves from minute to minute."""
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        if i % 2 == 0:
            a.append(run(ours, env, ours_out))
            b.append(run(theirs, env, theirs_out))
        else:
            b.append(run(theirs, env, theirs_out))
            a.append(run(ours, env, ours_out))
    return statistics.median(a), statistics.median(b)


def compile_bytecode() -> None:
    """Compile the project's modules, as pip does when it installs a package: else a
    shell with PYTHONDONTWRITEBYTECODE makes every measured command compile about 25
    modules from source (some 50 ms a process start)."""
    import compileall
    for package in ("collector", "dashboard", "testcluster"):
        if not compileall.compile_dir(ROOT / package, quiet=1):
            raise SystemExit(f"compiling {ROOT / package} failed")


def machine(env: dict[str, str]) -> dict:
    """What the figures were measured on: CPU, cores, memory, OS, Slurm."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    os_name = next((line.split("=", 1)[1].strip('"') for line in
                    Path("/etc/os-release").read_text().splitlines()
                    if line.startswith("PRETTY_NAME=")), "unknown")
    slurm = subprocess.run(["sacct", "--version"], env=env, capture_output=True, text=True,
                           check=False).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20),
            "os": os_name, "slurm": slurm, "python": sys.version.split()[0],
            "cpu_probe_s": cpu_probe()}


def cpu_probe() -> float:
    """How fast this (virtual) machine runs Python now: seconds for sum(range(3e7)),
    the best of 5, at the start of the run. A VM's speed moves from hour to hour: two
    runs' figures compare only as far as their probes do."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        sum(range(30_000_000))
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def month_bounds(run_dir: Path) -> tuple[str, str]:
    spec = json.loads((run_dir / "etc" / "history.json").read_text())
    start = time.gmtime(spec["start"])
    y, m = (start.tm_year, start.tm_mon + 1) if start.tm_mon < 12 else (start.tm_year + 1, 1)
    return time.strftime("%Y-%m-%d", start), f"{y:04d}-{m:02d}-01"


def sacct_dump(first: str, until: str | None = None) -> list[str]:
    """The collector's own sacct command for everything from `first` (a date) to
    `until` (a date; default now)."""
    from collector import clock
    from collector.slurm.commands import new_delimiter, sacct_argv
    end = calendar.timegm(time.strptime(until, "%Y-%m-%d")) if until else int(clock.now())
    return sacct_argv(calendar.timegm(time.strptime(first, "%Y-%m-%d")), end, None,
                      new_delimiter())


def _config(work: Path, name: str, first: str, extra: str = "") -> tuple[Path, Path]:
    store = work / f"store-{name}"
    shutil.rmtree(store, ignore_errors=True)
    config = work / f"facility-{name}.toml"
    text = (ROOT / "testcluster" / "facility.toml").read_text()
    text = text.replace('path = "var/store"', f'path = "{store}"')
    text = text.replace('source = "sacct"', f'source = "sacct"\nhistory_start = {first}{extra}')
    config.write_text(text)
    return config, store


def _mb(store: Path) -> float:
    return sum(f.stat().st_size for f in store.iterdir()) / 2**20


def bench_size(jobs: int, cli: list[str], env: dict[str, str], run_dir: Path,
               work: Path) -> dict:
    print(f"\n== {jobs:,} jobs in one month: backfill", flush=True)
    subprocess.run([*TESTCLUSTER, "backfill", *cli, "--months", "1", "--jobs",
                    str(jobs), "--seed", "1"], env=env, check=True)
    first, after = month_bounds(run_dir)
    config, store = _config(work, str(jobs), first)
    print("   sacct dump ...", flush=True)
    sacct_s = run(sacct_dump(first), env)
    print("   collect from empty ...", flush=True)
    peak_file = work / "peak.json"
    collect_s = run([*PEAK, str(peak_file), "collect", "--quiet", "--config", str(config)], env)
    peak = json.loads(peak_file.read_text())
    print("   collect again (nothing new) ...", flush=True)
    again_s = median_of(3, [*GPU_USAGE, "collect", "--quiet", "--config", str(config)], env)
    month = first[:7]
    print("   sreport vs report ...", flush=True)
    report_s, sreport_s = side_by_side(REPORT_ROUNDS, [
        *GPU_USAGE, "report", "--config", str(config), "--month", month, "--format", "json"],
        _sreport(first, after), env)
    size_mb = _mb(store)
    print("   exporter scrapes ...", flush=True)
    scrape = bench_scrapes(config, env)
    print("   dashboard in Chromium ...", flush=True)
    page = bench_dashboard(config, env, month)
    return {"jobs": jobs, "month": month, "sacct_s": round(sacct_s, 2),
            "collect_s": round(collect_s, 2), "collect_over_sacct": round(collect_s / sacct_s, 2),
            "collect_peak_rss_mb": round(peak["self_mb"]), "sacct_peak_rss_mb":
            round(peak["children_mb"]), "incremental_collect_s": round(again_s, 2),
            "sreport_s": round(sreport_s, 3), "report_s": round(report_s, 3),
            "report_over_sreport": round(report_s / sreport_s, 2),
            "store_mb": round(size_mb), **scrape, **page}


def bench_year(jobs: int, cli: list[str], env: dict[str, str], work: Path,
               reuse: bool) -> dict:
    """A year of a large site: 12 months of `jobs` (backfilled a month at a time, or the
    run dir's earlier backfill with --reuse), collected through sacct from an empty
    store; every month's report against sreport of the same month, the year's report
    against sreport of the year, no-op collection, exporter, dashboard, store size."""
    from testcluster import backfill, history

    result: dict = {"jobs": jobs, "months": 12}
    if reuse:
        lay = _layout(cli)
        if (lay.etc_dir / backfill.PROGRESS_FILE).exists():
            print("\n== finishing the run dir's interrupted backfill (--resume)", flush=True)
            t0 = time.perf_counter()
            subprocess.run([*TESTCLUSTER, "backfill", *cli, "--resume"], env=env, check=True)
            result["resume_s"] = round(time.perf_counter() - t0)
        spec = backfill.recorded_spec(lay)
        if spec.months != 12 or spec.jobs != jobs:
            raise SystemExit(f"--reuse: the run dir holds {spec.jobs:,} jobs over "
                             f"{spec.months} months, not {jobs:,} over 12")
        print(f"\n== {jobs:,} jobs over 12 months: the run dir's backfill", flush=True)
    else:
        print(f"\n== {jobs:,} jobs over 12 months: backfill", flush=True)
        t0 = time.perf_counter()
        subprocess.run([*TESTCLUSTER, "backfill", *cli, "--months", "12", "--jobs",
                        str(jobs), "--seed", "1"], env=env, check=True)
        result["backfill_s"] = round(time.perf_counter() - t0)
        spec = backfill.recorded_spec(_layout(cli))
    finished = _layout(cli).etc_dir / backfill.FINISHED_FILE
    if finished.exists():  # made a month at a time: its parts, resumed ones included
        parts = json.loads(finished.read_text())
        result |= {"backfill_generate_s": round(parts["generate_s"]),
                   "backfill_write_s": round(parts["write_s"]),
                   "backfill_rollup_s": round(parts["rollup_s"])}
    first = history.day(spec.start)
    months = [(time.strftime("%Y-%m", time.gmtime(history.add_months(spec.start, i))),
               history.day(history.add_months(spec.start, i)),
               history.day(history.add_months(spec.start, i + 1))) for i in range(12)]
    config, store = _config(work, f"year-{jobs}", first)
    # One sacct over the year would make slurmdbd build one answer of about 7 GB
    # (it holds a query's answer whole: about 700 MB per million records on 22.05):
    # the floor is the year dumped a month at a time, then to now, as an operator would.
    print("   sacct dump of the year, a month at a time ...", flush=True)
    sacct_s = sum(run(sacct_dump(start, end), env) for _, start, end in months)
    sacct_s += run(sacct_dump(months[-1][2]), env)
    print("   collect from empty ...", flush=True)
    peak_file = work / "peak.json"
    collect_s = run([*PEAK, str(peak_file), "collect", "--quiet", "--config", str(config)], env)
    peak = json.loads(peak_file.read_text())
    print("   collect again (nothing new) ...", flush=True)
    again_s = median_of(3, [*GPU_USAGE, "collect", "--quiet", "--config", str(config)], env)
    print("   every month: sreport vs report ...", flush=True)
    ratios = []
    for month, start, end in months:
        argv = [*GPU_USAGE, "report", "--config", str(config), "--month", month, "--format",
                "json"]
        report_s, sreport_s = side_by_side(REPORT_ROUNDS, argv, _sreport(start, end), env,
                                           work / "report.json", work / "sreport.txt")
        ratios.append((month, round(sreport_s, 3), round(report_s, 3), _rolled_up(work)))
    year = time.strftime("%Y", time.gmtime(history.add_months(spec.start, 11)))
    print(f"   the year {year}: sreport vs report ...", flush=True)
    argv = [*GPU_USAGE, "report", "--config", str(config), "--year", year, "--format", "json"]
    year_report_s = median_of(3, argv, env, work / "report.json")
    year_sreport_s = median_of(3, _sreport(f"{year}-01-01", f"{int(year) + 1}-01-01"), env,
                               work / "sreport.txt")
    year_rolled = _rolled_up(work)
    size_mb = _mb(store)
    print("   exporter scrapes ...", flush=True)
    scrape = bench_scrapes(config, env)
    print("   dashboard in Chromium ...", flush=True)
    page = bench_dashboard(config, env, months[-1][0])
    compared = [r for r in ratios if r[3]]
    worst = max(compared, key=lambda r: r[2] / r[1]) if compared else None
    return {**result, "first_month": months[0][0], "sacct_s": round(sacct_s, 2),
            "collect_s": round(collect_s, 2), "collect_over_sacct": round(collect_s / sacct_s, 2),
            "collect_peak_rss_mb": round(peak["self_mb"]),
            "sacct_peak_rss_mb": round(peak["children_mb"]),
            "incremental_collect_s": round(again_s, 2),
            "month_reports": [{"month": m, "sreport_s": a, "report_s": b,
                               "sreport_rolled_up": rolled,
                               "report_over_sreport": round(b / a, 2) if rolled else None}
                              for m, a, b, rolled in ratios],
            "slowest_month_report_s": max(r[2] for r in ratios),
            "worst_month": worst and worst[0], "worst_month_report_over_sreport":
            worst and round(worst[2] / worst[1], 2),
            "year": year, "year_sreport_s": round(year_sreport_s, 3),
            "year_report_s": round(year_report_s, 3), "year_sreport_rolled_up": year_rolled,
            "year_report_over_sreport": round(year_report_s / year_sreport_s, 2)
            if year_rolled else None,
            "store_mb": round(size_mb), "store_mb_per_million_jobs":
            round(size_mb / (jobs / 1e6), 1), **scrape, **page}


def _rolled_up(work: Path) -> bool:
    """Whether slurmdbd has rolled the period up, from the last timed runs' output
    (work/report.json, work/sreport.txt): sreport's root account shows the GPU-minutes
    the report counts (else its time is that of an empty answer)."""
    got = json.loads((work / "report.json").read_text())
    root = next((int(line.split("|")[5]) for line in
                 (work / "sreport.txt").read_text().splitlines()
                 if line.split("|")[1:3] == ["root", ""]), 0)
    return abs(got["capacity"]["allocated_gpu_hours"] * 60 - root) <= 1 and root > 0


def _sreport(start: str, end: str) -> list[str]:
    return ["sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
            "AccountUtilizationByUser", f"start={start}", f"end={end}"]


def _layout(cli: list[str]):
    from testcluster.layout import Layout
    return Layout(Path(cli[cli.index("--run-dir") + 1]), _port(cli))


def _port(cli: list[str]) -> int:
    return int(cli[cli.index("--base-port") + 1])


STEPS_DUMP_MAX = 200_000


def bench_gpu_use(jobs: int, cli: list[str], env: dict[str, str], run_dir: Path,
                  work: Path) -> dict:
    """Collection and report with and without the jobs' steps, side by side."""
    from collector import clock
    from collector.slurm.commands import _steps_common, sacct_time

    print(f"\n== {jobs:,} jobs in one month with steps: backfill", flush=True)
    t0 = time.perf_counter()
    subprocess.run([*TESTCLUSTER, "backfill", *cli, "--months", "1", "--jobs",
                    str(jobs), "--seed", "1"], env=env, check=True)
    backfill_s = time.perf_counter() - t0
    first, _ = month_bounds(run_dir)
    month = first[:7]
    start = calendar.timegm(time.strptime(first, "%Y-%m-%d"))
    print("   sacct dumps (jobs, steps) ...", flush=True)
    sacct_s = run(sacct_dump(first), env)
    # sacct's one-call dump with steps is a reference only (slurmdbd queries each job's
    # steps: 120 s at 100,000 jobs); above that it is left out to keep the run short.
    steps_s = run([*_steps_common(None), f"--starttime={sacct_time(start)}",
                   f"--endtime={sacct_time(int(clock.now()))}"], env) \
        if jobs <= STEPS_DUMP_MAX else None
    result = {"jobs": jobs, "month": month, "backfill_s": round(backfill_s, 1),
              "sacct_jobs_s": round(sacct_s, 2),
              "sacct_steps_s": round(steps_s, 2) if steps_s is not None else None}
    for mode in ("off", "auto"):
        config, store = _config(work, f"{jobs}-{mode}", first, f'\ngpu_steps = "{mode}"')
        print(f"   collect with gpu_steps = {mode} ...", flush=True)
        peak_file = work / "peak.json"
        took = run([*PEAK, str(peak_file), "collect", "--quiet", "--config", str(config)], env)
        peak = json.loads(peak_file.read_text())
        report_s = median_of(3, [*GPU_USAGE, "report", "--config", str(config), "--month",
                                 month, "--format", "json"], env)
        result |= {f"collect_{mode}_s": round(took, 2),
                   f"collect_{mode}_peak_rss_mb": round(peak["self_mb"]),
                   f"report_{mode}_s": round(report_s, 3), f"store_{mode}_mb": round(_mb(store), 1)}
    result["collect_ratio"] = round(result["collect_auto_s"] / result["collect_off_s"], 2)
    result["report_ratio"] = round(result["report_auto_s"] / result["report_off_s"], 2)
    result["store_growth_bytes_per_job"] = round(
        (result["store_auto_mb"] - result["store_off_mb"]) * 2**20 / jobs)
    return result


def bench_sources(jobs: int, cli: list[str], env: dict[str, str], lay, work: Path) -> dict:
    from collector.slurm.commands import SlurmError
    from collector.slurm.pyslurm_source import load_pyslurm

    print(f"\n== {jobs:,} jobs in one month on Slurm {lay.slurm}: backfill", flush=True)
    subprocess.run([*TESTCLUSTER, "backfill", *cli, "--months", "1", "--jobs",
                    str(jobs), "--seed", "1"], env=env, check=True)
    first, _ = month_bounds(lay.run_dir)
    print("   sacct dump ...", flush=True)
    result = {"jobs": jobs, "slurm": lay.slurm,
              "sacct_dump_s": round(run(sacct_dump(first), env), 2)}
    base = (ROOT / "testcluster" / "facility.toml").read_text().replace(
        'source = "sacct"', f'source = "sacct"\nhistory_start = {first}')
    variants = {
        "sacct": "",
        "slurmrestd_socket": f'[slurmrestd]\nurl = "unix:{lay.rest_socket}"\n',
        "slurmrestd_jwt": f'[slurmrestd]\nurl = "http://127.0.0.1:{lay.rest_port}"\n'
                          f'user = "slurmrest"\ntoken_file = "{lay.rest_token_file}"\n',
        "pyslurm": "",
    }
    for name, extra in variants.items():
        if name == "pyslurm":
            try:
                load_pyslurm()
            except SlurmError as exc:
                result["pyslurm"] = f"n/a: {exc}".split(";")[0]
                continue
        store = work / f"store-{name}"
        shutil.rmtree(store, ignore_errors=True)
        source = name.split("_")[0]
        text = base.replace('path = "var/store"', f'path = "{store}"').replace(
            'source = "sacct"', f'source = "{source}"') + "\n" + extra
        config = work / f"facility-{name}.toml"
        config.write_text(text)
        print(f"   collect through {name} ...", flush=True)
        took = run([*GPU_USAGE, "collect", "--quiet", "--config", str(config)], env)
        result[f"collect_{name}_s"] = round(took, 2)
        result[f"collect_{name}_over_sacct_dump"] = round(took / result["sacct_dump_s"], 2)
    return result


def bench_scrapes(config: Path, env: dict[str, str], scrapes: int = 200) -> dict:
    """Start the exporter, wait for its first views, then time scrapes over HTTP."""
    from testcluster.ports import free_port
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*GPU_USAGE, "exporter", "--config", str(config), "--address",
                             "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 300:
                    raise SystemExit("the exporter did not start") from None
                time.sleep(0.1)
        ready_s = time.perf_counter() - t0
        times = []
        for _ in range(scrapes):
            t1 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode()
            times.append(time.perf_counter() - t1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    times.sort()
    series = [line for line in body.splitlines() if line and not line.startswith("#")]
    prepare = next((float(line.split()[-1]) for line in series if line.startswith(
        'gpu_usage_exporter_refresh_duration_seconds{source="store"}')), None)
    return {"exporter_ready_s": round(ready_s, 2),
            "store_view_s": prepare and round(prepare, 3),
            "scrape_median_ms": round(statistics.median(times) * 1000, 2),
            "scrape_p95_ms": round(times[int(0.95 * len(times))] * 1000, 2),
            "series_per_scrape": len(series), "scrape_bytes": len(body.encode())}


def bench_dashboard(config: Path, env: dict[str, str], month: str, warm: int = 5) -> dict:
    """Seconds until the overview page of `month` is drawn in Chromium: cold, then warm."""
    from testcluster.browser import chromium, dashboard, open_page, wait_rendered

    with dashboard(config, env) as url:
        driver = chromium()
        try:
            times = []
            for _ in range(1 + warm):
                t0 = time.perf_counter()
                driver.get(f"{url}/?month={month}")
                wait_rendered(driver, charts=3, timeout_s=120)
                times.append(time.perf_counter() - t0)
            # An operator with the dashboard open: back to the overview from another page.
            switches = []
            for _ in range(warm):
                open_page(driver, "categories", "Categories")
                t0 = time.perf_counter()
                open_page(driver, "overview", "GPU usage", charts=3)
                switches.append(time.perf_counter() - t0)
        finally:
            driver.quit()
    return {"overview_cold_s": round(times[0], 2),
            "overview_warm_s": round(statistics.median(times[1:]), 2),
            "overview_in_session_s": round(statistics.median(switches), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, action="append", help="jobs in the month (repeat)")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--base-port", type=int, default=26800)  # below the ephemeral range
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--dashboard-only", type=Path, metavar="CONFIG",
                        help="only the dashboard figures, on the store of this policy file")
    parser.add_argument("--month", help="with --dashboard-only: the month to open")
    parser.add_argument("--sources", action="store_true",
                        help="compare collection through sacct, slurmrestd and pyslurm")
    parser.add_argument("--gpu-use", action="store_true",
                        help="collection and report with and without the jobs' steps")
    parser.add_argument("--year", action="store_true",
                        help="a year of a large site: --jobs over 12 months (each size)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --year and --run-dir: the run dir's earlier backfill "
                             "(the cluster is started if it is down, and left running)")
    parser.add_argument("--slurm", default=None,
                        help="with --sources (default 22.05) or --gpu-use (default 24.11): "
                             "the Slurm release")
    args = parser.parse_args()
    compile_bytecode()
    if args.dashboard_only:
        env = dict(os.environ, TZ="UTC", PYTHONPATH=str(ROOT))
        page = bench_dashboard(args.dashboard_only, env, args.month)
        print(json.dumps(page))
        if args.out and args.out.exists() and args.jobs:
            data = json.loads(args.out.read_text())
            for r in data["results"]:
                if r["jobs"] == args.jobs[0] and r["month"] == args.month:
                    r.update(page)
            args.out.write_text(json.dumps(data, indent=2) + "\n")
            print(f"updated {args.out}")
        return
    sizes = args.jobs or ([100_000] if args.sources else [100_000, 1_000_000])
    work = Path(tempfile.mkdtemp(prefix="gpu-usage-bench-"))
    os.chmod(work, 0o755)
    run_dir = args.run_dir or work / "cluster"
    cli = ["--run-dir", str(run_dir), "--base-port", str(args.base_port)]
    from testcluster.layout import Layout
    release = args.slurm or ("24.11" if args.gpu_use else "22.05" if args.sources else None)
    lay = Layout(run_dir, args.base_port, release=release)
    env = dict(lay.env(), TZ="UTC", PYTHONPATH=str(ROOT))
    subprocess.run([*TESTCLUSTER, "up", *cli,
                    *(["--slurm", release] if release else [])], env=env, check=True)
    env = dict(lay.env(), TZ="UTC", PYTHONPATH=str(ROOT))
    host = machine(env)
    results = []
    try:
        for jobs in sizes:
            results.append(bench_sources(jobs, cli, env, lay, work) if args.sources else
                           bench_gpu_use(jobs, cli, env, run_dir, work) if args.gpu_use else
                           bench_year(jobs, cli, env, work, args.reuse)
                           if args.year else bench_size(jobs, cli, env, run_dir, work))
    finally:
        if not (args.keep or args.reuse):
            subprocess.run([*TESTCLUSTER, "down", *cli], env=env, check=False)
    cols = list(results[0])
    cols = [c for c in cols if not isinstance(results[0][c], list)]
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "|".join("---:" for _ in cols) + "|")
    for r in results:
        print("| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c])
                                for c in cols) + " |")
    for r in results:
        for m in r.get("month_reports", []):
            print(f"  {m['month']}: report {m['report_s']} s, sreport {m['sreport_s']} s "
                  + (f"({m['report_over_sreport']}x)" if m["sreport_rolled_up"] else
                     "(not rolled up by slurmdbd: sreport's time is an empty answer's)"))
    if args.out:
        from collector import clock
        measured = time.strftime("%Y-%m-%d", time.gmtime(clock.now()))
        args.out.write_text(json.dumps({"measured_at": measured, "machine": host,
                                        "results": results}, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
