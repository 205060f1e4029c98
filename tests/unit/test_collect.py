"""Collection into a real SQLite store from stand-in sacct/sacctmgr processes:
incremental, idempotent, all-or-nothing, one collector at a time."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.collect import Windows, collect
from collector.slurm import commands
from collector.slurm.commands import SlurmError
from collector.store.database import Store, StoreBusy, StoreError

from . import fakeslurm

NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())


def totals(settings) -> tuple[int, int, int]:
    with Store.open_reader(settings.store.path) as store:
        jobs = store.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        day = store.conn.execute("SELECT SUM(gpu_s) FROM usage_day").fetchone()[0]
        starts = store.conn.execute("SELECT SUM(jobs) FROM starts_day").fetchone()[0]
    return jobs, day, starts


def test_first_collection_stores_every_record_once_and_rolls_up_finished_jobs(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    done = collect(settings, now=NOW, env=env)
    assert (done.status, done.jobs_new, done.jobs_updated, done.rejected) == ("ok", 8, 0, 0)
    jobs, gpu_s, starts = totals(settings)
    assert jobs == 8  # the requeued job is two records
    # C is running: not rolled up; started jobs: all but D (never ran), C included.
    assert gpu_s == (8 * 4 + 4 * 10 + 1 * 3 + 1 * 1 + 1 * 2) * 3600
    assert starts == 7
    with Store.open_reader(settings.store.path) as store:
        assert [j.job_id_raw for j in store.open_jobs("testai")] == [103]
        accounts = dict(store.conn.execute("SELECT account, parent FROM accounts"))
        assert accounts["ehpc_a"] == "eu_science" and len(accounts) == 10


def test_collecting_again_changes_nothing(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    before = totals(settings)
    again = collect(settings, now=NOW + 600, env=env)
    assert (again.jobs_new, again.jobs_updated) == (0, 0)
    assert totals(settings) == before
    # The second run starts at the first run's end minus the look-back.
    assert again.window_start_s == NOW - 6 * 3600


def test_a_job_that_ends_moves_into_the_rollup_once(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    ended = [j.replace("RUNNING", "COMPLETED").replace("|Unknown|", "|2026-11-01T02:00:00|")
             if j.startswith("103|") else j for j in fakeslurm.JOBS]
    fakeslurm.write_jobs(tmp_path / "slurm", ended)
    done = collect(settings, now=NOW + 600, env=env)
    assert (done.jobs_new, done.jobs_updated) == (0, 1)
    _, hour_s, _ = totals(settings)
    assert hour_s == (8 * 4 + 4 * 10 + 3 + 1 + 2 + 2 * 6) * 3600
    collect(settings, now=NOW + 1200, env=env)
    assert totals(settings)[1] == hour_s


def test_an_open_job_missing_from_the_windows_is_read_again_by_id(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    # The job ends long before the next window (a record that reached slurmdbd late).
    late = [j.replace("RUNNING", "COMPLETED").replace("|Unknown|", "|2026-10-31T21:00:00|")
            if j.startswith("103|") else j for j in fakeslurm.JOBS]
    fakeslurm.write_jobs(tmp_path / "slurm", late)
    done = collect(settings, now=NOW + 30 * 86400, env=env)
    assert done.jobs_updated == 1
    calls = (tmp_path / "slurm" / "calls.log").read_text()
    assert "--jobs=103" in calls
    with Store.open_reader(settings.store.path) as store:
        assert store.open_jobs("testai") == []


def test_a_failing_source_leaves_the_store_as_it_was_and_records_the_failure(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    before = totals(settings)
    fakeslurm.write_jobs(tmp_path / "slurm", [*fakeslurm.JOBS, fakeslurm.line(
        200, "anna", "ehpc_a", "COMPLETED", "2026-11-01T09:00:00", "2026-11-01T09:00:00",
        "2026-11-01T10:00:00", fakeslurm.gpu(8))])
    with pytest.raises(SlurmError, match="exited 1.*Problem talking to the database"):
        collect(settings, now=NOW + 600, env={**env, "FAKE_SLURM_FAIL": "1"})
    assert totals(settings) == before
    with Store.open_reader(settings.store.path) as store:
        failed = store.last_collection("testai", status="failed")
        ok = store.last_collection("testai")
    assert "Problem talking to the database" in failed.message and ok.id == 1
    done = collect(settings, now=NOW + 1200, env=env)  # recovery catches up
    assert done.jobs_new == 1


def _with_new_job(tmp_path) -> None:
    fakeslurm.write_jobs(tmp_path / "slurm", [*fakeslurm.JOBS, fakeslurm.line(
        200, "anna", "ehpc_a", "COMPLETED", "2026-11-01T09:00:00", "2026-11-01T09:00:00",
        "2026-11-01T10:00:00", fakeslurm.gpu(8))])


def test_sacct_failing_after_writing_part_of_a_window_leaves_the_store_as_it_was(tmp_path):
    """The records sacct wrote before it failed were parsed and stored as they came; the
    failure takes them all back."""
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    before = totals(settings)
    _with_new_job(tmp_path)
    with pytest.raises(SlurmError, match="sacct exited 1 .*failed to connect"):
        collect(settings, now=NOW + 600, env={**env, "FAKE_SACCT_STOP_AFTER": "1:fail"})
    assert totals(settings) == before
    with Store.open_reader(settings.store.path) as store:
        assert "failed to connect" in store.last_collection("testai", status="failed").message
    assert collect(settings, now=NOW + 1200, env=env).jobs_new == 1


def _fake_sacct_running(tmp_path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"fakeslurm/sacct" in (proc / "cmdline").read_bytes() \
                    and str(tmp_path).encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_sacct_hanging_after_writing_part_of_a_window_times_out_and_is_stopped(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    settings = fakeslurm.changed(settings, "slurm", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SlurmError, match=r"sacct timed out after 2 s \(jobs 20"):
        collect(settings, now=NOW, env={**env, "FAKE_SACCT_STOP_AFTER": "2:hang"})
    assert time.monotonic() - t0 < 30
    assert _fake_sacct_running(tmp_path) == []
    with Store.open_reader(settings.store.path) as store:
        assert store.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_records_read_in_tiny_pieces_are_stored_as_when_read_whole(tmp_path, monkeypatch):
    stored = []
    for chunk in (commands.CHUNK, 7):
        monkeypatch.setattr(commands, "CHUNK", chunk)
        (tmp_path / str(chunk)).mkdir()
        settings, env = fakeslurm.make(tmp_path / str(chunk))
        done = collect(settings, now=NOW, env=env)
        assert (done.jobs_new, done.rejected) == (8, 0)
        with Store.open_reader(settings.store.path) as store:
            stored.append((store.conn.execute("SELECT * FROM jobs ORDER BY job_id_raw, submit_s"
                                              ).fetchall(),
                           store.conn.execute("SELECT * FROM usage_day ORDER BY 1, 2, 3, 4, 5, "
                                              "6, 7, 8").fetchall()))
    assert stored[0] == stored[1]


def test_the_run_after_a_failure_reads_the_outage_span_again_next_time(tmp_path):
    """Records slurmctld kept during an outage reach slurmdbd late (their eligible time
    later still): the first good run after a failure does not move the window on."""
    settings, env = fakeslurm.make(tmp_path)
    first = collect(settings, now=NOW, env=env)
    with pytest.raises(SlurmError):
        collect(settings, now=NOW + 600, env={**env, "FAKE_SLURM_FAIL": "1"})
    lookback = int(settings.slurm.lookback_hours * 3600)
    recovery = collect(settings, now=NOW + 1200, env=env)
    assert recovery.window_start_s == first.window_end_s - lookback
    assert recovery.window_end_s == recovery.window_start_s + lookback  # held
    assert "read again" in recovery.message
    late = fakeslurm.line(201, "anna", "ehpc_a", "COMPLETED", "2026-11-01T11:55:00",
                          "2026-11-01T11:55:00", "2026-11-01T11:58:00", fakeslurm.gpu(1))
    fakeslurm.write_jobs(tmp_path / "slurm", [*fakeslurm.JOBS, late])  # arrives late
    after = collect(settings, now=NOW + 1500, env=env)
    assert after.window_start_s == recovery.window_start_s and after.jobs_new == 1
    assert after.window_end_s == NOW + 1500 and after.message == ""


def test_a_malformed_line_is_kept_and_counted_not_dropped(tmp_path):
    settings, env = fakeslurm.make(tmp_path, [*fakeslurm.JOBS, "108|108|testai|x|broken"])
    done = collect(settings, now=NOW, env=env)
    assert done.rejected == 1 and done.jobs_new == 8
    with Store.open_reader(settings.store.path) as store:
        (source, reason, line), = store.conn.execute(
            "SELECT source, reason, line FROM rejected_lines").fetchall()
    assert "fields" in reason and line == "108|108|testai|x|broken" and "sacct" in source


def test_an_account_text_forging_another_accounts_row_is_rejected_not_stored(tmp_path):
    """A coordinator writes a description with a line break and a row of its own:
    sacctmgr prints it raw. The collection goes on, neither account keeps any text,
    and the lines are kept as rejected."""
    settings, env = fakeslurm.make(tmp_path)
    (tmp_path / "slurm" / "sacctmgr-account.txt").write_text(fakeslurm.ACCOUNTS.replace(
        "com_acme|org com_acme|desc com_acme", "com_acme|org com_acme|x\nnl_x|Forged|hijack"))
    done = collect(settings, now=NOW, env=env)
    # com_acme's row, both nl_x rows, and science's (just before the real nl_x row: its
    # text might run on into it).
    assert done.jobs_new == 8 and done.rejected == 4
    with Store.open_reader(settings.store.path) as store:
        orgs = dict(store.conn.execute("SELECT account, organisation FROM accounts"))
        sources = {r[0] for r in store.conn.execute("SELECT source FROM rejected_lines")}
    assert orgs["nl_x"] == orgs["com_acme"] == orgs["science"] == ""
    assert orgs["ehpc_a"] == "org ehpc_a"
    assert "Forged" not in orgs.values() and sources == {"sacctmgr show account"}


def test_a_second_collector_is_refused_while_one_writes(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    with Store.open_writer(settings.store.path), \
            pytest.raises(StoreBusy, match=f"another collection \\(pid {os.getpid()}\\)"):
        collect(settings, now=NOW, env=env)


def test_readers_see_the_last_committed_collection_while_a_write_is_open(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    writer = Store.open_writer(settings.store.path)
    with Store.open_reader(settings.store.path) as reader, writer.transaction():
        writer.conn.execute("DELETE FROM jobs")
        assert reader.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 8
        writer.conn.execute("ROLLBACK")
        writer.conn.execute("BEGIN")  # the context manager commits this empty one
    writer.close()
    assert totals(settings)[0] == 8


def test_a_file_that_is_not_a_store_is_named(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "gpu-usage.sqlite").write_text("not sqlite")
    settings, _ = fakeslurm.make(tmp_path)
    for open_ in (Store.open_reader, Store.open_writer):
        with pytest.raises(StoreError, match="gpu-usage.sqlite: not a usable store"):
            open_(settings.store.path)


def test_a_store_made_before_the_covering_index_gets_it_on_the_next_collection(tmp_path):
    """usage_day_account_gpu (the year to date per account read from the index alone)
    replaces usage_day_account when a collection opens an older store."""
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)

    def indexes() -> set[str]:
        with Store.open_reader(settings.store.path) as reader:
            return {name for (name,) in reader.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = "
                "'usage_day' AND sql IS NOT NULL")}

    assert indexes() == {"usage_day_user", "usage_day_account_gpu"}
    with Store.open_writer(settings.store.path) as writer, writer.transaction():
        writer.conn.execute("DROP INDEX usage_day_account_gpu")
        writer.conn.execute("CREATE INDEX usage_day_account ON usage_day "
                            "(cluster, account, day_s)")
    assert indexes() == {"usage_day_user", "usage_day_account"}
    collect(settings, now=NOW + 3600, env=env)
    assert indexes() == {"usage_day_user", "usage_day_account_gpu"}
    with Store.open_reader(settings.store.path) as reader:
        plan = " ".join(str(r) for r in reader.conn.execute(
            "EXPLAIN QUERY PLAN SELECT account, SUM(gpu_s) FROM usage_day WHERE cluster = ? "
            "AND day_s >= 0 AND day_s < ? GROUP BY account", ("testai", NOW)))
    assert "COVERING INDEX usage_day_account_gpu" in plan


def _months_match_their_days(settings) -> int:
    """Each month rollup row equals its days' cells summed (months of the store's zone);
    returns how many month rows there are."""
    from zoneinfo import ZoneInfo

    from collector.store.database import (
        MONTHS_OF,
        START_DIMS,
        START_VALUES,
        USAGE_DIMS,
        USAGE_VALUES,
        month_span,
    )

    rows = 0
    with Store.open_reader(settings.store.path) as store:
        zone = settings.facility.timezone
        assert store.meta(MONTHS_OF) == zone
        for table, dims, values in (("usage", USAGE_DIMS, USAGE_VALUES),
                                    ("starts", START_DIMS, START_VALUES)):
            summed: dict[tuple, list[int]] = {}
            for row in store.conn.execute(f"SELECT {', '.join(dims + values)} FROM {table}_day"):
                key = (row[0], month_span(row[1], ZoneInfo(zone))[0], *row[2:len(dims)])
                cell = summed.setdefault(key, [0] * len(values))
                for i, v in enumerate(row[len(dims):]):
                    cell[i] += v
            months = {tuple(r[:len(dims)]): list(r[len(dims):]) for r in store.conn.execute(
                f"SELECT {', '.join(dims + values)} FROM {table}_month")}
            assert months == summed
            rows += len(months)
    return rows


@pytest.mark.parametrize("zone", ["UTC", "America/Havana"])
def test_month_rollups_are_their_days_summed_through_every_change(tmp_path, zone):
    """usage_month and starts_month (what a report of whole months reads) follow the day
    rollups: a job that ends later changes the two months it touches, a schema 3 store
    gets them all on its next collection (readers sum the days until then), a new time
    zone rebuilds them in it; and a month read from them equals the same month summed
    from its days. Havana: UTC-4 in October, and its clocks go back at 01:00 on the
    first of November."""
    from collector.engine import periods
    from collector.store import reads
    from collector.store.database import MONTHS_OF, SCHEMA_VERSION

    settings, env = fakeslurm.make(tmp_path)
    settings = fakeslurm.changed(settings, "facility", timezone=zone)
    collect(settings, now=NOW, env=env)
    assert _months_match_their_days(settings) > 0
    ended = [j.replace("RUNNING", "COMPLETED").replace("|Unknown|", "|2026-11-01T02:00:00|")
             if j.startswith("103|") else j for j in fakeslurm.JOBS]
    fakeslurm.write_jobs(tmp_path / "slurm", ended)
    collect(settings, now=NOW + 600, env=env)
    _months_match_their_days(settings)
    month = periods.parse_month("2026-10", zone, NOW)
    october = (month.start_s, month.end_s)

    def october_reads() -> tuple:
        with Store.open_reader(settings.store.path) as store:
            return (reads._rollup(store, *october),
                    sorted(reads.usage_rows(store, ("testai",), *october), key=repr),
                    sorted(reads.start_rows(store, ("testai",), *october), key=repr),
                    reads.account_totals(store, ("testai",), *october),
                    reads.cluster_totals(store, ("testai",), *october))

    by_month = october_reads()
    assert by_month[0] == "month" and by_month[1] and by_month[2]
    if zone == "UTC":
        assert by_month[3]["ehpc_a"] == 8 * 2 * 3600
        assert sum(r.gpu_s for r in by_month[1]) == fakeslurm.TOTAL_OCT_GPU_H * 3600
    # Readers of a store whose months are not summed (yet) read the days.
    with Store.open_writer(settings.store.path) as writer, writer.transaction():
        writer.conn.execute("DELETE FROM usage_month")
        writer.conn.execute("DELETE FROM starts_month")
        writer.conn.execute("DELETE FROM meta WHERE key = ?", (MONTHS_OF,))
    by_day = october_reads()
    assert by_day[0] == "day" and by_day[1:] == by_month[1:]
    # A store of schema 3 (before the month rollups) is refused until a collection
    # upgrades it, and that collection sums every month.
    with Store.open_writer(settings.store.path) as writer, writer.transaction():
        writer.conn.execute("DROP TABLE usage_month")
        writer.conn.execute("DROP TABLE starts_month")
        writer.conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="run 'gpu-usage collect' once to upgrade"):
        Store.open_reader(settings.store.path)
    collect(settings, now=NOW + 1200, env=env)
    _months_match_their_days(settings)
    assert october_reads() == by_month
    with Store.open_reader(settings.store.path) as store:
        assert store.meta("schema") == SCHEMA_VERSION == "5"
    other = "Europe/Amsterdam" if zone == "UTC" else "UTC"
    moved = fakeslurm.changed(settings, "facility", timezone=other)
    collect(moved, now=NOW + 1800, env=env)
    assert _months_match_their_days(moved) > 0


def test_windows_follow_the_job_density():
    day = 86400
    w = Windows(0, 400 * day, max_s=31 * day, growth=4)
    assert w.take() == (0, day)
    w.observe(0, day)  # quiet: at most `growth` times the size
    assert w.take() == (day, 5 * day)
    w.observe(Windows.TARGET * 8, 4 * day)  # busy: aimed at TARGET records
    assert w.take() == (5 * day, 5 * day + day // 2)
    w.observe(10**9, day)  # never below an hour
    assert w.take()[1] - 5 * day - day // 2 == 3600
    for _ in range(12):
        w.observe(0, day)
        w.take()
    start, end = w.take()
    assert end - start == 31 * day  # never above max_s


def test_a_record_is_its_own_row_in_the_store():
    from collector.slurm.records import JobRecord
    from collector.slurm.sacct_parser import parse_line
    from collector.store.database import JOB_COLUMNS, job_row, row_job

    assert JobRecord._fields == JOB_COLUMNS
    record = parse_line(fakeslurm.JOBS[0])
    assert row_job(job_row(record)) == record


def test_from_scratch_forgets_records_that_slurm_no_longer_has(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    fakeslurm.write_jobs(tmp_path / "slurm", fakeslurm.JOBS[1:])
    assert totals(settings)[0] == 8
    collect(settings, now=NOW + 60, env=env)  # incremental: history is not re-read
    assert totals(settings)[0] == 8
    done = collect(settings, now=NOW + 120, env=env, from_scratch=True)
    assert done.jobs_new == 7 and totals(settings)[0] == 7
    assert totals(settings)[1] == (4 * 10 + 1 * 3 + 1 * 1 + 1 * 2) * 3600


def test_the_busy_message_names_the_lock_holder_not_stale_file_content(tmp_path):
    """The lock file may still hold the previous holder's pid for a moment after a new
    holder took the lock: the message takes the holder from the kernel (/proc/locks)."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from collector.store.database import Store\n"
                               f"w = Store.open_writer({str(tmp_path)!r})\n"
                               "print('locked', flush=True)\ntime.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "collect.lock").write_text("999999\n")   # a previous holder's pid
        with pytest.raises(StoreBusy, match=rf"another collection \(pid {holder.pid}\)"):
            Store.open_writer(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_each_collection_records_the_node_inventory_and_keeps_its_history(tmp_path):
    """sinfo's nodes go into the inventory: a node that keeps its GPUs extends its row,
    a change starts a new one; when sinfo fails the collection still succeeds."""
    from collector.store import reads

    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        first = reads.node_gpus(store, "testai")
    assert first == {n: [(NOW, NOW, 4)] for n in ("gpu01", "gpu02", "gpu03", "gpu04")}
    sinfo = tmp_path / "slurm" / "sinfo.txt"
    sinfo.write_text(sinfo.read_text().replace("gpu03|gpu*|mixed|gpu:h100:4|",
                                               "gpu03|gpu*|mixed|gpu:h100:8|"))
    collect(settings, now=NOW + 600, env=env)
    with Store.open_reader(settings.store.path) as store:
        second = reads.node_gpus(store, "testai")
    assert second["gpu01"] == [(NOW, NOW + 600, 4)]
    assert second["gpu03"] == [(NOW, NOW, 4), (NOW + 600, NOW + 600, 8)]
    (tmp_path / "slurm" / "sinfo.fail").write_text("")
    done = collect(settings, now=NOW + 1200, env=env)
    assert done.status == "ok" and "node inventory not updated" in done.message


def test_a_reader_sees_one_collection_however_long_it_reads(tmp_path):
    """A report reads the store in many queries: a collection that commits meanwhile
    is not seen by any of them (one snapshot per reader), and is by the next reader."""
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    count = "SELECT COUNT(*), MAX(id) FROM collections"
    with Store.open_reader(settings.store.path) as reader:
        before = reader.conn.execute(count).fetchone()
        collect(settings, now=NOW + 3600, env=env)  # commits while the reader is open
        assert reader.conn.execute(count).fetchone() == before
        assert reader.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    with Store.open_reader(settings.store.path) as fresh:
        assert fresh.conn.execute(count).fetchone() == (before[0] + 1, before[1] + 1)


def test_the_cycle_collector_pauses_for_a_collection_and_resumes_after(tmp_path, monkeypatch):
    """gc is off while records are read (millions of tuples, no cycles) and back on
    after a collection, whether it succeeded or failed."""
    import gc

    import collector.collect as collect_module

    settings, env = fakeslurm.make(tmp_path)
    seen = []
    real = collect_module._collect

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(collect_module, "_collect", watched)
    assert gc.isenabled()
    collect(settings, now=NOW, env=env)
    assert gc.isenabled()
    with pytest.raises(SlurmError):
        collect(settings, now=NOW + 600, env={**env, "FAKE_SLURM_FAIL": "1"})
    assert gc.isenabled() and seen == [False, False]


def test_a_record_without_energy_or_end_is_stored_with_nulls(tmp_path):
    """None is bound as NULL (through the store's None adapter), never as a value."""
    settings, env = fakeslurm.make(tmp_path)
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        kinds = store.conn.execute(
            "SELECT DISTINCT typeof(array_job_id), typeof(busy_gpu_s), typeof(energy_j) "
            "FROM jobs").fetchall()
        open_ends = store.conn.execute("SELECT typeof(end_s) FROM jobs WHERE state = 'RUNNING'"
                                       ).fetchall()
    assert ("null", "null", "null") in kinds
    assert open_ends and {k for (k,) in open_ends} == {"null"}


def test_slurm_tools_run_without_the_callers_format_and_selection_variables():
    caller = {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf", "TZ": "Europe/Paris",
              "SLURM_TIME_FORMAT": "relative", "SACCT_FEDERATION": "1",
              "SQUEUE_USERS": "nobody", "SINFO_PARTITION": "debug", "SREPORT_X": "y",
              "SACCTMGR_FORMAT": "x", "SQUEUE": "kept (not a prefix match)"}
    env = commands.slurm_env(caller)
    assert env == {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf", "TZ": "UTC",
                   "SLURM_TIME_FORMAT": "standard", "SQUEUE": "kept (not a prefix match)"}
    assert caller["TZ"] == "Europe/Paris"  # the caller's own mapping is left alone


def _windows_and_events(count: int) -> tuple[list, list[str], object, object]:
    day = 86400
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    windows = [(start + i * 8 * day, start + (i + 1) * 8 * day) for i in range(count)]
    pending, events = list(windows), []

    def take():
        events.append("take")
        return pending.pop(0) if pending else None

    def observe(lines, seconds):
        events.append(f"observe {seconds // day} d")

    return windows, events, take, observe


def test_sacct_windows_are_read_whole_and_in_order_two_at_a_time(tmp_path):
    """The first two windows at once, then the one after next when one ends (sized
    from what that one held): never more than two sacct."""
    _, env = fakeslurm.make(tmp_path)
    windows, events, take, observe = _windows_and_events(4)
    read = [(w, chunk is None) for w, _, chunk in
            commands.stream_sacct(take, observe, None, env=env)]
    assert [w for w, done in read if done] == windows
    assert events == ["take", "take", "observe 8 d", "take", "observe 8 d", "take",
                      "observe 8 d", "take", "observe 8 d"]


def test_the_second_window_is_asked_for_before_the_first_one_answers(tmp_path, monkeypatch):
    """slurmdbd answers the second window while the first one's sacct is still waiting
    for its own answer (here: forever, until it times out; both are then stopped)."""
    _, env = fakeslurm.make(tmp_path)
    _, events, take, observe = _windows_and_events(4)
    started, first_alive_at_take = [], []
    real_init = commands._Sacct.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self)

    def checking_take():
        # Still waiting: its timeout (the only thing that ends it here) has not fired.
        first_alive_at_take.append(bool(started) and not started[0].timer.finished.is_set())
        return take()

    monkeypatch.setattr(commands._Sacct, "__init__", recording_init)
    with pytest.raises(SlurmError, match=r"sacct timed out after 2 s \(jobs 2026-10-01"):
        list(commands.stream_sacct(checking_take, observe, None, timeout_s=2,
                                   env={**env, "FAKE_SACCT_STOP_AFTER": "0:hang"}))
    assert events == ["take", "take"]
    # The first one still running (waiting) when the second is asked for.
    assert first_alive_at_take == [False, True]
    assert _fake_sacct_running(tmp_path) == []


def test_finished_windows_leave_no_descriptor_open_with_the_cycle_collector_paused(tmp_path):
    """A collection pauses Python's cyclic garbage collector: each sacct's pipes must be
    freed without it (a timer that held its sacct through a bound method kept both
    pipes of every finished window open; about 500 windows ran out of descriptors)."""
    import gc

    _, env = fakeslurm.make(tmp_path)
    _, _, take, observe = _windows_and_events(40)
    before = len(os.listdir("/proc/self/fd"))
    gc.disable()
    try:
        done = sum(chunk is None for _, _, chunk in
                   commands.stream_sacct(take, observe, None, env=env))
        assert done == 40
        assert len(os.listdir("/proc/self/fd")) <= before + 2
    finally:
        gc.enable()


def test_a_slurm_tool_that_cannot_be_started_is_a_slurm_error(tmp_path):
    """Not executable here (as out of descriptors or memory would be): a SlurmError that
    names the tool, which fails this cluster's collection and not the others."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sacct", "sacctmgr"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o644)
    env = {"PATH": str(bin_dir)}
    with pytest.raises(SlurmError, match=r"sacctmgr could not be started \(show tres\)"):
        commands.run_sacctmgr_tres(env=env)
    _, _, take, observe = _windows_and_events(2)
    with pytest.raises(SlurmError, match=r"sacct could not be started \(jobs 2026-10-01"):
        list(commands.stream_sacct(take, observe, None, env=env))
