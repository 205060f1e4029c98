"""`gpu-usage collect` and `gpu-usage report` on the real test cluster, against
Slurm's own numbers: sacct for the stored records, sreport for every account's
GPU-minutes and for the cluster's allocated, down and planned-down time."""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.slurm.commands import new_delimiter, run_sacct
from collector.slurm.sacct_parser import parse_sacct
from collector.store.database import Store, row_job
from testcluster import backfill, history
from testcluster.policy import policy_text

from .conftest import run_cli, slurm

pytestmark = pytest.mark.integration
MONTHS, JOBS, SEED = 2, 4000, 23


def gpu_usage(lay, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "collector", *args], env=lay.env(),
                          capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"gpu-usage {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def write_policy(tmp: Path, start: int, timezone: str = "UTC") -> Path:
    """The test cluster's policy on the history that starts at `start` (its allocations
    moved with it, so the same ones are active on any day the tests run)."""
    path = tmp / "facility.toml"
    path.write_text(policy_text(start, tmp / "store", timezone))
    return path


@pytest.fixture(scope="module")
def hist(lay, cli_args):
    run_cli("cluster", "backfill", *cli_args, "--months", str(MONTHS), "--jobs", str(JOBS),
            "--seed", str(SEED))
    return history.generate(backfill.recorded_spec(lay), lay.nodes)


@pytest.fixture(scope="module")
def policy(lay, hist, tmp_path_factory):
    path = write_policy(tmp_path_factory.mktemp("utc"), hist.start)
    out = gpu_usage(lay, "collect", "--config", str(path)).stdout
    assert f"collected testai: {len(hist.jobs):,} new" in out or " new," in out
    return path


def report(lay, policy: Path, month: str) -> dict:
    return json.loads(gpu_usage(lay, "report", "--config", str(policy), "--month", month,
                                "--format", "json").stdout)


def sreport_accounts(lay, start: str, end: str) -> dict[str, float]:
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "AccountUtilizationByUser", f"start={start}", f"end={end}")
    minutes = {}
    for line in out.splitlines():
        _, account, login, _, _, used = line.split("|")
        if not login:
            minutes[account] = int(used)
    return minutes


def sreport_utilization(lay, start: str, end: str) -> dict[str, int]:
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "utilization", f"start={start}", f"end={end}")
    _, _, allocated, down, planned, idle, _, reported = out.strip().split("|")
    return {"allocated": int(allocated), "down": int(down), "planned": int(planned),
            "reported": int(reported)}


def months(hist) -> list[tuple[str, str, str]]:
    """(YYYY-MM, sreport start, sreport end) of each backfilled month."""
    out = []
    for i in range(MONTHS):
        start, end = history.add_months(hist.start, i), history.add_months(hist.start, i + 1)
        out.append((time.strftime("%Y-%m", time.gmtime(start)), history.day(start),
                    history.day(end)))
    return out


def assert_accounts_equal_sreport(got: dict, reported: dict[str, int]) -> None:
    ours = {a["account"]: a["gpu_hours"] * 60 for a in got["accounts"]}
    categories = {c["category"]: c["gpu_hours"] * 60 for c in got["categories"]}
    checked = 0
    for account, minutes in reported.items():
        if account in ours:  # a project account (jobs run there, it has no children)
            assert abs(ours[account] - minutes) <= 1, account
            checked += 1
        elif account in categories:  # a category account: sreport includes its children
            assert abs(categories[account] - minutes) <= 1, account
            checked += 1
    assert checked >= 25
    assert abs(got["capacity"]["allocated_gpu_hours"] * 60 - reported["root"]) <= 1
    assert all(a["gpu_hours"] * 60 < 1 or a["account"] in reported for a in got["accounts"])


@pytest.mark.parametrize("index", range(MONTHS))
def test_every_account_equals_sreport_to_the_gpu_minute(lay, hist, policy, index):
    month, start, end = months(hist)[index]
    got = report(lay, policy, month)
    assert got["capacity"]["allocated_gpu_hours"] > 1000  # a real month, not an empty one
    assert_accounts_equal_sreport(got, sreport_accounts(lay, start, end))
    assert got["unmapped_accounts"] == [] and got["data_quality"]["ambiguous_accounts"] == {}


def _utc(text: str, fmt: str = "%Y-%m-%dT%H:%M:%S") -> int:
    return calendar.timegm(time.strptime(text, fmt))


def sacct_energy_by_account(lay, start: str, end: str) -> tuple[dict[str, float], int]:
    """Joules per account in [start, end), recomputed from sacct's ConsumedEnergyRaw
    (not through the collector's door): each finished GPU job's joules times the share
    of its run inside the window; and how many jobs had energy."""
    start_s, end_s = _utc(start, "%Y-%m-%d"), _utc(end, "%Y-%m-%d")
    out = slurm(lay, "sacct", "-X", "-a", "-D", "-n", "-P", "-S", start, "-E", end,
                "--format=Account,Start,End,ConsumedEnergyRaw,AllocTRES")
    joules: dict[str, float] = defaultdict(float)
    jobs = 0
    for line in out.splitlines():
        account, begun, ended, energy, tres = line.split("|")
        if not energy or "gres/gpu=" not in tres or "T" not in begun or "T" not in ended:
            continue  # no energy recorded, no GPUs, never ran or still running
        a, b = _utc(begun), _utc(ended)
        inside = min(b, end_s) - max(a, start_s)
        if b > a and inside > 0:
            joules[account] += int(energy) * inside / (b - a)
            jobs += 1
    return joules, jobs


@pytest.mark.parametrize("index", range(MONTHS))
def test_energy_by_category_equals_sacct_consumed_energy(lay, hist, policy, index):
    month, start, end = months(hist)[index]
    got = report(lay, policy, month)
    joules, jobs = sacct_energy_by_account(lay, start, end)
    assert got["energy"]["recorded"] and jobs > 100
    category_of = {a["account"]: a["category"] for a in got["accounts"]}
    expected: dict[str, float] = defaultdict(float)
    for account, j in joules.items():
        expected[category_of[account]] += j
    ours = {c["category"]: c["kwh"] for c in got["energy"]["categories"]}
    assert set(expected) <= set(ours)
    for category, j in expected.items():   # kWh shown to 1/1000
        assert abs(ours[category] - j / 3.6e6) <= 0.001, (month, category)
    assert abs(got["energy"]["total"]["kwh"] - sum(expected.values()) / 3.6e6) <= 0.001
    accounts = {a["account"]: a["kwh"] for a in got["accounts"]}
    for account, j in joules.items():      # and every account's
        assert abs(accounts[account] - j / 3.6e6) <= 0.001, (month, account)


@pytest.mark.parametrize("index", range(MONTHS))
def test_capacity_equals_sreport_utilization(lay, hist, policy, index):
    month, start, end = months(hist)[index]
    got = report(lay, policy, month)
    cap, sreport = got["capacity"], sreport_utilization(lay, start, end)
    assert cap["nominal_gpu_hours"] * 60 == sreport["reported"]
    assert abs(cap["allocated_gpu_hours"] * 60 - sreport["allocated"]) <= 1
    assert abs(cap["down_gpu_hours"] * 60 - sreport["down"]) <= 1
    view = got["data_quality"]["sreport_view"]
    assert abs(view["planned_down_gpu_hours"] * 60 - sreport["planned"]) <= 1
    # Ours: every GPU in a maintenance window is planned down (16 GPUs x its hours).
    m_start, m_end = history.add_months(hist.start, index), history.add_months(hist.start,
                                                                              index + 1)
    maint_s = sum(max(0, min(m.end, m_end) - max(m.start, m_start)) for m in hist.maintenance)
    assert cap["planned_down_gpu_hours"] == pytest.approx(16 * maint_s / 3600, abs=1 / 60)
    assert cap["available_gpu_hours"] == pytest.approx(
        cap["nominal_gpu_hours"] - cap["down_gpu_hours"] - cap["planned_down_gpu_hours"])


def test_amsterdam_months_equal_sreport_over_the_same_utc_hours(lay, hist, tmp_path):
    """Months in the facility's zone: October in Amsterdam starts at 22:00 UTC."""
    path = write_policy(tmp_path, hist.start, "Europe/Amsterdam")
    gpu_usage(lay, "collect", "--config", str(path))
    month, _, _ = months(hist)[1]
    got = report(lay, path, month)
    start = datetime.fromisoformat(got["period"]["start"]).astimezone(UTC)
    end = datetime.fromisoformat(got["period"]["end"]).astimezone(UTC)
    assert start.hour in (22, 23) and start.day >= 28
    fmt = "%Y-%m-%dT%H:%M:%S"
    assert_accounts_equal_sreport(got, sreport_accounts(lay, start.strftime(fmt),
                                                        end.strftime(fmt)))


def test_the_store_holds_exactly_what_sacct_shows(lay, hist, policy):
    from collector.config import load

    settings = load(policy)
    with Store.open_reader(settings.store.path) as store:
        until = store.last_collection("testai").window_end_s
        stored = {(r[0], r[1], r[2]): row_job(r[:-1])
                  for r in store.conn.execute("SELECT * FROM jobs")}
    d = new_delimiter()
    source = parse_sacct(run_sacct(hist.start, until, None, d, env=lay.env()), "testai", d)
    assert source.rejected == []
    finished = {r.key: r for r in source.records if r.end_s is not None and r.end_s < until}
    assert len(finished) >= len(hist.jobs) - 5
    for key, record in finished.items():
        assert stored.get(key) == record, key
    assert len([k for k in stored if k[1] < 5_000_000]) == len(hist.jobs)


def test_collecting_again_finds_nothing_new_and_changes_no_figure(lay, hist, policy):
    month = months(hist)[0][0]
    before = report(lay, policy, month)
    out = gpu_usage(lay, "collect", "--config", str(policy)).stdout
    assert " 0 new, 0 updated" in out
    after = report(lay, policy, month)
    for key in ("capacity", "categories", "accounts", "users", "allocations"):
        assert after[key] == before[key], key


def test_the_callers_slurm_variables_change_nothing(lay, hist, policy, tmp_path):
    """A cron job or an operator's shell may carry SLURM_TIME_FORMAT (relative times
    made every collection fail) or the tools' own option variables (SQUEUE_USERS,
    SINFO_PARTITION narrow what they show): the door runs every tool without them."""
    from collector.config import load
    from collector.slurm.sources import live_nodes

    hostile = dict(lay.env(), SLURM_TIME_FORMAT="relative", SACCT_FEDERATION="1",
                   SACCTMGR_FORMAT="x", SQUEUE_USERS="nobody", SINFO_PARTITION="nosuch",
                   SINFO_FORMAT="%n")
    path = write_policy(tmp_path, hist.start)
    proc = subprocess.run([sys.executable, "-m", "collector", "collect", "--config", str(path)],
                          env=hostile, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"collected testai: {len(hist.jobs):,} new" in proc.stdout or " new," in proc.stdout
    for month, _, _ in months(hist):
        got, want = report(lay, path, month), report(lay, policy, month)
        for key in ("capacity", "categories", "accounts", "users", "allocations"):
            assert got[key] == want[key], (month, key)
    settings = load(path)
    nodes, rejected = live_nodes(settings, hostile)
    assert rejected == [] and len(nodes) == len(lay.nodes)
    assert sorted(nodes) == sorted(live_nodes(settings, lay.env())[0])


def test_every_format_renders_the_same_month(lay, hist, policy, tmp_path):
    month = months(hist)[0][0]
    got = report(lay, policy, month)
    science = next(c for c in got["categories"] if c["category"] == "science")
    table = gpu_usage(lay, "report", "--config", str(policy), "--month", month).stdout
    assert f"{science['gpu_hours']:,.1f}" in table and "Categories against their quota" in table
    md = gpu_usage(lay, "report", "--config", str(policy), "--month", month, "--format",
                   "md").stdout
    assert md.startswith("# ") and "| science | national |" in md
    out = tmp_path / "r" / "report.csv"
    gpu_usage(lay, "report", "--config", str(policy), "--month", month, "--format", "csv",
              "--out", str(out))
    lines = out.read_text().splitlines()
    header = lines.index("# categories") + 1
    row = next(line for line in lines[header:] if line.startswith("science,"))
    assert row.split(",")[2] == str(science["gpu_hours"])


def test_the_network_report_over_two_sites_equals_sreport_per_site(lay, hist, policy,
                                                                   tmp_path):
    """The store exported twice as two sites: each site's row and categories equal
    sreport's root and category accounts, and the network's row is their sum."""
    month, start, end = months(hist)[0]
    for site in ("Groningen", "Bologna"):
        gpu_usage(lay, "export", "--config", str(policy), "--format", "parquet", "--out",
                  str(tmp_path / site), "--site", site)
    got = json.loads(gpu_usage(
        lay, "report", "--month", month, "--format", "json", "--site-export",
        str(tmp_path / "Groningen"), "--site-export", str(tmp_path / "Bologna")).stdout)
    reported = sreport_accounts(lay, start, end)
    utilization = sreport_utilization(lay, start, end)
    rows = {r["site"]: r for r in got["sites"]}
    assert set(rows) == {"Groningen", "Bologna", "(network)"}
    for site in ("Groningen", "Bologna"):
        assert abs(rows[site]["gpu_hours"] * 60 - reported["root"]) <= 1
        assert abs(rows[site]["down_gpu_hours"] * 60 - utilization["down"]) <= 1
        categories = {c["category"]: c for c in got["categories"] if c["site"] == site}
        checked = [name for name in categories if name in reported]
        assert len(checked) >= 3
        for name in checked:
            assert abs(categories[name]["gpu_hours"] * 60 - reported[name]) <= 1, name
    assert abs(rows["(network)"]["gpu_hours"] * 60 - 2 * reported["root"]) <= 2
    own = report(lay, policy, month)
    assert rows["Groningen"]["available_gpu_hours"] == own["capacity"]["available_gpu_hours"]


def test_an_unreachable_slurm_is_a_clear_failure_and_changes_nothing(lay, hist, policy):
    month = months(hist)[0][0]
    before = report(lay, policy, month)
    env = dict(lay.env(), SLURM_CONF="/nonexistent/slurm.conf")
    proc = subprocess.run([sys.executable, "-m", "collector", "collect", "--config",
                           str(policy)], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 1
    assert "collection failed, the store is unchanged" in proc.stderr
    assert "sacct" in proc.stderr or "sacctmgr" in proc.stderr
    assert report(lay, policy, month)["categories"] == before["categories"]
