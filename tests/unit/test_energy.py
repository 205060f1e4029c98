"""Energy: each door reads a job's joules (the energy TRES of its allocation, sacct's
ConsumedEnergyRaw) or "not recorded", the store keeps it, and the rollups split it
over hours and days by the job's time in each, exactly. Shapes as Slurm prints them
(checked on the 22.05 and 25.11 test clusters): a job whose node had no energy
plugin keeps NO_VAL in slurmdbd, so sacct prints no `energy=` in AllocTRES,
slurmrestd an energy entry of count null (v0.0.38) or -2 (v0.0.40+), and pyslurm
`allocated_tres.energy` None.
"""

from __future__ import annotations

import sqlite3
import types
from datetime import UTC, datetime

import pytest

from collector import collect as collect_mod
from collector.engine.rollup import LocalDays, energy_cells, usage_cells
from collector.slurm import pyslurm_source, slurmrestd_parser
from collector.slurm.sacct_parser import FieldError, parse_energy, parse_sacct
from collector.store import reads
from collector.store.database import GPU_USE_COLUMNS, SCHEMA_VERSION, Store, StoreError

from . import fakeslurm
from .test_rollup import JOB

H = 3600
NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
OCT = (int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()),
       int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()))
TRES = "billing=8,cpu=8,energy=28800000,gres/gpu:h100=8,gres/gpu=8,mem=8G,node=1"


def test_sacct_energy_is_alloctres_energy_or_not_recorded():
    assert parse_energy(TRES) == 28_800_000
    assert parse_energy(TRES.replace("energy=28800000,", "")) is None
    assert parse_energy("") is None
    with pytest.raises(FieldError, match="not joules"):
        parse_energy("cpu=1,energy=12.5")
    line = fakeslurm.line(9, "anna", "ehpc_a", "COMPLETED", "2026-10-01T00:00:00",
                          "2026-10-01T00:00:00", "2026-10-01T01:00:00", TRES)
    [record] = parse_sacct(line + "\n").records
    assert record.energy_j == 28_800_000 and record.gpus == 8
    bad = parse_sacct(line.replace("energy=28800000", "energy=-1") + "\n")
    assert not bad.records and "energy=-1" in bad.rejected[0].reason


def _rest_job(energy: object) -> dict:
    return {"job_id": 5, "time": {"submission": 100, "start": 200, "end": 3800},
            "nodes": "gpu01", "account": "a", "user": "u", "state": {"current": ["COMPLETED"]},
            "tres": {"allocated": [{"type": "gres", "name": "gpu", "id": 1001, "count": 2},
                                   {"type": "energy", "name": "", "id": 3, "count": energy}]}}


@pytest.mark.parametrize(("count", "joules"), [(None, None), (-2, None), (-1, None),
                                               (7_200_000, 7_200_000), (0, 0)])
def test_slurmrestd_energy_is_the_energy_entry_or_not_recorded(count, joules):
    [record] = slurmrestd_parser.parse_jobs({"jobs": [_rest_job(count)]}).records
    assert record.energy_j == joules


@pytest.mark.parametrize("count", ["7 MJ", -7, 1.5])
def test_slurmrestd_energy_that_is_not_a_count_rejects_the_job(count):
    result = slurmrestd_parser.parse_jobs({"jobs": [_rest_job(count)]})
    assert not result.records and "energy" in result.rejected[0].reason


def _pyslurm_job(energy: object) -> dict:
    gres = {"gpu": types.SimpleNamespace(count=2)}
    return {name: None for name in pyslurm_source.JOB_FIELDS} | {
        "id": 5, "cluster": "testai", "submit_time": 100, "start_time": 200,
        "end_time": 3800, "state": "COMPLETED", "nodelist": "gpu01", "num_nodes": 1, "cpus": 2,
        "allocated_tres": types.SimpleNamespace(gres=gres, energy=energy)}


def test_pyslurm_energy_is_allocated_tres_energy_or_not_recorded():
    job = pyslurm_source.job_record(_pyslurm_job(types.SimpleNamespace(count=9_000)))
    assert job.energy_j == 9_000
    assert pyslurm_source.job_record(_pyslurm_job(None)).energy_j is None
    with pytest.raises(FieldError, match="energy"):
        pyslurm_source.job_record(_pyslurm_job(types.SimpleNamespace(count="9 kJ")))


def test_energy_is_split_over_days_by_time_and_adds_up_exactly():
    utc, day = LocalDays("UTC"), 86400
    # 23:30 on day 0 .. 00:10 on day 2: 1800 + 86400 + 600 s
    job = JOB._replace(start_s=day - 1800, end_s=2 * day + 600, energy_j=1_000_003)
    cells = list(energy_cells(job, utc))
    assert [k for k, _ in cells] == [k for k, _ in usage_cells(job, utc)]
    assert [k[1] for k, _ in cells] == [0, day, 2 * day]
    assert sum(j for _, (j, _) in cells) == 1_000_003
    assert [j for _, (j, _) in cells] == [20_270, 972_976, 6_757]
    assert [g for _, (_, g) in cells] == [g for _, g in usage_cells(job, utc)]
    assert list(energy_cells(JOB, utc)) == []                       # not recorded
    assert list(energy_cells(job._replace(end_s=None), utc)) == []  # running
    assert list(energy_cells(job._replace(gpus=0), utc)) == []      # no GPUs


def _energy_jobs() -> list[str]:
    """fakeslurm's month with energy on two jobs: 102 (4 GPUs, 10 h, 40 kWh) and the
    running 103 (recorded only when it ends)."""
    jobs = list(fakeslurm.JOBS)
    jobs[1] = jobs[1].replace("gres/gpu=4,", "gres/gpu=4,energy=144000000,")
    return jobs


def test_collected_energy_is_stored_per_job_and_rolled_up(tmp_path):
    settings, env = fakeslurm.make(tmp_path, _energy_jobs())
    collect_mod.collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        energy = dict(store.conn.execute("SELECT job_id_raw, energy_j FROM jobs"))
        rows = reads.usage_rows(store, ("testai",), *OCT)
    assert energy[102] == 144_000_000 and energy[101] is None
    assert sum(r.energy_j for r in rows) == 144_000_000
    assert sum(r.energy_gpu_s for r in rows) == 4 * 10 * H
    assert {r.account for r in rows if r.energy_j} == {"nl_x"}


def test_a_schema_1_store_is_upgraded_by_the_next_collection(tmp_path):
    settings, env = fakeslurm.make(tmp_path, _energy_jobs())
    collect_mod.collect(settings, now=NOW, env=env)
    path = settings.store.path / "gpu-usage.sqlite"
    with sqlite3.connect(path) as db:                 # as version 1 left it
        for column in ("busy_gpu_s", "idle_gpu_s", "idle_stretch_s", "gpu_mem_mib"):
            db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
        for column in GPU_USE_COLUMNS:
            db.execute(f"ALTER TABLE usage_day DROP COLUMN {column}")
        db.execute("ALTER TABLE jobs DROP COLUMN energy_j")
        db.execute("ALTER TABLE usage_day DROP COLUMN energy_j")
        db.execute("ALTER TABLE usage_day DROP COLUMN energy_gpu_s")
        db.execute("DROP TABLE usage_month")   # version 1 had the day rollups only
        db.execute("DROP TABLE starts_month")
        db.execute("DELETE FROM meta WHERE key='month_rollups_zone'")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    with pytest.raises(StoreError, match="run 'gpu-usage collect' once to upgrade"):
        Store.open_reader(settings.store.path)
    collect_mod.collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        assert store.meta("schema") == SCHEMA_VERSION
        assert store.meta("gpu_use_collected_since") == store.meta("energy_collected_since")
        jobs = store.conn.execute("SELECT COUNT(*), COUNT(energy_j) FROM jobs").fetchone()
    assert jobs == (len(fakeslurm.JOBS), 0)  # stored before: no energy, not zero
    # ... and the report and verify say so, instead of "not recorded on this cluster".
    from collector.documents import text
    from collector.engine import periods, verify
    from collector.engine.report import build_report
    october = periods.parse_month("2026-10", "UTC", NOW)
    with Store.open_reader(settings.store.path) as store:
        report = build_report(store, settings, october, now=NOW)
        assert verify.energy_gap(store, october) == report.energy.not_collected_before_s
    assert report.energy.not_collected_before_s is not None and not report.energy.recorded
    md = text.render(report, "md")
    assert "not collected for this period: jobs stored before" in md
    assert "collect --from-scratch' reads it" in md and "not recorded on this" not in md
    collect_mod.collect(settings, now=NOW, env=env, from_scratch=True)
    with Store.open_reader(settings.store.path) as store:
        assert store.conn.execute("SELECT COUNT(energy_j) FROM jobs").fetchone() == (1,)
        report = build_report(store, settings, october, now=NOW)
        assert verify.energy_gap(store, october) is None
    assert report.energy.recorded and report.energy.not_collected_before_s is None


def _october(tmp_path, jobs):
    from collector.engine import periods
    from collector.engine.report import build_report
    settings, env = fakeslurm.make(tmp_path, jobs)
    collect_mod.collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        return build_report(store, settings, periods.parse_month("2026-10", "UTC", NOW),
                            now=NOW)


def test_the_report_shows_energy_by_category_and_its_coverage(tmp_path):
    from collector.documents import convert, text
    report = _october(tmp_path, _energy_jobs())
    e = report.energy
    assert e.recorded and e.coverage == pytest.approx(40 / 70)
    science = {c.category: c for c in e.categories}["science"]
    assert (science.used_s, science.measured_s, science.energy_j) == (43 * H, 40 * H,
                                                                      144_000_000)
    assert science.kwh_per_gpu_hour == pytest.approx(1.0) and science.share_of_energy == 1.0
    others = [c for c in e.categories if c.category != "science"]
    assert others and all(c.energy_j is None and c.kwh_per_gpu_hour is None for c in others)
    assert e.total.energy_j == 144_000_000 and e.total.used_s == 70 * H
    doc = convert.document(report)["energy"]
    assert doc["total"]["kwh"] == 40.0 and doc["recorded"] is True
    assert "40.0 kWh for 40.0 of 70.0 GPU-h (57.1%), 1.000 kWh per GPU-h" in text.render(
        report, "md")
    # ... and by account, user and GPU type: the job's account, user and type only.
    assert {a.account: a.energy_j for a in report.accounts} == {
        "ehpc_a": None, "com_acme": None, "nl_x": 144_000_000, "stray": None}
    assert {(u.user, u.account): u.energy_j for u in report.users}[("maria", "nl_x")] \
        == 144_000_000
    assert {t.gpu_type: t.energy_j for t in report.gpu_types} == {"h100": 144_000_000}
    assert {a["account"]: a["kwh"] for a in convert.document(report)["accounts"]}["nl_x"] \
        == 40.0


def test_a_cluster_without_energy_says_so_and_shows_no_zeros(tmp_path):
    from collector.documents import text
    report = _october(tmp_path, fakeslurm.JOBS)
    assert not report.energy.recorded and report.energy.coverage == 0
    assert all(c.energy_j is None for c in (*report.energy.categories, report.energy.total))
    assert "not recorded on this cluster in this period" in text.render(report, "md")


def test_configured_factors_give_labelled_facility_estimates(tmp_path):
    from collector.config import ConfigError, parse
    from collector.documents import text
    from collector.engine import periods
    from collector.engine.report import build_report
    settings, env = fakeslurm.make(tmp_path, _energy_jobs())
    settings = fakeslurm.changed(settings, "energy", pue=1.25, wue_l_per_kwh=1.8,
                                 carbon_g_per_kwh=300)
    collect_mod.collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        report = build_report(store, settings, periods.parse_month("2026-10", "UTC", NOW),
                              now=NOW)
    total = report.energy.total                       # 40 kWh measured on the nodes
    assert total.facility_kwh == pytest.approx(50.0)  # x PUE
    assert total.water_l == pytest.approx(72.0)       # IT kWh x WUE
    assert total.co2e_kg == pytest.approx(15.0)       # facility kWh x 300 g
    assert dict(report.energy.factors) == {"pue": 1.25, "wue_l_per_kwh": 1.8,
                                           "carbon_g_per_kwh": 300}
    assert "estimates from the configured factors (pue 1.25" in text.render(report, "md")
    with pytest.raises(ConfigError, match=r"energy\.pue: Expected `float` >= 1"):
        parse({**fakeslurm.POLICY, "energy": {"pue": 0.8}})
