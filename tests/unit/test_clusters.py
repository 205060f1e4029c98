"""A facility of two clusters on one slurmdbd (the stand-in Slurm answers per
--clusters): collected one after the other, reported on the whole facility and on
each cluster, in every document, metric and the network export.

testai is tests/unit/fakeslurm's October (16 GPUs, 70 GPU-hours). gpu2 has 8 GPUs
all month and two jobs: 10 GPU-hours of nl_x (science) and 6 of ehpc_b (eu_science).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.collect import CollectionsFailed, collect, collect_facility
from collector.config import ConfigError, Settings, as_plain, load, parse
from collector.engine import periods
from collector.engine.report import build_report
from collector.store import reads
from collector.store.database import Store
from tests.unit import fakeslurm
from tests.unit.fakeslurm import POLICY, TOTAL_OCT_GPU_H, gpu, line

H = 3600
NOW = 1_793_491_200  # 2026-11-01 00:00 UTC: October is closed
GPU2_JOBS = [
    line(201, "maria", "nl_x", "COMPLETED", "2026-10-02T00:00:00", "2026-10-02T00:00:00",
         "2026-10-02T05:00:00", gpu(2)),
    line(202, "anna", "ehpc_b", "COMPLETED", "2026-10-03T00:00:00", "2026-10-03T00:00:00",
         "2026-10-03T03:00:00", gpu(2)),
]
GPU2_ASSOC = """\
root||||
eurohpc||root|
eu_science||eurohpc|
ehpc_b||eu_science|
ehpc_b|anna|||
national||root|
science||national|
nl_x||science|
nl_x|maria|||
"""
GPU2_EVENTS = ("gpu2|g[01-02]||2026-01-01T00:00:00|Unknown|Cluster||billing=16,cpu=16,"
               "gres/gpu:a100=8,gres/gpu=8,mem=100G,node=2|Cluster Registered TRES\n")
GPU2_H = 10 + 6
OCTOBER = periods.parse_month("2026-10", "UTC")


def facility(tmp: Path, **policy) -> tuple[Settings, dict[str, str]]:
    """testai as fakeslurm writes it, gpu2 in the subdirectory the stand-ins read for
    --clusters=gpu2 (cluster=gpu2)."""
    settings, env = fakeslurm.make(tmp)
    data = Path(env["FAKE_SLURM_DIR"])
    second = data / "gpu2"
    second.mkdir()
    fakeslurm.write_jobs(second, GPU2_JOBS)
    (second / "sacctmgr-assoc.txt").write_text(GPU2_ASSOC)
    (second / "sacctmgr-events.txt").write_text(GPU2_EVENTS)
    (second / "sacctmgr-reservation.txt").write_text("")
    shutil.copy(data / "sinfo.txt", second / "sinfo.txt")
    slurm = {k: v for k, v in POLICY["slurm"].items() if k != "cluster"}
    raw = {**POLICY, "slurm": {**slurm, "clusters": ["testai", "gpu2"]},
           "store": {"path": str(tmp / "store")}, **policy}
    return parse(raw), env


@pytest.fixture
def two(tmp_path):
    settings, env = facility(tmp_path)
    done = collect_facility(settings, now=NOW, env=env)
    assert [c.cluster for c in done] == ["testai", "gpu2"]
    assert [c.status for c in done] == ["ok", "ok"]
    return settings, env


def _report(settings: Settings, cluster: str | None = None, period=OCTOBER):
    with Store.open_reader(settings.store.path) as store:
        return build_report(store, settings, period, now=NOW, cluster=cluster)


def test_a_rejected_line_counts_for_its_own_cluster(tmp_path):
    """gpu2's sacct printed a line that cannot be read: gpu2's report and the
    facility's count it, testai's does not; so do the exporter's health series."""
    settings, env = facility(tmp_path)
    fakeslurm.write_jobs(Path(env["FAKE_SLURM_DIR"]) / "gpu2",
                         [*GPU2_JOBS, "299|299|gpu2|only|a|few|fields"])
    collect_facility(settings, now=NOW, env=env)
    counts = {c: _report(settings, c).data_quality for c in ("testai", "gpu2")}
    assert counts["testai"].rejected_lines == 0 and counts["testai"].rejected_sample == ()
    assert counts["gpu2"].rejected_lines == 1
    assert counts["gpu2"].rejected_sample[0].line.startswith("299|299|gpu2|")
    assert _report(settings).data_quality.rejected_lines == 1
    with Store.open_reader(settings.store.path) as store:
        assert [reads.health(store, (c,)).rejected_lines for c in ("testai", "gpu2")] == [0, 1]
    from collector.export.metrics import cluster_families
    from collector.export.views import read_store_view
    series = {s.labels["cluster"]: s.value for fam in cluster_families(
        read_store_view(settings, now=NOW)) if fam.name == "gpu_usage_cluster_rejected_lines"
        for s in fam.samples}
    assert series == {"testai": 0, "gpu2": 1}


def test_each_cluster_is_collected_through_its_own_door_into_one_store(two):
    settings, env = two
    calls = (Path(env["FAKE_SLURM_DIR"]) / "calls.log").read_text()
    assert "--clusters=testai" in calls and "--clusters=gpu2" in calls
    with Store.open_reader(settings.store.path) as store:
        assert store.conn.execute("SELECT cluster, COUNT(*) FROM jobs GROUP BY cluster "
                                  "ORDER BY cluster").fetchall() == [("gpu2", 2), ("testai", 8)]
        # Each cluster keeps its own account tree, events and collections.
        assert "ehpc_b" in reads.tree(store, ("gpu2",)).parents
        assert "ehpc_b" not in reads.tree(store, ("testai",)).parents
        assert reads.last_collection(store, ("gpu2",)).cluster == "gpu2"


def test_the_facility_is_the_sum_of_its_clusters(two):
    settings, _ = two
    whole, a, b = _report(settings), _report(settings, "testai"), _report(settings, "gpu2")
    assert whole.cluster == "testai, gpu2" and a.cluster == "testai" and b.cluster == "gpu2"
    assert whole.capacity.allocated_s == (TOTAL_OCT_GPU_H + GPU2_H) * H
    assert (a.capacity.allocated_s, b.capacity.allocated_s) == (TOTAL_OCT_GPU_H * H, GPU2_H * H)
    days = 31 * 24 * H
    assert (a.capacity.nominal_s, b.capacity.nominal_s) == (16 * days, 8 * days)
    assert whole.capacity.nominal_s == 24 * days and whole.capacity.gpus == 24
    for name in ("eu_science", "science", "commercial"):
        w, x, y = (next(c for c in r.categories if c.category == name) for r in (whole, a, b))
        assert w.used_s == x.used_s + y.used_s, name
        # A share quota on each cluster's own available time: they add up to the facility's.
        assert w.quota_s == pytest.approx(x.quota_s + y.quota_s), name
    science = next(c for c in b.categories if c.category == "science")
    assert science.used_s == 10 * H and science.quota_s == pytest.approx(0.5 * 8 * days)
    # The facility's report lists its clusters; a cluster's report does not.
    assert [(c.cluster, c.gpus, c.allocated_s) for c in whole.clusters] == [
        ("testai", 16, TOTAL_OCT_GPU_H * H), ("gpu2", 8, GPU2_H * H)]
    assert sum(c.share_of_allocated for c in whole.clusters) == pytest.approx(1)
    assert a.clusters == () and b.clusters == ()


def test_an_absolute_quota_is_split_by_each_clusters_available_time(tmp_path):
    cats = [dict(c) for c in POLICY["categories"]]
    cats[2] = {**cats[2], "quota_gpu_hours": 300}   # science: 300 GPU-hours a month
    settings, env = facility(tmp_path, categories=cats)
    collect_facility(settings, now=NOW, env=env)
    quota = {r.cluster: next(c.quota_s for c in r.categories if c.category == "science")
             for r in (_report(settings), _report(settings, "testai"),
                       _report(settings, "gpu2"))}
    assert quota["testai, gpu2"] == 300 * H
    assert quota["testai"] == pytest.approx(200 * H) and quota["gpu2"] == pytest.approx(100 * H)


def test_one_cluster_is_the_same_as_a_facility_of_that_cluster_alone(two, tmp_path):
    settings, env = two
    alone = parse({**POLICY, "store": {"path": str(tmp_path / "alone")}})
    collect(alone, now=NOW, env=env)
    one, same = _report(settings, "testai"), _report(alone)
    assert one.capacity == same.capacity and one.accounts == same.accounts
    assert one.categories == same.categories and one.users == same.users


def test_a_cluster_that_fails_leaves_its_part_as_it_was_and_the_others_go_on(tmp_path):
    settings, env = facility(tmp_path)
    collect_facility(settings, now=NOW - 86400, env=env)
    data = Path(env["FAKE_SLURM_DIR"])
    (data / "gpu2" / "sacct.fail").write_text("")
    with pytest.raises(CollectionsFailed) as caught:
        collect_facility(settings, now=NOW, env=env)
    assert [c.cluster for c in caught.value.done] == ["testai"]
    assert [name for name, _ in caught.value.failed] == ["gpu2"]
    assert "cluster gpu2" in str(caught.value) and "Connection refused" in str(caught.value)
    with Store.open_reader(settings.store.path) as store:
        assert reads.last_collection(store, ("testai",)).window_end_s == NOW
        assert reads.last_collection(store, ("gpu2",)).window_end_s == NOW - 86400
        assert store.last_collection("gpu2", None).status == "failed"
        # The facility is as fresh as its stalest cluster.
        assert reads.last_collection(store, ("testai", "gpu2")).cluster == "gpu2"
    result = CliRunner(mix_stderr=False).invoke(
        main, ["collect", "--quiet", "--config", str(_toml(tmp_path, settings))], env=env)
    assert result.exit_code == 1
    assert "collected testai:" in result.stdout
    assert "error: collection of gpu2 failed, its part of the store is unchanged" in \
        result.stderr


def _without_none(tables: object) -> object:
    """TOML has no null: a key left out is the default."""
    if isinstance(tables, dict):
        return {k: _without_none(v) for k, v in tables.items() if v is not None}
    if isinstance(tables, list):
        return [_without_none(v) for v in tables]
    return tables


def toml_text(policy: dict) -> str:
    """A policy as TOML (tables, arrays of tables, strings, numbers, lists): enough for
    the policies of these tests."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines: list[str] = []
    for key, v in policy.items():
        for table in (v if isinstance(v, list) else [v]):
            lines.append(f"[[{key}]]" if isinstance(v, list) else f"[{key}]")
            lines += [f"{k} = {value(x)}" for k, x in table.items() if not isinstance(x, dict)]
            for k, x in table.items():
                if isinstance(x, dict):
                    lines.append(f"[{key}.{k}]")
                    lines += [f"{kk} = {value(xx)}" for kk, xx in x.items()]
    return "\n".join(lines) + "\n"


def _toml(tmp: Path, settings: Settings) -> Path:
    path = tmp / "facility.toml"
    path.write_text(toml_text(_without_none(as_plain(settings))))
    return path


def test_the_cli_reports_and_collects_the_facility_or_one_cluster(two, tmp_path):
    settings, env = two
    config = str(_toml(tmp_path, settings))
    runner = CliRunner(mix_stderr=False)
    whole = json.loads(runner.invoke(main, ["report", "--config", config, "--month", "2026-10",
                                            "--format", "json"], env=env).stdout)
    gpu2 = json.loads(runner.invoke(main, ["report", "--config", config, "--month", "2026-10",
                                           "--format", "json", "--cluster", "gpu2"],
                                    env=env).stdout)
    assert [c["cluster"] for c in whole["clusters"]] == ["testai", "gpu2"]
    assert gpu2["cluster"] == "gpu2" and gpu2["clusters"] == []
    assert gpu2["capacity"]["allocated_gpu_hours"] == GPU2_H
    md = runner.invoke(main, ["report", "--config", config, "--month", "2026-10", "--format",
                              "md"], env=env).stdout
    assert "## Clusters" in md and "| gpu2 | 8 |" in md
    single = runner.invoke(main, ["report", "--config", config, "--month", "2026-10",
                                  "--format", "md", "--cluster", "testai"], env=env).stdout
    assert "## Clusters" not in single
    bad = runner.invoke(main, ["report", "--config", config, "--cluster", "nope"], env=env)
    assert bad.exit_code == 2 and "'nope' is not one of the configured clusters (testai, " \
        "gpu2)" in bad.stderr
    again = runner.invoke(main, ["collect", "--quiet", "--config", config, "--cluster", "gpu2"],
                          env=env)
    assert again.exit_code == 0 and again.stdout.startswith("collected gpu2: 0 new")
    assert "testai" not in again.stdout


def test_metrics_show_the_facility_and_each_cluster(two):
    from collector.export.metrics import ExporterStatus, families
    from collector.export.views import read_store_view

    settings, _ = two
    view = read_store_view(settings, now=NOW - 1)
    got = {(f.name, tuple(sorted(s.labels.items()))): s.value
           for f in families(settings, view, None, ExporterStatus()) for s in f.samples}
    allocated = {k[1][0][1]: v for k, v in got.items()
                 if k[0] == "gpu_usage_cluster_month_allocated_gpu_seconds"}
    # October one second before its end: testai's running 2-GPU job counts to then.
    assert allocated == {"testai": TOTAL_OCT_GPU_H * H - 2, "gpu2": GPU2_H * H}
    assert got[("gpu_usage_month_allocated_gpu_seconds", ())] == sum(allocated.values())
    used = {k[1]: v for k, v in got.items() if k[0] == "gpu_usage_cluster_category_used_gpu_"
            "seconds"}
    assert used[(("category", "science"), ("cluster", "gpu2"), ("pool", "national"))] == 10 * H
    quota = sum(v for k, v in got.items() if k[0] == "gpu_usage_cluster_category_quota_gpu_"
                "seconds" and ("category", "science") in k[1])
    assert quota == pytest.approx(got[("gpu_usage_category_quota_gpu_seconds",
                                       (("category", "science"), ("pool", "national")))])
    assert got[("gpu_usage_info", (("cluster", "testai,gpu2"), ("facility", "Fake Factory"),
                                   ("timezone", "UTC"), ("version", _version())))] == 1


def _version() -> str:
    from collector import __version__
    return __version__


def test_the_live_view_names_jobs_and_nodes_by_cluster(two, tmp_path):
    from collector.slurm.sources import live_jobs, live_nodes

    settings, env = two
    data = Path(env["FAKE_SLURM_DIR"])
    fixture = Path(__file__).parents[1] / "fixtures" / "slurm-22.05.8"
    for where in (data, data / "gpu2"):
        shutil.copy(fixture / "squeue-live.txt", where / "squeue.txt")
    jobs, _ = live_jobs(settings, env)
    nodes, _ = live_nodes(settings, env)
    assert jobs and all(j.job_id.split(":")[0] in ("testai", "gpu2") for j in jobs)
    assert len({j.job_id for j in jobs}) == len(jobs)   # no id of one hides the other's
    assert {n.node.split(":")[0] for n in nodes} == {"testai", "gpu2"}
    (data / "gpu2" / "squeue.fail").write_text("")
    from collector.slurm.commands import SlurmError
    with pytest.raises(SlurmError, match="cluster gpu2: "):
        live_jobs(settings, env)


def test_an_account_placed_differently_on_two_clusters_is_reported(tmp_path):
    settings, env = facility(tmp_path)
    data = Path(env["FAKE_SLURM_DIR"])
    (data / "gpu2" / "sacctmgr-assoc.txt").write_text(
        GPU2_ASSOC.replace("nl_x||science|", "nl_x||eu_science|"))
    collect_facility(settings, now=NOW, env=env)
    rep = _report(settings)
    assert rep.data_quality.tree_conflicts == (("nl_x", ("eu_science", "science")),)
    from collector.documents.text import render
    assert "accounts under different parents per cluster" in render(rep, "md")
    assert "Accounts under different parents per cluster" in render(rep, "table")
    assert _report(settings, "gpu2").data_quality.tree_conflicts == ()


@pytest.mark.parametrize(("slurm", "message"), [
    ({"cluster": "a", "clusters": ["b"]}, "either cluster"),
    ({"clusters": ["a", "A"]}, "clusters listed twice: A, a"),
    ({"clusters": []}, "slurm.clusters: Expected `array` of length >= 1"),
    ({"clusters": ["ok", "-Mall"]}, "slurm.clusters[1]: not a Slurm name"),
    ({"clusters": ["a", "All"]}, "'all' is not a cluster name"),
    ({"clusters": ["a", "b"], "source": "slurmrestd"}, 'several clusters are read with '
     'source = "sacct"'),
    ({"clusters": ["a", "b"], "source": "pyslurm"}, "the pyslurm door reads one cluster"),
])
def test_the_cluster_list_is_checked(tmp_path, slurm, message):
    path = tmp_path / "facility.toml"
    path.write_text(toml_text({**POLICY, "slurm": slurm}))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert message in str(caught.value)


def test_network_export_of_two_clusters_adds_up_to_the_facility(two, tmp_path):
    pytest.importorskip("duckdb", reason="the network export needs duckdb (gpu-usage[network])")
    from collector.network.export import export_parquet
    from collector.network.report import network_report

    settings, _ = two
    with Store.open_reader(settings.store.path) as store:
        export_parquet(store, settings, tmp_path / "site", "Fake", None, NOW)
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["clusters"] == ["testai", "gpu2"]
    net = network_report([tmp_path / "site"], OCTOBER, NOW)
    whole = _report(settings)
    by_cluster = {r.cluster: r.used_s for r in net.sites if r.site == "Fake"}
    assert by_cluster == {"testai": TOTAL_OCT_GPU_H * H, "gpu2": GPU2_H * H}
    site = {c.category: c for c in net.categories if c.site == "Fake"}
    for c in whole.categories:
        assert site[c.category].used_s == c.used_s
        assert site[c.category].quota_s == pytest.approx(c.quota_s)
        # Against the site's available time: both clusters' (not its last one's).
        assert site[c.category].share_of_available == pytest.approx(c.share_of_available)


def test_a_budget_on_one_cluster_of_two_is_the_facilitys(tmp_path):
    settings, env = facility(tmp_path)
    (Path(env["FAKE_SLURM_DIR"]) / "gpu2" / "sacctmgr-assoc.txt").write_text(
        GPU2_ASSOC + "ehpc_a||eu_science|\n")
    collect_facility(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        # ehpc_a has gres/gpu=6000 minutes on testai and no limit on gpu2.
        assert reads.tree(store, ("testai", "gpu2")).budgets["ehpc_a"] == 6000
        assert reads.tree(store, ("gpu2",)).budgets["ehpc_a"] is None


def test_from_scratch_on_every_cluster_clears_the_upgrade_marks(two):
    from collector.store.database import ENERGY_SINCE

    settings, env = two
    with Store.open_writer(settings.store.path) as store, store.transaction():
        store.set_meta(ENERGY_SINCE, str(NOW - 86400))   # as an upgrade leaves it
    collect_facility(settings, now=NOW, env=env, from_scratch=True, clusters=("gpu2",))
    with Store.open_reader(settings.store.path) as store:
        assert reads.energy_since(store) == NOW - 86400    # testai's jobs predate it still
    collect_facility(settings, now=NOW, env=env, from_scratch=True)
    with Store.open_reader(settings.store.path) as store:
        assert reads.energy_since(store) is None


def test_the_dashboard_shows_the_facility_or_the_picked_cluster(two, tmp_path, monkeypatch):
    pytest.importorskip("streamlit", reason="the dashboard extra (streamlit) is not installed")
    from streamlit.testing.v1 import AppTest

    from collector import clock

    settings, env = two
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(_toml(tmp_path, settings)))
    monkeypatch.setenv(clock.ENV, str(NOW))
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    views = Path(__file__).parents[2] / "dashboard"

    def overview(cluster: str | None) -> AppTest:
        at = AppTest.from_file(str(views / "views" / "overview.py"), default_timeout=60)
        at.session_state["period_month"] = "2026-10"
        at.session_state["cluster"] = cluster
        at.run()
        assert not at.exception and not at.error
        return at

    whole, gpu2 = overview(None), overview("gpu2")
    used = {at.title[0].value: next(m.value for m in at.metric if m.label == "Used GPU-hours")
            for at in (whole, gpu2)}
    assert used == {"GPU usage · 2026-10": f"{TOTAL_OCT_GPU_H + GPU2_H} GPU-h",
                    "GPU usage · 2026-10 · cluster `gpu2`": f"{GPU2_H} GPU-h"}
    assert [s.value for s in whole.subheader].count("Clusters") == 1
    assert "Clusters" not in [s.value for s in gpu2.subheader]
    # The app's sidebar offers the clusters (operators; no [dashboard.auth] here).
    app = AppTest.from_file(str(views / "app.py"), default_timeout=60)
    app.run()
    picker = app.sidebar.selectbox(key="cluster_pick")
    assert picker.options == ["Whole facility", "testai", "gpu2"]
