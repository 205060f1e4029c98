"""A network of sites: each site's Parquet export (collector.network.parquet) and the
network's report over several exports (collector.network.report, DuckDB), checked
against each site's own report; and the same files read by Apache Spark."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="the network export needs DuckDB (gpu-usage[network])")

import duckdb  # noqa: E402

from collector.collect import collect  # noqa: E402
from collector.engine import periods  # noqa: E402
from collector.engine.report import build_report  # noqa: E402
from collector.network.export import ExportError, export_parquet  # noqa: E402
from collector.network.report import NETWORK, NetworkError, network_report, render  # noqa: E402
from collector.store import parquet  # noqa: E402
from collector.store.database import Store  # noqa: E402

from . import fakeslurm  # noqa: E402

NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
# Site B: job 101 (8 GPUs) ends 2 hours later, and one more science job of 5 GPU-hours.
SITE_B_JOBS = [j.replace("2026-10-01T02:00:00", "2026-10-01T04:00:00")
               if j.startswith("101|") else j for j in fakeslurm.JOBS] + [
    fakeslurm.line(190, "alice", "nl_x", "COMPLETED", "2026-10-12T00:00:00",
                   "2026-10-12T00:00:00", "2026-10-12T05:00:00", fakeslurm.gpu(1))]
POLICY_TOML = """\
[facility]
name = "Fake Factory"
[slurm]
cluster = "testai"
history_start = "2026-09-01"
[store]
path = "{store}"
[[pools]]
name = "eurohpc"
share = 0.5
[[pools]]
name = "national"
share = 0.5
[[categories]]
name = "eu_science"
pool = "eurohpc"
quota_share = 0.3
accounts_under = ["eu_science"]
[[categories]]
name = "commercial"
pool = "eurohpc"
quota_share = 0.1
accounts_under = ["commercial"]
[[categories]]
name = "science"
pool = "national"
quota_share = 0.5
accounts_under = ["science"]
"""


def _site(tmp: Path, name: str, jobs: list[str]) -> tuple:
    home = tmp / name
    home.mkdir()
    settings, env = fakeslurm.make(home, jobs)
    collect(settings, now=NOW, env=env)
    out = tmp / f"export-{name}"
    with Store.open_reader(settings.store.path) as store:
        export_parquet(store, settings, out, name, None, NOW)
        site = build_report(store, settings,
                            periods.parse_month("2026-10", settings.facility.timezone), now=NOW)
    return out, site


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("network")
    a_dir, a = _site(tmp, "Groningen", fakeslurm.JOBS)
    b_dir, b = _site(tmp, "Bologna", SITE_B_JOBS)
    return {"dirs": [a_dir, b_dir], "reports": {"Groningen": a, "Bologna": b}}


def _october() -> periods.Period:
    return periods.parse_month("2026-10", "UTC")


def test_site_b_differs_from_site_a(sites):
    a, b = (sites["reports"][s] for s in ("Groningen", "Bologna"))
    assert b.capacity.allocated_s == a.capacity.allocated_s + (2 * 8 + 5) * 3600


def test_the_network_report_is_each_sites_report_and_their_sum(sites):
    net = network_report(sites["dirs"], _october(), NOW)
    reports = sites["reports"]
    by_site = {r.site: r for r in net.sites}
    for name, site in reports.items():
        mine = by_site[name]
        assert (mine.available_s, mine.nominal_s, mine.down_s, mine.planned_down_s,
                mine.used_s) == (site.capacity.available_s, site.capacity.nominal_s,
                                 site.capacity.down_s, site.capacity.planned_down_s,
                                 site.capacity.allocated_s)
        cats = {c.category: c for c in net.categories if c.site == name}
        for c in site.categories:
            assert cats[c.category].used_s == c.used_s
            assert cats[c.category].quota_s == pytest.approx(c.quota_s)
        unmapped = sum(u.used_s for u in site.unmapped_accounts)
        assert cats.get("(unmapped)") and cats["(unmapped)"].used_s == unmapped
        pools = {p.pool: p for p in net.pools if p.site == name}
        for p in site.pools:
            assert (pools[p.pool].used_s, pools[p.pool].quota_s) == (
                p.used_s, pytest.approx(p.quota_s))
    total = by_site[NETWORK]
    assert total.used_s == sum(r.capacity.allocated_s for r in reports.values())
    assert total.available_s == sum(r.capacity.available_s for r in reports.values())
    network_cats = {c.category: c for c in net.categories if c.site == NETWORK}
    for category in ("eu_science", "commercial", "science"):
        assert network_cats[category].used_s == sum(
            next(c.used_s for c in r.categories if c.category == category)
            for r in reports.values())
        assert network_cats[category].quota_s == pytest.approx(sum(
            next(c.quota_s for c in r.categories if c.category == category)
            for r in reports.values()))
    assert sum(t.used_s for t in net.gpu_types) == total.used_s


def _same_as_site_report(settings, env, tmp: Path, month: str) -> None:
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        export_parquet(store, settings, tmp / "export", "Here", None, NOW)
        site = build_report(store, settings,
                            periods.parse_month(month, settings.facility.timezone), now=NOW)
    net = network_report([tmp / "export"], periods.parse_month(month, "UTC"), NOW)
    mine = net.sites[0]
    assert (mine.available_s, mine.used_s, mine.down_s) == (
        site.capacity.available_s, site.capacity.allocated_s, site.capacity.down_s)
    cats = {c.category: c for c in net.categories if c.site == "Here"}
    for c in site.categories:
        assert (cats[c.category].used_s, cats[c.category].quota_s) == (
            c.used_s, pytest.approx(c.quota_s)), c.category


def test_a_month_before_the_first_job_has_the_sites_capacity(tmp_path):
    """September: history from 09-01, the first job on 09-30 (capacity all month)."""
    settings, env = fakeslurm.make(tmp_path)
    _same_as_site_report(settings, env, tmp_path, "2026-09")


def test_a_site_in_another_zone_with_an_absolute_quota(tmp_path):
    """Amsterdam's October (a DST change inside it) and a quota in GPU-hours a month."""
    from collector.config import parse

    _, env = fakeslurm.make(tmp_path)
    policy = dict(fakeslurm.POLICY, facility={"name": "Fake", "timezone": "Europe/Amsterdam"},
                  store={"path": str(tmp_path / "store")})
    policy["categories"] = [dict(c, quota_gpu_hours=500) if c["name"] == "science" else c
                            for c in policy["categories"]]
    _same_as_site_report(parse(policy), env, tmp_path, "2026-10")


def test_a_month_without_data_is_zero_not_an_error(sites):
    net = network_report(sites["dirs"], periods.parse_month("2025-01", "UTC"), NOW)
    assert [(r.site, r.used_s, r.available_s) for r in net.sites] == [
        ("Bologna", 0, 0), ("Groningen", 0, 0), (NETWORK, 0, 0)]


def test_the_files_are_partitioned_private_and_hold_no_people(sites):
    root = sites["dirs"][0]
    manifest = json.loads((root / "manifest.json").read_text())
    assert (manifest["schema"], manifest["version"], manifest["site"]) == (
        "gpu-usage-export", 1, "Groningen")
    assert set(manifest["tables"]) == set(parquet.SCHEMA)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert "usage_day/cluster=testai/month=2026-10/part-0.parquet" in files
    assert "jobs/cluster=testai/month=2026-10/part-0.parquet" in files
    assert "categories/cluster=testai/part-0.parquet" in files
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    seen = set()
    for table in parquet.SCHEMA:
        rel = duckdb.sql(f"SELECT * FROM read_parquet('{root}/{table}/**/*.parquet', "
                         "hive_partitioning=true)")
        assert {c for c, _, _ in parquet.SCHEMA[table]} == set(rel.columns)
        for row in rel.fetchall():
            seen.update(str(v) for v in row)
    users = {line.split("|")[3] for line in fakeslurm.JOBS}
    assert users == {"anna", "maria", "kim", "omar"} and not users & seen
    assert not {"job", "a|name with [bold]markup[/bold] <b>", "pretrain"} & seen


def test_the_schema_is_what_the_files_hold(sites):
    root = sites["dirs"][1]
    for table, columns in parquet.SCHEMA.items():
        hive = ", ".join(f"'{c}': VARCHAR" for c, _, _ in columns if c in ("cluster", "month"))
        described = duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{root}/{table}/**/*.parquet', "
            f"hive_partitioning=true, hive_types={{{hive}}})").fetchall()
        types = {name: kind for name, kind, *_ in described}
        for name, kind, _ in columns:
            expected = "TIMESTAMP WITH TIME ZONE" if kind == "TIMESTAMPTZ" else kind
            assert types[name] == expected, (table, name)


def test_a_failed_export_leaves_the_earlier_one_and_no_debris(tmp_path, monkeypatch):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    out = tmp_path / "export"
    with Store.open_reader(settings.store.path) as store:
        export_parquet(store, settings, out, "Groningen", None, NOW)
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        real = parquet._write_table

        def fail_on_jobs(con, work, name, rows):
            if name == "jobs":
                raise OSError("disk full (injected)")
            real(con, work, name, rows)

        monkeypatch.setattr(parquet, "_write_table", fail_on_jobs)
        with pytest.raises(ExportError, match="cannot write the export to .*injected"):
            export_parquet(store, settings, out, "Elsewhere", None, NOW)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert json.loads((out / "manifest.json").read_text())["site"] == "Groningen"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "slurm", "store"]


def test_an_export_never_replaces_a_directory_that_is_not_one(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    webapp = tmp_path / "webapp"  # holds a manifest.json, but not ours
    webapp.mkdir()
    (webapp / "manifest.json").write_text('{"name": "my app"}')
    (webapp / "index.html").write_text("precious")
    (tmp_path / "file").write_text("precious")
    with Store.open_reader(settings.store.path) as store:
        for target in (out, webapp):
            with pytest.raises(ExportError, match="not an export"):
                export_parquet(store, settings, target, "Groningen", None, NOW)
        with pytest.raises(ExportError, match="is not a directory"):
            export_parquet(store, settings, tmp_path / "file", "Groningen", None, NOW)
        export_parquet(store, settings, tmp_path / "export", "Groningen", None, NOW)
        export_parquet(store, settings, tmp_path / "export", "Groningen", None, NOW)
    assert (out / "thesis.tex").read_text() == "precious"
    assert (webapp / "index.html").read_text() == "precious"
    assert (tmp_path / "file").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_exports_that_cannot_be_read_are_named(sites, tmp_path):
    with pytest.raises(NetworkError, match="no manifest.json"):
        network_report([tmp_path], _october(), NOW)
    newer = tmp_path / "newer"
    shutil.copytree(sites["dirs"][0], newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    with pytest.raises(NetworkError, match="version 2; this release reads version 1"):
        network_report([newer], _october(), NOW)
    (newer / "manifest.json").write_text("{not json")
    with pytest.raises(NetworkError, match="manifest.json: cannot be read"):
        network_report([newer], _october(), NOW)
    with pytest.raises(NetworkError, match="same site: Groningen"):
        network_report([sites["dirs"][0], sites["dirs"][0]], _october(), NOW)


def _rewrite(part: Path, select: str) -> None:
    duckdb.sql(f"COPY (SELECT {select} FROM read_parquet('{part}')) TO '{part}.new' "
               "(FORMAT parquet)")
    Path(f"{part}.new").replace(part)


def test_an_export_posing_as_another_site_or_missing_values_is_refused(sites, tmp_path):
    posing = tmp_path / "posing"
    shutil.copytree(sites["dirs"][1], posing)
    part = next((posing / "usage_day").rglob("*.parquet"))
    _rewrite(part, "* REPLACE ('Groningen' AS site)")
    with pytest.raises(NetworkError, match="rows name another site than its manifest's "
                                           "'Bologna'"):
        network_report([sites["dirs"][0], posing], _october(), NOW)
    empty = tmp_path / "empty"
    shutil.copytree(sites["dirs"][1], empty)
    part = next((empty / "categories").rglob("*.parquet"))
    _rewrite(part, "* REPLACE (CAST(NULL AS DOUBLE) AS quota_share)")
    with pytest.raises(NetworkError, match="without a value where the schema requires one"):
        network_report([empty], _october(), NOW)
    missing = tmp_path / "missing"
    shutil.copytree(sites["dirs"][1], missing)
    part = next((missing / "capacity_day").rglob("*.parquet"))
    _rewrite(part, "* EXCLUDE (gpus)")
    with pytest.raises(NetworkError, match="capacity_day"):
        network_report([missing], _october(), NOW)


def _broken(sites, tmp_path, table: str, select: str | None = None) -> tuple[Path, Path]:
    """A copy of site B's export with one file of `table` rewritten by `select`."""
    copy = tmp_path / f"broken-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(sites["dirs"][1], copy)
    part = next((copy / table).rglob("*.parquet"))
    if select is not None:
        _rewrite(part, select)
    return copy, part


@pytest.mark.parametrize(("table", "select", "message"), [
    ("usage_day", "* REPLACE (-1 - gpu_seconds AS gpu_seconds)",
     "rows with a negative gpu_seconds"),
    ("usage_day", "* REPLACE (gpu_seconds + 1 AS energy_gpu_seconds)",
     "rows with energy_gpu_seconds above gpu_seconds"),
    ("usage_day", "* REPLACE (gpu_seconds + 0.5 AS gpu_seconds)",
     "column gpu_seconds holds DECIMAL.*, not whole numbers"),
    ("usage_day", "* REPLACE (CAST(gpu_seconds AS DOUBLE) AS gpu_seconds)",
     "column gpu_seconds holds DOUBLE, not whole numbers"),
    ("capacity_day", "* REPLACE (available_gpu_seconds + 1 AS available_gpu_seconds)",
     "rows with available_gpu_seconds other than nominal - down - planned down"),
    ("capacity_day", "* REPLACE (-1 AS down_gpu_seconds, available_gpu_seconds + 1 AS "
     "available_gpu_seconds)", "rows with a negative figure"),
    ("categories", "* REPLACE (CAST('NaN' AS DOUBLE) AS quota_share)",
     "rows with a pool_share or quota_share outside 0..1"),
    ("categories", "* REPLACE (pool_share + 1 AS pool_share)",
     "rows with a pool_share or quota_share outside 0..1"),
    ("categories", "* REPLACE (CAST('-inf' AS DOUBLE) AS quota_gpu_hours_per_month)",
     "rows with a negative or infinite quota_gpu_hours_per_month"),
    ("usage_day", "* REPLACE (1000000000000 AS energy_joules, 0 AS energy_gpu_seconds)",
     "rows with joules without GPU-seconds with energy"),
    # DuckDB binds names regardless of case: hours in a "Gpu_Seconds" column
    ("usage_day", '* EXCLUDE (gpu_seconds), gpu_seconds / 3600.0 AS "Gpu_Seconds"',
     "column 'Gpu_Seconds' is not the schema's name"),
    ("categories", "* REPLACE (1.0 AS quota_share)",
     "1 clusters whose categories' quota shares add up to more than 1"),
    ("categories", "* REPLACE (CASE WHEN category = 'eu_science' THEN 0.2 ELSE pool_share "
     "END AS pool_share)", "1 pools of a cluster with more than one pool_share"),
    ("categories", "* REPLACE (0.75 AS pool_share)",
     "1 clusters whose pool shares add up to more than 1"),
])
def test_figures_no_site_can_have_are_refused_not_summed(sites, tmp_path, table, select,
                                                          message):
    broken, _ = _broken(sites, tmp_path, table, select)
    with pytest.raises(NetworkError, match=f"{broken / table}: .*{message}"):
        network_report([sites["dirs"][0], broken], _october(), NOW)


def _manifest_rows(export: Path, table: str, rows: int) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["rows"][table] = rows
    (export / "manifest.json").write_text(json.dumps(manifest))


def _rows_in(part: Path) -> int:
    return duckdb.sql(f"SELECT COUNT(*) FROM read_parquet('{part}')").fetchall()[0][0]


def test_a_row_twice_or_in_another_month_is_refused_not_counted_twice(sites, tmp_path):
    for table, keys in (("usage_day", "cluster, day, account, partition, gpu_type"),
                        ("capacity_day", "cluster, day"), ("categories", "cluster, category")):
        twice, part = _broken(sites, tmp_path, table)
        shutil.copy(part, part.with_name("part-1.parquet"))  # e.g. a copy synced twice
        rows = json.loads((twice / "manifest.json").read_text())["rows"][table]
        with pytest.raises(NetworkError, match=f"{twice / table}: {rows + _rows_in(part)} "
                                               f"rows in its files, {rows} in its manifest"):
            network_report([twice], _october(), NOW)
        _manifest_rows(twice, table, rows + _rows_in(part))  # the manifest forged too
        with pytest.raises(NetworkError, match=f"{twice / table}: [0-9,]+ keys \\({keys}\\)"):
            network_report([twice], _october(), NOW)
    # The same rows again under another category: still the same keys.
    relabelled, part = _broken(sites, tmp_path, "usage_day")
    duckdb.sql(f"COPY (SELECT * REPLACE ('eu_science' AS category) FROM read_parquet('{part}'))"
               f" TO '{part.with_name('part-1.parquet')}' (FORMAT parquet)")
    rows = json.loads((relabelled / "manifest.json").read_text())["rows"]["usage_day"]
    _manifest_rows(relabelled, "usage_day", rows + _rows_in(part))
    with pytest.raises(NetworkError, match="keys \\(cluster, day, account"):
        network_report([relabelled], _october(), NOW)
    moved, part = _broken(sites, tmp_path, "usage_day")
    month = part.parent
    other = month.with_name("month=1999-01")
    month.rename(other)
    with pytest.raises(NetworkError, match="rows with a day outside its month partition"):
        network_report([moved], _october(), NOW)


def test_an_export_missing_files_or_holding_others_is_refused(sites, tmp_path):
    """A partial sync, a sync without --delete, a link farm: refused, never read as a
    site that used nothing (or twice as much)."""
    def copy() -> Path:
        return _broken(sites, tmp_path, "usage_day")[0]

    gone = copy()
    shutil.rmtree(next((gone / "usage_day").glob("cluster=*")))
    with pytest.raises(NetworkError, match="usage_day: 0 rows in its files, [0-9,]+ in its "
                                           "manifest"):
        network_report([gone], _october(), NOW)
    no_table = copy()
    shutil.rmtree(no_table / "capacity_day")
    with pytest.raises(NetworkError, match="capacity_day: missing or not a directory"):
        network_report([no_table], _october(), NOW)
    other_cluster = copy()
    cluster = next((other_cluster / "usage_day").glob("cluster=*"))
    shutil.copytree(cluster, cluster.with_name("cluster=testai-old"))
    with pytest.raises(NetworkError, match="cluster=testai-old: not part of the export .*"
                                           "one of its manifest's clusters"):
        network_report([other_cluster], _october(), NOW)
    linked = copy()
    month = next((linked / "usage_day").rglob("month=*"))
    shutil.move(month, tmp_path / "elsewhere")
    month.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NetworkError, match="month=.*: not part of the export .*no link"):
        network_report([linked], _october(), NOW)
    fifo = copy()
    os.mkfifo(next((fifo / "usage_day").rglob("month=*")) / "part-9.parquet")
    with pytest.raises(NetworkError, match="part-9.parquet: not part of the export"):
        network_report([fifo], _october(), NOW)
    stray = copy()
    (stray / "notes.txt").write_text("x")
    with pytest.raises(NetworkError, match="notes.txt: not part of an export"):
        network_report([stray], _october(), NOW)
    # DuckDB would read a path with [ ] as a pattern: site[1] would read site1's files.
    pattern = tmp_path / "site[1]"
    shutil.copytree(sites["dirs"][1], pattern)
    with pytest.raises(NetworkError, match="would be read as a pattern"):
        network_report([pattern], _october(), NOW)


@pytest.mark.parametrize(("change", "message"), [
    ({"site": NETWORK}, "the site's name must be text"),
    ({"site": "Bo\u202elogna"}, "the site's name must be text"),
    ({"site": "Bologna\x1b]0;owned\x07"}, "the site's name must be text"),
    ({"version": True}, "schema version True; this release reads version 1"),
    ({"version": 1.0}, "schema version 1.0; this release reads version 1"),
    ({"clusters": []}, "'clusters' must list"),
    ({"rows": {"usage_day": 1}}, "'rows' must give each table's rows"),
    ({"first_day": 20261001}, "'first_day', 'data_until' and 'data_until_s'"),
])
def test_a_manifest_that_is_not_one_is_refused(sites, tmp_path, change, message):
    bad = tmp_path / "bad"
    shutil.copytree(sites["dirs"][1], bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(NetworkError, match=message):
        network_report([bad], _october(), NOW)


def test_a_manifest_that_is_a_link_a_pipe_or_huge_is_refused_without_reading_it(sites,
                                                                               tmp_path):
    for kind, message in (("link", "cannot be read: a symbolic link"),
                          ("fifo", "not a regular file"), ("huge", "larger than 1,048,576")):
        bad = tmp_path / kind
        shutil.copytree(sites["dirs"][1], bad)
        manifest = bad / "manifest.json"
        manifest.unlink()
        if kind == "link":
            manifest.symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(manifest)  # opening it to read would wait for a writer forever
        else:
            manifest.write_text(" " * (1 << 20) + "{}")
        with pytest.raises(NetworkError, match=message):
            network_report([bad], _october(), NOW)


def test_a_period_an_export_does_not_cover_is_said(sites, tmp_path):
    heard: list[str] = []
    september = periods.parse_month("2026-09", "UTC")
    late = tmp_path / "late"
    shutil.copytree(sites["dirs"][1], late)
    manifest = json.loads((late / "manifest.json").read_text())
    (late / "manifest.json").write_text(json.dumps({**manifest, "first_day": "2026-10-01"}))
    network_report([sites["dirs"][0], late], september, NOW, warn=heard.append)
    assert heard == ["Bologna: its export starts on 2026-10-01, after the period's first "
                     "day 2026-09-01: the days before count as no capacity and no use "
                     "(export with an earlier --since)"]
    heard.clear()
    network_report(sites["dirs"], _october(), NOW, warn=heard.append)
    assert heard == []
    # October ended before the exports were made; November did not.
    network_report(sites["dirs"], _october(), NOW + 40 * 86400, warn=heard.append)
    assert heard == []
    november = periods.parse_month("2026-11", "UTC")
    network_report(sites["dirs"], november, NOW + 40 * 86400, warn=heard.append)
    assert len(heard) == 2 and all("a newer export is needed" in h for h in heard)


def test_names_that_read_like_a_missing_value_stay_names(tmp_path):
    """The staging CSV's missing value is no text: a site (or category, account)
    named "nan" or "\\N" arrives as itself (Spark and Trino check nothing)."""
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    names = {"e": "\\N", "f": "nan", "g": "NULL"}
    with Store.open_reader(settings.store.path) as store:
        for d, site in names.items():
            export_parquet(store, settings, tmp_path / d, site, None, NOW)
    for d, site in names.items():
        held = duckdb.sql(f"SELECT DISTINCT site FROM read_parquet("
                          f"'{tmp_path / d}/usage_day/**/*.parquet')").fetchall()
        assert held == [(site,)]
        assert network_report([tmp_path / d], _october(), NOW).sites[0].site == site
    missing, jobs = duckdb.sql(
        f"SELECT COUNT(*) FILTER (WHERE energy_joules IS NULL), COUNT(*) FROM "
        f"read_parquet('{tmp_path}/e/jobs/**/*.parquet')").fetchall()[0]
    assert 0 < missing <= jobs   # a job without energy data is still NULL, not 0


def test_an_export_refuses_a_site_name_no_report_can_show(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        for name in (NETWORK, "A\u200bB", "x\ny", ""):
            with pytest.raises(ExportError, match="cannot be exported: give --site"):
                export_parquet(store, settings, tmp_path / "e", name, None, NOW)
    assert not (tmp_path / "e").exists()


def test_an_out_filled_by_someone_else_during_the_export_is_put_back(tmp_path, monkeypatch):
    from collector.network import export as export_module

    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    out = tmp_path / "export"
    real = export_module.write_tables

    def meanwhile(work, tables):  # `out` did not exist at the start; now it holds a thesis
        real(work, tables)
        out.mkdir()
        (out / "thesis.tex").write_text("precious")

    monkeypatch.setattr(export_module, "write_tables", meanwhile)
    with Store.open_reader(settings.store.path) as store, \
            pytest.raises(ExportError, match=f"{out} holds files that are not an export"):
        export_parquet(store, settings, out, "Groningen", None, NOW)
    assert (out / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "slurm", "store"]


def test_an_export_that_cannot_be_listed_is_an_error_that_names_it(sites, monkeypatch):
    def denied(export):  # as a directory without read permission does (root reads all)
        raise PermissionError(13, "Permission denied", str(export.path / "usage_day"))

    monkeypatch.setattr(parquet, "_tree", denied)
    with pytest.raises(NetworkError, match="Bologna/usage_day: cannot be read: Permission "
                                           "denied"):
        network_report([sites["dirs"][1]], _october(), NOW)


def test_a_damaged_file_is_an_error_that_names_the_exports(sites, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(sites["dirs"][0], damaged)
    part = next((damaged / "usage_day").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:40])
    with pytest.raises(NetworkError, match=f"the exports cannot be read \\({damaged}\\)"):
        network_report([damaged], _october(), NOW)


def test_duckdb_failing_to_write_is_an_export_error_and_loses_nothing(tmp_path, monkeypatch):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    real = parquet._write_table

    def bad_type(con, work, name, rows):  # a value DuckDB refuses, as a damaged row would be
        real(con, work, name, [(*r[:-1], "not a number") for r in rows] if name == "jobs"
             else rows)

    monkeypatch.setattr(parquet, "_write_table", bad_type)
    with Store.open_reader(settings.store.path) as store, \
            pytest.raises(ExportError, match="cannot write the export in .*export.*tmp"):
        export_parquet(store, settings, tmp_path / "export", "Groningen", None, NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slurm", "store"]


def test_a_hostile_site_name_stays_text_in_every_format(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    # (Control characters are refused in a site's name; names the site gives its
    # categories and accounts are shown the same way.)
    name = "=HYPERLINK(\"http://x\")|*bold* <script> [x](y)"
    with Store.open_reader(settings.store.path) as store:
        export_parquet(store, settings, tmp_path / "e", name, None, NOW)
    net = network_report([tmp_path / "e"], _october(), NOW)
    assert net.sites[0].site == name
    csv_text = render(net, "csv")
    assert "'=HYPERLINK" in csv_text and "\n=HYPERLINK" not in csv_text
    md = render(net, "md")
    assert "<script>" not in md and "\\*bold\\*" in md and "\\|" in md
    assert json.loads(render(net, "json"))["sites"][0]["site"] == name
    # A category's name is the site's text, and a forged file can hold anything there:
    # a terminal's escape sequence, a bidi override, a zero-width space.
    for forged in ("sci\x1b]0;owned\x07\x1b[2Jence", "sci\u202eence", "sci\u200bence"):
        copy = tmp_path / f"forged-{len(forged)}-{ord(forged[3])}"
        shutil.copytree(tmp_path / "e", copy)
        for table in ("categories", "usage_day"):
            for part in (copy / table).rglob("*.parquet"):
                _rewrite(part, f"* REPLACE (CASE WHEN category = 'science' THEN "
                               f"'{forged}' ELSE category END AS category)")
        with pytest.raises(NetworkError, match="rows with a name with a control or format"):
            network_report([copy], _october(), NOW)


def test_the_cli_exports_and_reports_the_network(tmp_path):
    from click.testing import CliRunner

    from collector.cli import main

    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    config = tmp_path / "facility.toml"
    config.write_text(POLICY_TOML.format(store=settings.store.path))
    runner = CliRunner(env={"GPU_USAGE_NOW": "2026-11-01T12:00:00Z"})
    done = runner.invoke(main, ["export", "--config", str(config), "--out",
                                str(tmp_path / "out"), "--site", "Groningen", "--since",
                                "2026-10"])
    assert done.exit_code == 0, done.output
    assert "wrote the parquet export of Groningen (2026-10-01 to now)" in done.output
    report = runner.invoke(main, ["report", "--site-export", str(tmp_path / "out"),
                                  "--month", "2026-10", "--format", "json"])
    assert report.exit_code == 0, report.output
    doc = json.loads(report.output)
    assert doc["sites"][-1]["site"] == NETWORK
    assert doc["sites"][-1]["gpu_hours"] == 70.0
    bad = runner.invoke(main, ["report", "--site-export", str(tmp_path), "--month",
                               "2026-10"])
    assert bad.exit_code == 1 and "no manifest.json" in bad.output
    pdf = runner.invoke(main, ["report", "--site-export", str(tmp_path / "out"),
                               "--format", "pdf", "--out", str(tmp_path / "x.pdf")])
    assert pdf.exit_code == 2 and "table, csv, md or json" in pdf.output


def _java() -> str | None:
    return shutil.which("java") or (os.environ.get("JAVA_HOME") and
                                    str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))


def test_spark_reads_the_same_files_and_gets_the_reports_totals(sites):
    pytest.importorskip("pyspark", reason="the Spark check needs pyspark (gpu-usage[test])")
    if not _java():
        pytest.skip("the Spark check needs Java (Debian: openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("gpu-usage-network")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    try:
        for d in sites["dirs"]:
            spark.read.option("basePath", str(d / "usage_day")).parquet(
                str(d / "usage_day")).createOrReplaceTempView(
                f"usage_{d.name.replace('-', '_')}")
        union = " UNION ALL ".join(
            f"SELECT site, category, day, gpu_seconds FROM usage_{d.name.replace('-', '_')}"
            for d in sites["dirs"])
        rows = spark.sql(
            f"SELECT category, SUM(gpu_seconds) AS s FROM ({union}) "
            "WHERE day >= DATE'2026-10-01' AND day < DATE'2026-11-01' GROUP BY category"
        ).collect()
    finally:
        spark.stop()
    by_spark = {r["category"]: r["s"] for r in rows}
    net = network_report(sites["dirs"], _october(), NOW)
    ours = {c.category: c.used_s for c in net.categories if c.site == NETWORK and c.used_s}
    assert by_spark == ours and sum(ours.values()) > 0
