"""Writes a generated history into slurmdbd's tables and has slurmdbd roll it up.

slurmdbd's schema is Slurm's own business; every assumption about it (tables,
columns, values observed on Slurm 22.05) lives in this module. The steps follow
`shared/slurm-testcluster.md`: job rows, node events and the maintenance
reservation go in; the cluster's capacity event is moved to before the history;
the last-rollup marks go back to the start of the history; slurmdbd is restarted
and rolls everything up, after which sacct and sreport both answer for those
months.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ClusterShell.NodeSet import NodeSet
from ClusterShell.RangeSet import RangeSet

from collector import clock

from . import database
from .history import (
    BATCH as BATCH_STEP,
)
from .history import (
    EXTERN,
    FIRST_JOB_ID,
    WHOLE_MAX_JOBS,
    History,
    HistoryJob,
    HistorySpec,
    HistoryStep,
    add_months,
    energy_j,
    generate,
    generate_by_month,
    job_steps,
)
from .layout import (
    CPUS_PER_NODE,
    FIRST_LIVE_JOB_ID,
    GPU_TYPE,
    GPUS_PER_NODE,
    MEMORY_MB_PER_NODE,
    PARTITION,
    Layout,
)
from .processes import ClusterError, run_slurm

USAGE_TABLES = tuple(f"{kind}_{period}_table" for kind in ("usage", "assoc_usage", "wckey_usage")
                     for period in ("hour", "day", "month"))
NO_VAL = 0xFFFFFFFE  # "not an array task" / "not a het job component" in the job table
RESV_FLAGS_MAINT = 557057  # flags of `scontrol create reservation flags=maint nodes=ALL` (22.05)
FIRST_RESV_ID = 1000
BATCH = 2000
MEM_MB_PER_CPU = MEMORY_MB_PER_NODE // CPUS_PER_NODE

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Ids:
    """Ids that the job rows refer to, read from the cluster's own tables."""

    tres: dict[str, int]                 # "cpu", "mem", "node", "billing", "gpu", "gpu:h100"
    assoc: dict[tuple[str, str], int]    # (user, account) -> id_assoc
    wckey: dict[tuple[str, str], int]    # (user, wckey) -> id_wckey
    qos_normal: int
    root_assoc: int
    unix: dict[str, tuple[int, int]]     # user -> (uid, gid)


def _ids(cur, cluster: str) -> Ids:
    cur.execute("SELECT type, name, id FROM tres_table WHERE deleted = 0")
    tres = {}
    for typ, name, tid in cur.fetchall():
        key = {"cpu": "cpu", "mem": "mem", "node": "node", "billing": "billing",
               "energy": "energy"}.get(typ)
        if typ == "gres" and name in ("gpu", f"gpu:{GPU_TYPE}", "gpuutil", "gpumem"):
            key = name  # gpuutil, gpumem: registered by Slurm 23.02+ with gres/gpu
        if key:
            tres[key] = tid
    missing = {"cpu", "mem", "node", "billing", "gpu", f"gpu:{GPU_TYPE}"} - tres.keys()
    if missing:
        raise ClusterError(f"TRES not registered in slurmdbd: {sorted(missing)} "
                           "(has slurmctld started with AccountingStorageTRES=gres/gpu?)")
    cur.execute(f"SELECT user, acct, id_assoc FROM `{cluster}_assoc_table` WHERE deleted = 0")
    assoc = {}
    root_assoc = 0
    for user, acct, aid in cur.fetchall():
        assoc[(user, acct)] = aid
        if user == "root" and acct == "root":
            root_assoc = aid
    cur.execute(f"SELECT user, wckey_name, id_wckey FROM `{cluster}_wckey_table` WHERE deleted = 0")
    wckey = {(u, w): i for u, w, i in cur.fetchall()}
    cur.execute("SELECT id FROM qos_table WHERE name = 'normal'")
    row = cur.fetchone()
    unix = {}
    for user, _ in assoc:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            continue  # the account's own association (user "") or a user gone from Unix
        unix[user] = (pw.pw_uid, pw.pw_gid)
    return Ids(tres, assoc, wckey, row[0] if row else 1, root_assoc, unix)


def _tres(ids: Ids, cpus: int, nodes: int, gpus: int, energy_j: int | None = None) -> str:
    t = ids.tres
    parts = [(t["cpu"], cpus), (t["mem"], cpus * MEM_MB_PER_CPU), (t["node"], nodes),
             (t["billing"], cpus)]
    if gpus:
        parts += [(t["gpu"], gpus), (t[f"gpu:{GPU_TYPE}"], gpus)]
    if energy_j is not None and "energy" in t:
        parts.append((t["energy"], energy_j))  # what slurmctld adds when the job ends
    return ",".join(f"{k}={v}" for k, v in sorted(parts))


JOB_COLUMNS = (
    "mod_time", "account", "cpus_req", "job_name", "id_assoc", "id_array_job", "id_array_task",
    "id_job", "id_qos", "id_resv", "id_wckey", "id_user", "id_group", "het_job_id",
    "het_job_offset", "kill_requid", "state_reason_prev", "mem_req", "nodelist", "nodes_alloc",
    "node_inx", "partition", "priority", "state", "timelimit", "time_submit", "time_eligible",
    "time_start", "time_end", "wckey", "work_dir", "submit_line", "tres_alloc", "tres_req",
    "exit_code", "derived_ec", "gres_used",
)


def job_row(job: HistoryJob, ids: Ids, node_index: dict[str, int]) -> tuple:
    """The job table row for one history job, as Slurm 22.05 would have written it."""
    if job.user not in ids.unix:
        raise ClusterError(f"Unix user {job.user} does not exist (run `cluster up` first)")
    uid, gid = ids.unix[job.user]
    assoc = ids.assoc.get((job.user, job.account))
    if assoc is None:
        raise ClusterError(f"no association for user {job.user} in account {job.account}")
    wckey_id = ids.wckey.get((job.user, job.wckey.lstrip("*")), 0)
    nodes = len(job.nodes) if job.ran else 0
    req_nodes = max(1, -(-job.gpus // GPUS_PER_NODE))
    gres = f"gres/gpu={job.gpus}" if job.gpus else ""
    return (
        job.end or job.submit, job.account, job.cpus, job.name, assoc, job.array_job_id,
        NO_VAL if job.array_task_id is None else job.array_task_id, job.job_id, ids.qos_normal,
        0, wckey_id, uid, gid, 0, NO_VAL,
        uid if job.killed_by_owner else None, 0, job.cpus * MEM_MB_PER_CPU,
        str(NodeSet.fromlist(job.nodes)) if job.ran else "None assigned", nodes,
        str(RangeSet([node_index[n] for n in job.nodes])) if job.ran else "",
        PARTITION, 1, job.state, job.timelimit_min, job.submit, job.eligible, job.start, job.end,
        job.wckey, "/tmp",
        f"sbatch -A {job.account} --wckey={job.wckey.lstrip('*')} --gpus={job.gpus} job.sh",
        _tres(ids, job.cpus, nodes, job.gpus, energy_j(job)) if job.ran else "",
        _tres(ids, job.cpus, req_nodes, job.gpus), job.exit_code, 0, gres,
    )


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _write_jobs(cur, conn, lay: Layout, history: History, ids: Ids, progress: Progress) -> None:
    table = f"`{lay.cluster}_job_table`"
    cols = ", ".join(f"`{c}`" for c in JOB_COLUMNS)
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})"
    node_index = {n: i for i, n in enumerate(lay.nodes)}
    done = 0
    total = len(history.jobs)
    for batch in _batches(history.jobs, BATCH):
        cur.executemany(sql, [job_row(j, ids, node_index) for j in batch])
        conn.commit()
        done += len(batch)
        progress("jobs", done, total)


STEP_COLUMNS = (
    "job_db_inx", "deleted", "exit_code", "id_step", "step_het_comp", "nodelist", "nodes_alloc",
    "node_inx", "state", "step_name", "task_cnt", "task_dist", "time_start", "time_end",
    "time_suspended", "user_sec", "user_usec", "sys_sec", "sys_usec", "act_cpufreq",
    "consumed_energy", "req_cpufreq_min", "req_cpufreq", "req_cpufreq_gov", "tres_alloc",
    "tres_usage_in_ave", "tres_usage_in_max", "tres_usage_in_max_taskid",
    "tres_usage_in_max_nodeid", "tres_usage_in_min", "tres_usage_in_min_taskid",
    "tres_usage_in_min_nodeid", "tres_usage_in_tot", "tres_usage_out_ave",
    "tres_usage_out_max", "tres_usage_out_max_taskid", "tres_usage_out_max_nodeid",
    "tres_usage_out_min", "tres_usage_out_min_taskid", "tres_usage_out_min_nodeid",
    "tres_usage_out_tot",
)
STEP_NAMES = {EXTERN: "extern", BATCH_STEP: "batch"}


def step_row(inx: int, step: HistoryStep, job: HistoryJob, ids: Ids,
             node_index: dict[str, int]) -> tuple:
    """A step table row as slurmdbd keeps it (columns seen on 24.11): the GPU figures in
    TRESUsageIn* as jobacct_gather's nvml plugin leaves them, one task per node (tot:
    the sum of the tasks' peaks; ave, max and min: one task's)."""
    tasks = len(step.nodes)
    util, mem = ids.tres["gpuutil"], ids.tres["gpumem"]
    one = f"{mem}={step.gpumem // tasks},{util}={step.gpuutil // tasks}"
    first = f"{mem}=0,{util}=0"
    cpus = job.cpus * tasks // max(1, len(job.nodes))
    return (
        inx, 0, 0, step.step_id, NO_VAL, str(NodeSet.fromlist(step.nodes)), tasks,
        str(RangeSet([node_index[n] for n in step.nodes])), 3,
        STEP_NAMES.get(step.step_id, "python"), tasks, 0, step.start, step.end, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, _tres(ids, cpus, tasks, step.gpus), one, one, first, first, one, first,
        first, f"{mem}={step.gpumem},{util}={step.gpuutil}", "", "", "", "", "", "", "", "",
    )


def _write_steps(cur, conn, lay: Layout, history: History, ids: Ids,
                 progress: Progress) -> int:
    """Step rows of the history's GPU jobs, where slurmdbd tracks GPU use (23.02+)."""
    if "gpuutil" not in ids.tres or "gpumem" not in ids.tres:
        return 0
    cur.execute(f"SELECT id_job, time_submit, job_db_inx FROM `{lay.cluster}_job_table` "
                "WHERE id_job >= %s AND id_job < %s", (FIRST_JOB_ID, FIRST_LIVE_JOB_ID))
    inx = {(int(j), int(t)): int(i) for j, t, i in cur.fetchall()}
    cols = ", ".join(f"`{c}`" for c in STEP_COLUMNS)
    sql = (f"INSERT INTO `{lay.cluster}_step_table` ({cols}) "
           f"VALUES ({', '.join(['%s'] * len(STEP_COLUMNS))})")
    node_index = {n: i for i, n in enumerate(lay.nodes)}
    rows = [step_row(inx[(j.job_id, j.submit)], st, j, ids, node_index)
            for j in history.jobs for st in job_steps(j)]
    for done, batch in enumerate(_batches(rows, BATCH), 1):
        cur.executemany(sql, batch)
        conn.commit()
        progress("steps", min(len(rows), done * BATCH), len(rows))
    return len(rows)


def _node_tres(ids: Ids, gpus: int) -> str:
    return _tres(ids, CPUS_PER_NODE, 1, gpus).replace(f"{ids.tres['node']}=1,", "")


def _node_count(lay: Layout, nodes: str) -> int:
    return len(nodes.split(",")) if nodes else len(lay.nodes)


def _node_inx(lay: Layout, nodes: str) -> str:
    """slurmdbd's node index list of a reservation: "0-3", or "2" for gpu03 alone."""
    if not nodes:
        return f"0-{len(lay.nodes) - 1}"
    return ",".join(str(lay.nodes.index(n)) for n in nodes.split(","))


def _write_events(cur, lay: Layout, history: History, ids: Ids, first_resv: int = 0) -> None:
    table = f"`{lay.cluster}_event_table`"
    cur.executemany(
        f"REPLACE INTO {table} (time_start, time_end, node_name, cluster_nodes, reason, "
        "reason_uid, state, tres) VALUES (%s, %s, %s, '', %s, 0, %s, %s)",
        [(o.start, o.end, o.node, o.reason, o.state, _node_tres(ids, lay.gpus_of(o.node)))
         for o in history.outages])
    table = f"`{lay.cluster}_resv_table`"
    cur.executemany(
        f"REPLACE INTO {table} (id_resv, deleted, assoclist, flags, nodelist, node_inx, "
        "resv_name, time_start, time_end, tres, unused_wall) "
        "VALUES (%s, 0, %s, %s, %s, %s, %s, %s, %s, %s, 0)",
        [(FIRST_RESV_ID + first_resv + i, str(ids.root_assoc), RESV_FLAGS_MAINT,
          m.nodes or lay.nodelist,
          _node_inx(lay, m.nodes), m.name, m.start, m.end,
          # 22.05 records a reservation's CPUs only (checked on a live MAINT reservation).
          f"{ids.tres['cpu']}={CPUS_PER_NODE * _node_count(lay, m.nodes)}")
         for i, m in enumerate(history.maintenance)])
    # The cluster's capacity must be known from before the first job on.
    cur.execute(f"UPDATE `{lay.cluster}_event_table` SET time_start = %s "
                "WHERE node_name = '' AND time_end = 0 AND time_start > %s",
                (history.start, history.start))
    cur.execute(f"SELECT COUNT(*) FROM `{lay.cluster}_event_table` "
                "WHERE node_name = '' AND time_start <= %s AND (time_end = 0 OR time_end > %s)",
                (history.start, history.start))
    if cur.fetchone()[0] == 0:
        raise ClusterError("no cluster capacity event in slurmdbd (has slurmctld registered?)")


def clear_history(cur, lay: Layout, history_end: int) -> int:
    """Remove an earlier backfill (history job ids, their steps, its events); return job
    rows removed."""
    cur.execute(f"DELETE s FROM `{lay.cluster}_step_table` s JOIN `{lay.cluster}_job_table` j "
                "ON s.job_db_inx = j.job_db_inx WHERE j.id_job >= %s AND j.id_job < %s",
                (FIRST_JOB_ID, FIRST_LIVE_JOB_ID))
    cur.execute(f"DELETE FROM `{lay.cluster}_job_table` WHERE id_job >= %s AND id_job < %s",
                (FIRST_JOB_ID, FIRST_LIVE_JOB_ID))
    removed = cur.rowcount
    cur.execute(f"DELETE FROM `{lay.cluster}_event_table` WHERE node_name <> '' "
                "AND time_start < %s", (history_end,))
    cur.execute(f"DELETE FROM `{lay.cluster}_resv_table` WHERE id_resv >= %s", (FIRST_RESV_ID,))
    # The rollup rewrites an hour's usage only for the associations that have
    # usage in it now: rows left from an earlier history would survive and be
    # reported. Clear every rolled-up figure; the rollup rebuilds them all.
    for table in USAGE_TABLES:
        cur.execute(f"DELETE FROM `{lay.cluster}_{table}`")
    return removed


def _rollup_marks(cur, lay: Layout) -> tuple[int, int, int]:
    cur.execute(f"SELECT hourly_rollup, daily_rollup, monthly_rollup "
                f"FROM `{lay.cluster}_last_ran_table`")
    row = cur.fetchone()
    return row if row is not None else (0, 0, 0)


def _expected_marks(now: int) -> tuple[int, int, int]:
    d = datetime.fromtimestamp(now, UTC)
    hour = int(d.replace(minute=0, second=0, microsecond=0).timestamp())
    day = int(d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    month = int(d.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())
    return hour, day, month


SCAN_COST_FACTOR = 100


def _steer_to_rollup_index(lay: Layout) -> None:
    """Make MariaDB find a past hour's jobs through slurmdbd's own index.

    A backfilled year holds, for every past hour slurmdbd rolls up, all the jobs that
    came after it; a real site's table never does, as it rolls each hour up when the
    hour has passed. For most hours MariaDB then prefers a full scan of the job table
    to slurmdbd's rollup and rollup2 indexes: measured at 10 million jobs, about 30 s
    an hour (with the default buffer pool) against 0.1 to 2 s, days for a year
    against under an hour. MariaDB reads a table's persistent statistics when it
    opens the table, so raise the size of the job table's clustered index there a
    hundredfold and restart MariaDB (slurmdbd first). Only the plan changes: the
    rows, and slurmdbd's figures, are the same. _measured_statistics puts the
    measured statistics back afterwards."""
    from .cluster import start_daemon, stop_daemon

    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE mysql.innodb_table_stats SET clustered_index_size = "
                        "clustered_index_size * %s WHERE database_name = %s AND "
                        "table_name = %s", (SCAN_COST_FACTOR, lay.db_name,
                                            f"{lay.cluster}_job_table"))
        conn.commit()
    finally:
        conn.close()
    first = lay.first
    stop_daemon(first, "slurmdbd")
    stop_daemon(first, "mariadb")
    start_daemon(first, "mariadb")


def _measured_statistics(lay: Layout) -> None:
    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(f"ANALYZE TABLE `{lay.cluster}_job_table`")
            cur.fetchall()
    finally:
        conn.close()


def rollup(lay: Layout, since: int, progress: Progress, timeout_s: float = 1800) -> float:
    """Make slurmdbd roll usage up again from `since` (the last-rollup marks go back to
    it and slurmdbd restarts); return the seconds it took."""
    from .cluster import restart_slurmdbd

    _set_marks(lay, since)
    conn = database.connect(lay, lay.db_name)
    try:
        started = time.monotonic()
        restart_slurmdbd(lay)
        want = _expected_marks(int(clock.now()))
        while True:
            conn.commit()  # a fresh snapshot for the next read
            with conn.cursor() as cur:
                marks = _rollup_marks(cur, lay)
            done_h = max(0, min(marks[0], want[0]) - since) // 3600
            progress("rollup", done_h, (want[0] - since) // 3600)
            if all(m >= w for m, w in zip(marks, want, strict=True)):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise ClusterError(f"slurmdbd did not finish the rollup in {timeout_s:.0f} s "
                                   f"(marks {marks}, want {want}; log {lay.log_dir}/slurmdbd.log)")
            time.sleep(0.5)
    finally:
        conn.close()


def _rollup_start(lay: Layout, history_start: int) -> int:
    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT MIN(time_eligible) FROM `{lay.cluster}_job_table` "
                        "WHERE time_eligible > 0")
            earliest = cur.fetchone()[0]
    finally:
        conn.close()
    if earliest is None:
        return history_start
    return min(history_start, int(earliest) - int(earliest) % 3600)


def write(lay: Layout, history: History, progress: Progress) -> dict[str, float]:
    """Replace any earlier backfill by `history` and roll it up; return timings."""
    timings: dict[str, float] = {}
    import pymysql

    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            # slurmdbd's session is not strict: characters its latin1 tables cannot
            # hold become '?' instead of failing the insert. Do as it does.
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
            ids = _ids(cur, lay.cluster)
            t0 = time.monotonic()
            if history.jobs and max(j.job_id for j in history.jobs) >= FIRST_LIVE_JOB_ID:
                raise ClusterError(f"history job ids reach {FIRST_LIVE_JOB_ID}, where live "
                                   "job ids start: make the history smaller")
            clear_history(cur, lay, history.end)
            conn.commit()
            _write_jobs(cur, conn, lay, history, ids, progress)
            timings["step_rows"] = _write_steps(cur, conn, lay, history, ids, progress)
            _write_events(cur, lay, history, ids)
            conn.commit()
            timings["write_s"] = time.monotonic() - t0
    except pymysql.MySQLError as exc:
        conn.rollback()
        raise ClusterError(f"writing the history into {lay.db_name} failed: {exc}") from exc
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
    # Live jobs from before the history would lose their rolled-up usage with the
    # tables cleared above; roll up from the earliest job still in the table.
    timings["rollup_s"] = rollup(lay, _rollup_start(lay, history.start), progress)
    return timings


def _clear_from(cur, lay: Layout, first_id: int) -> None:
    """Remove the rows of an interrupted month: its jobs (ids from `first_id` on) and
    their steps; its events and reservations are written again with REPLACE."""
    cur.execute(f"DELETE s FROM `{lay.cluster}_step_table` s JOIN `{lay.cluster}_job_table` j "
                "ON s.job_db_inx = j.job_db_inx WHERE j.id_job >= %s AND j.id_job < %s",
                (first_id, FIRST_LIVE_JOB_ID))
    cur.execute(f"DELETE FROM `{lay.cluster}_job_table` WHERE id_job >= %s AND id_job < %s",
                (first_id, FIRST_LIVE_JOB_ID))


def write_by_month(lay: Layout, spec: HistorySpec, progress: Progress,
                   state: dict | None = None) -> dict[str, float]:
    """Replace any earlier backfill by the history of `spec` made a month at a time
    (history.generate_by_month: a month's jobs in memory at once), each month written
    as it is made; then roll it up a month at a time (rollup_by_month). Each finished
    month is recorded in <run dir>/etc/backfill-progress.json, so that a backfill
    interrupted (a machine switched off, a session's end) can be finished later by
    `resume`: `state` is that record, None for a new backfill. Returns timings
    (generate_s, write_s, rollup_s) summed over every part, earlier ones included."""
    import pymysql

    if state is None:
        state = {"spec": spec.__dict__, "months_written": 0, "rollup_from": None,
                 "months_rolled_up": 0, "generate_s": 0.0, "write_s": 0.0, "rollup_s": 0.0,
                 "step_rows": 0, "jobs": 0}
    resuming = state["months_written"] > 0
    conn = database.connect(lay, lay.db_name)
    months = generate_by_month(spec, lay.nodes, progress)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
            ids = _ids(cur, lay.cluster)
            if not resuming:
                t0 = time.monotonic()
                clear_history(cur, lay, spec.end)
                conn.commit()
                state["write_s"] += time.monotonic() - t0
                save_progress(lay, state)
            resv = 0
            for m in range(spec.months):
                t0 = time.monotonic()
                history = next(months)
                state["generate_s"] += time.monotonic() - t0
                if m < state["months_written"]:  # written before the interruption
                    resv += len(history.maintenance)
                    continue
                t0 = time.monotonic()
                if history.jobs and max(j.job_id for j in history.jobs) >= FIRST_LIVE_JOB_ID:
                    raise ClusterError(f"history job ids reach {FIRST_LIVE_JOB_ID}, where "
                                       "live job ids start: make the history smaller")
                if resuming and history.jobs:
                    _clear_from(cur, lay, min(j.job_id for j in history.jobs))
                    conn.commit()
                _write_jobs(cur, conn, lay, history, ids, progress)
                state["jobs"] += len(history.jobs)
                state["step_rows"] += _write_steps(cur, conn, lay, history, ids, progress)
                _write_events(cur, lay, history, ids, resv)
                resv += len(history.maintenance)
                conn.commit()
                state["write_s"] += time.monotonic() - t0
                state["months_written"] = m + 1
                save_progress(lay, state)
                progress("months", m + 1, spec.months)
    except pymysql.MySQLError as exc:
        conn.rollback()
        raise ClusterError(f"writing the history into {lay.db_name} failed: {exc}") from exc
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()
    rollup_by_month(lay, spec, state, progress)
    return {k: state[k] for k in ("generate_s", "write_s", "rollup_s", "step_rows", "jobs")}


def _utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _month_rolled_up(lay: Layout, month_start: int) -> bool:
    """Whether slurmdbd's monthly rollup of the month beginning at `month_start` is in:
    the last part of a rollup's transaction, so its hours and days are in too."""
    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{lay.cluster}_usage_month_table` "
                        "WHERE time_start = %s", (month_start,))
            return cur.fetchone()[0] > 0
    finally:
        conn.close()


def _set_marks(lay: Layout, mark: int) -> None:
    conn = database.connect(lay, lay.db_name)
    try:
        with conn.cursor() as cur:
            # A new cluster has no marks until its first rollup: replace, do not update.
            cur.execute(f"DELETE FROM `{lay.cluster}_last_ran_table`")
            cur.execute(f"INSERT INTO `{lay.cluster}_last_ran_table` (hourly_rollup, "
                        "daily_rollup, monthly_rollup) VALUES (%s, %s, %s)", (mark, mark, mark))
        conn.commit()
    finally:
        conn.close()


def _roll_month(lay: Layout, start: int, end: int, month_start: int,
                timeout_s: float) -> None:
    """Have slurmdbd roll [start, end) up (`sacctmgr rollup`: hours, days and the month
    in one transaction, the last-rollup marks untouched) and wait until it is in.
    sacctmgr may give up waiting for the answer of a long rollup while slurmdbd goes
    on: then the month's row in the usage table says when it is done."""
    from .processes import pid_of

    first = lay.first
    started = time.monotonic()
    proc = run_slurm(lay, ["sacctmgr", "-i", "rollup", _utc(start), _utc(end)], check=False,
                     timeout_s=timeout_s)
    while not _month_rolled_up(lay, month_start):
        if pid_of(first.pid_dir, "slurmdbd", first.run_dir) is None:
            raise ClusterError(f"slurmdbd stopped while rolling up {_utc(start)} to "
                               f"{_utc(end)} (log {lay.log_dir}/slurmdbd.log)")
        if time.monotonic() - started > timeout_s:
            raise ClusterError(f"slurmdbd did not roll up {_utc(start)} to {_utc(end)} in "
                               f"{timeout_s:.0f} s (sacctmgr: {proc.stderr.strip()!r}; log "
                               f"{lay.log_dir}/slurmdbd.log)")
        time.sleep(1)


def rollup_by_month(lay: Layout, spec: HistorySpec, state: dict, progress: Progress,
                    month_timeout_s: float = 2 * 3600) -> None:
    """Roll a backfilled history up a month at a time, each month committed by slurmdbd
    and recorded in `state` (saved), then from the history's end to now as slurmdbd
    does when it starts. slurmdbd's own rollup of a year is one transaction of about an
    hour at 10 million jobs, lost whole if it is interrupted; a month's is not.
    While the months are rolled up the marks stand at the current hour, so slurmdbd's
    own rollup (on its start, every hour) leaves the history's hours alone."""
    from .cluster import restart_slurmdbd

    if state["rollup_from"] is None:
        state["rollup_from"] = _rollup_start(lay, spec.start)
        save_progress(lay, state)
    bounds = [state["rollup_from"]] + [add_months(spec.start, m + 1)
                                       for m in range(spec.months)]
    if bounds[-1] > _expected_marks(int(clock.now()))[0]:
        raise ClusterError(f"the history ends at {_utc(bounds[-1])}, after the current hour: "
                           "it cannot be rolled up yet")
    t0 = time.monotonic()
    if state["months_rolled_up"] < spec.months:
        # Measured statistics first: an interrupted run leaves the raised ones on disk.
        _measured_statistics(lay)
        _set_marks(lay, _expected_marks(int(clock.now()))[0])
        try:
            _steer_to_rollup_index(lay)
            restart_slurmdbd(lay)
            for m in range(state["months_rolled_up"], spec.months):
                progress("rollup months", m, spec.months)
                _roll_month(lay, bounds[m], bounds[m + 1], _expected_marks(bounds[m])[2],
                            month_timeout_s)
                state["months_rolled_up"] = m + 1
                state["rollup_s"] += time.monotonic() - t0
                t0 = time.monotonic()
                save_progress(lay, state)
            progress("rollup months", spec.months, spec.months)
        except BaseException:
            # MariaDB keeps the raised statistics on disk: put the measured ones back
            # if it still answers (a resume does so first anyway), then say what failed.
            with contextlib.suppress(Exception):
                _measured_statistics(lay)
            raise
        _measured_statistics(lay)
    t0 = time.monotonic()
    # From the history's end to now (the live jobs of the current month), as slurmdbd
    # rolls up when it starts: the marks go back to the end of the history.
    rollup(lay, bounds[-1], progress)
    state["rollup_s"] += time.monotonic() - t0
    save_progress(lay, state)


PROGRESS_FILE = "backfill-progress.json"
FINISHED_FILE = "backfill-finished.json"  # the record of the last one, kept for its timings


def save_progress(lay: Layout, state: dict) -> None:
    """Record how far a backfill made a month at a time has come (atomically)."""
    path = lay.etc_dir / PROGRESS_FILE
    tmp = path.with_name(PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def saved_progress(lay: Layout) -> dict:
    """The record of an interrupted backfill made a month at a time."""
    path = lay.etc_dir / PROGRESS_FILE
    try:
        state = json.loads(path.read_text())
        spec = HistorySpec(**state["spec"])
        written, rolled = int(state["months_written"]), int(state["months_rolled_up"])
    except FileNotFoundError as exc:
        raise ClusterError(f"no interrupted backfill to resume: {path} does not exist "
                           "(only a backfill made a month at a time can be resumed)") from exc
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ClusterError(f"unusable backfill progress record {path}: {exc}") from exc
    if not (0 <= rolled <= spec.months and 0 <= written <= spec.months
            and (rolled == 0 or written == spec.months)):
        raise ClusterError(f"unusable backfill progress record {path}: {written} month(s) "
                           f"written and {rolled} rolled up of {spec.months}")
    return state


def resume(lay: Layout, progress: Progress) -> tuple[HistorySpec, dict[str, float]]:
    """Finish the interrupted backfill recorded in the run dir: write the months it had
    not written (the month it was writing again, from its first job), roll up the
    months not rolled up yet; then record the spec as a finished backfill does."""
    state = saved_progress(lay)
    spec = HistorySpec(**state["spec"])
    timings = write_by_month(lay, spec, progress, state)
    record_spec(lay, spec)
    os.replace(lay.etc_dir / PROGRESS_FILE, lay.etc_dir / FINISHED_FILE)
    return spec, timings


def record_spec(lay: Layout, spec: HistorySpec) -> None:
    """Keep the parameters of the history in the run dir (`history.json`)."""
    path = lay.etc_dir / "history.json"
    path.write_text(json.dumps(spec.__dict__, indent=2) + "\n")


def recorded_spec(lay: Layout) -> HistorySpec:
    """The parameters of the last backfill into this cluster."""
    path = lay.etc_dir / "history.json"
    try:
        return HistorySpec(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise ClusterError(f"no usable backfill record at {path}: {exc}") from exc


def backfill(lay: Layout, spec: HistorySpec, progress: Progress,
             by_month: bool | None = None) -> tuple[History, dict[str, float]]:
    """Generate the history of `spec`, replace any earlier one with it, roll it up.
    Above WHOLE_MAX_JOBS (or with `by_month`) the history is made, written and rolled
    up a month at a time, can be resumed if interrupted (`resume`), and the History
    returned holds its span only (no jobs)."""
    # The record of the earlier history goes first: from here on the tables hold
    # neither it nor, until the end, the new one.
    for name in ("history.json", PROGRESS_FILE, FINISHED_FILE):
        (lay.etc_dir / name).unlink(missing_ok=True)
    if by_month if by_month is not None else spec.jobs > WHOLE_MAX_JOBS:
        timings = write_by_month(lay, spec, progress)
        record_spec(lay, spec)
        os.replace(lay.etc_dir / PROGRESS_FILE, lay.etc_dir / FINISHED_FILE)
        return History(spec.start, spec.end), timings
    t0 = time.monotonic()
    history = generate(spec, lay.nodes, progress)
    timings = {"generate_s": time.monotonic() - t0}
    timings |= write(lay, history, progress)
    record_spec(lay, spec)
    return history, timings
