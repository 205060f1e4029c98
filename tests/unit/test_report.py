"""The report of the synthetic October in fakeslurm.py, checked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from collector.collect import collect
from collector.documents.convert import document
from collector.engine import periods
from collector.engine.policy import Allocation
from collector.engine.report import AllocationUse, allocation_entry, build_report, median_wait_s
from collector.store.database import Store

from . import fakeslurm

NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
OCT_H = 31 * 24


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> dict:
    settings, env = fakeslurm.make(tmp_path_factory.mktemp("report"))
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        return document(build_report(store, settings, periods.parse_month("2026-10", "UTC"),
                                     now=NOW))


def by(rows: list[dict], key: str) -> dict[str, dict]:
    return {r[key]: r for r in rows}


def test_capacity_and_utilisation(october):
    cap = october["capacity"]
    assert cap["nominal_gpu_hours"] == 16 * OCT_H == cap["available_gpu_hours"]
    assert cap["allocated_gpu_hours"] == fakeslurm.TOTAL_OCT_GPU_H == 70
    assert cap["utilisation"] == round(70 / (16 * OCT_H), 4)


def test_jobs_are_clipped_at_the_period_and_running_jobs_count_to_its_end(october):
    accounts = by(october["accounts"], "account")
    assert accounts["ehpc_a"]["gpu_hours"] == 16       # 8 GPUs x 2 of its 4 hours
    assert accounts["com_acme"]["gpu_hours"] == 8      # running: 2 GPUs x 4 h to 11-01
    assert accounts["nl_x"]["gpu_hours"] == 40 + 1 + 2  # both runs of the requeued job
    assert sum(a["gpu_hours"] for a in october["accounts"]) == 70


def test_categories_pools_and_quotas(october):
    cats = by(october["categories"], "category")
    assert (cats["eu_science"]["gpu_hours"], cats["commercial"]["gpu_hours"],
            cats["science"]["gpu_hours"]) == (16, 8, 43)
    assert cats["science"]["quota_gpu_hours"] == 0.5 * 16 * OCT_H
    assert cats["science"]["difference_gpu_hours"] == round(43 - 0.5 * 16 * OCT_H, 3)
    assert cats["eu_science"]["used_of_quota"] == round(16 / (0.3 * 16 * OCT_H), 4)
    pools = by(october["pools"], "pool")
    assert pools["eurohpc"]["gpu_hours"] == 24 and pools["national"]["gpu_hours"] == 43
    assert cats["eu_science"]["ytd_gpu_hours"] == 32  # September's part counts this year


def test_commercial_share_of_the_eurohpc_pool(october):
    com = october["commercial"]
    assert com["pool_quota_gpu_hours"] == 0.5 * 16 * OCT_H
    assert com["share_of_pool"] == round(8 / (0.5 * 16 * OCT_H), 4) and com["within_limit"]


def test_the_unmapped_account_is_shown_not_dropped(october):
    assert october["unmapped_accounts"] == [
        {"account": "stray", "gpu_hours": 3.0, "in_slurm_tree": True}]
    assert by(october["accounts"], "account")["stray"]["category"] == "(unmapped)"


def test_allocations_from_the_policy_and_from_grptresmins(october):
    allocs = by(october["allocations"], "account")
    nl = allocs["nl_x"]
    assert (nl["used_gpu_hours_period"], nl["used_gpu_hours_total"]) == (43, 43)
    assert nl["planned_gpu_hours_to_date"] == round(100 * 31 / 61, 3)
    assert nl["projected_exhaustion"] is None and nl["state"] == "new"
    assert nl["projected_unused_gpu_hours"] == round(100 - 43 - 43 / 31 * 30, 3)
    slurm = allocs["ehpc_a"]
    assert (slurm["source"], slurm["granted_gpu_hours"]) == ("GrpTRESMins", 100)
    assert slurm["used_gpu_hours_total"] == 32 and slurm["planned_gpu_hours_to_date"] is None


def test_job_mix_service_and_data_quality(october):
    size = {(r["category"], r["size_class"]): r for r in october["job_mix"]["size"]}
    assert size[("eu_science", "2-16 nodes")]["gpu_hours"] == 16
    assert size[("science", "1 GPU")]["jobs_started"] == 2
    assert size[("science", "1 node")]["gpu_hours"] == 40
    phases = {(r["category"], r["phase"]): r["gpu_hours"] for r in october["job_mix"]["phase"]}
    assert phases[("science", "pre-training")] == 43
    service = october["service"]
    assert (service["active_users"], service["new_users"]) == (4, 3)
    wait = by(service["queue_wait"], "category")["science"]
    assert wait["jobs_started"] == 3 and wait["mean_wait_hours"] == 1.0
    assert 0.5 <= wait["median_wait_hours"] <= 1.0  # estimated inside the 30-60 min bin
    quality = october["data_quality"]
    assert quality["jobs_without_gpu_accounting"] == 1
    assert quality["rejected_lines"] == 0 and quality["unusual_states"] == {}


def test_a_report_of_the_running_month_counts_up_to_now(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        nov = document(build_report(store, settings, periods.parse_month("2026-11", "UTC"),
                                    now=NOW))
    assert nov["capacity"]["allocated_gpu_hours"] == 2 * 12  # job C, 00:00 to 12:00
    assert nov["capacity"]["nominal_gpu_hours"] == 16 * 12


def test_median_wait_interpolates_inside_its_bin():
    assert median_wait_s({}) is None
    assert median_wait_s({0: 10}) == 30  # half way into 0..60 s
    assert median_wait_s({0: 1, 4: 1, 5: 2}) == pytest.approx(3600)


def document_of(entry) -> dict:
    from collector.documents.convert import to_json

    return to_json(entry, "UTC")


def _alloc(granted: float = 1000) -> Allocation:
    from datetime import date

    return Allocation("p", granted, date(2026, 1, 1), date(2026, 1, 10), "policy")


def test_an_allocation_burning_fast_runs_out_early_and_warns():
    day = 86400
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    entry = allocation_entry(_alloc(), AllocationUse(0, 800 * 3600, start + 5 * day), None,
                             "UTC")
    assert entry.planned_s == 500 * 3600
    assert entry.projected_exhaustion == date(2026, 1, 7)  # 200 left at 160 a day
    assert [w.kind for w in entry.warnings] == ["over plan"]
    assert entry.warnings[0].ratio == pytest.approx(1.6) and entry.plan_status == "over plan"
    assert document_of(entry)["warnings"] == ["over plan: 160% of the linear plan to date"]


def test_an_allocation_burning_slowly_is_projected_to_leave_budget_unused():
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    entry = allocation_entry(_alloc(), AllocationUse(0, 100 * 3600, start + 5 * 86400),
                             "science", "UTC")
    assert entry.projected_unused_s == pytest.approx(800 * 3600)
    assert [w.kind for w in entry.warnings] == ["under plan", "unused"]
    assert entry.plan_status == "under plan" and entry.plan_ratio == pytest.approx(0.2)
    assert document_of(entry)["warnings"] == ["under plan: 20% of the linear plan to date",
                                              "projected to leave 80% of the budget unused"]


def test_allocation_states_against_the_period():
    from datetime import date

    from collector.engine.report import allocation_state

    oct_ = periods.parse_month("2026-10", "UTC")

    def state(start: str, end: str) -> str:
        a = Allocation("p", 1, date.fromisoformat(start), date.fromisoformat(end), "policy")
        return allocation_state(a, oct_)

    assert state("2026-10-01", "2026-12-31") == "new"
    assert state("2026-01-01", "2026-10-31") == "ended"
    assert state("2026-01-01", "2026-12-31") == "active"
    assert state("2026-11-01", "2026-12-31") == "upcoming"
    assert state("2026-01-01", "2026-09-30") == "finished"


def test_an_unknown_state_is_counted_and_shown(tmp_path):
    odd = fakeslurm.line(120, "maria", "nl_x", "FUTURE_STATE", "2026-10-03T00:00:00",
                         "2026-10-03T00:00:00", "2026-10-03T00:00:00", "", 1, "None assigned")
    settings, env = fakeslurm.make(tmp_path, [*fakeslurm.JOBS, odd])
    done = collect(settings, now=NOW, env=env)
    assert done.rejected == 0 and done.jobs_new == 9
    with Store.open_reader(settings.store.path) as store:
        got = document(build_report(store, settings, periods.parse_month("2026-10", "UTC"),
                                    now=NOW))
    assert got["data_quality"]["unusual_states"] == {"FUTURE_STATE": 1}
    assert got["capacity"]["allocated_gpu_hours"] == 70


def test_a_schema_4_store_gets_the_cheaper_unusual_state_index_on_its_next_collection(
        tmp_path):
    """Schema 4 indexed unusual states under `state NOT IN (...)`, which cost half of a
    job row's insert: the next collection replaces it with the <> chain, and the
    report's count is the same."""
    from collector.store import reads

    odd = fakeslurm.line(120, "maria", "nl_x", "FUTURE_STATE", "2026-10-03T00:00:00",
                         "2026-10-03T00:00:00", "2026-10-03T00:00:00", "", 1, "None assigned")
    settings, env = fakeslurm.make(tmp_path, [*fakeslurm.JOBS, odd])
    collect(settings, now=NOW, env=env)
    with Store.open_writer(settings.store.path) as writer, writer.transaction():
        writer.conn.execute("DROP INDEX jobs_unusual_state")
        writer.conn.execute("CREATE INDEX jobs_unusual ON jobs (state) WHERE state NOT IN "
                            "('COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'RUNNING')")
        writer.conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    collect(settings, now=NOW + 600, env=env)
    with Store.open_reader(settings.store.path) as store:
        indexes = {n for (n,) in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")}
        assert "jobs_unusual_state" in indexes and "jobs_unusual" not in indexes
        month = periods.parse_month("2026-10", "UTC")
        assert reads.unusual_states(store, ("testai",), month.start_s, month.end_s) == {
            "FUTURE_STATE": 1}


def test_a_job_running_across_the_month_boundary_is_split_and_never_counted_twice(tmp_path):
    """Job C (2 GPUs) started 10-31 20:00 and runs when November is reported; it ends
    11-01 18:00 before the next collection: October keeps its 8 GPU-h, November gets
    the rest, and the months add up to the job."""
    settings, env = fakeslurm.make(tmp_path)
    oct_, nov = (periods.parse_month(m, "UTC") for m in ("2026-10", "2026-11"))

    def used(period, now) -> float:
        with Store.open_reader(settings.store.path) as store:
            rep = document(build_report(store, settings, period, now=now))
        return by(rep["accounts"], "account")["com_acme"]["gpu_hours"]

    collect(settings, now=NOW, env=env)
    assert (used(oct_, NOW), used(nov, NOW)) == (8, 2 * 12)
    later = NOW + 12 * 3600
    assert (used(oct_, later), used(nov, later)) == (8, 2 * 24)  # still running: to now
    ended = [j.replace("|RUNNING|", "|COMPLETED|").replace("|Unknown|", "|2026-11-01T18:00:00|")
             if j.startswith("103|") else j for j in fakeslurm.JOBS]
    assert ended != fakeslurm.JOBS
    fakeslurm.write_jobs(tmp_path / "slurm", ended)
    done = collect(settings, now=later, env=env)
    assert done.jobs_updated == 1
    assert (used(oct_, later), used(nov, later)) == (8, 2 * 18)
    assert used(oct_, later) + used(nov, later) == 2 * 22  # 20:00 to 18:00 next day
