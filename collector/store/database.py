"""The embedded store: one SQLite file in WAL mode under `[store] path`.

Why SQLite in WAL mode: no server to run; readers (report, exporter, dashboard)
never wait for a writer and always see the last committed collection, because a
whole collection is one transaction; a crash or SIGKILL in the middle leaves the
previous state intact (the write-ahead log is rolled back on next open). One
collector at a time holds `collect.lock` (flock); a second one fails at once
with `StoreBusy` instead of queueing behind it.

Tables: `jobs` (one row per allocation, keyed like `JobRecord.key`), the rollups
`usage_day` and `starts_day` (see rollup.py) and their sums per month `usage_month` and
`starts_month`, `accounts`,
`events`, `reservations` (replaced whole by each collection), `node_inventory` (each
node's GPUs as every collection saw them: a new row when they change), `collections` (one
row per run, failed ones too) and `rejected_lines` (every distinct line that could
not be read, once, however many windows showed it).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from collector import clock
from collector.slurm.records import JobRecord

DB_FILE = "gpu-usage.sqlite"
LOCK_FILE = "collect.lock"
SCHEMA_VERSION = "5"

JOB_COLUMNS = (
    "cluster", "job_id_raw", "submit_s", "job_id", "array_job_id", "array_task_id",
    "het_job_id", "het_job_offset", "user", "account", "partition", "qos", "wckey",
    "wckey_is_default", "state", "eligible_s", "start_s", "end_s", "gpus", "gpu_types",
    "nodes", "cpus", "nodelist", "name", "energy_j", "busy_gpu_s", "idle_gpu_s",
    "idle_stretch_s", "gpu_mem_mib",
)
USAGE_DIMS = ("cluster", "day_s", "account", "user", "partition", "gpu_type", "wckey",
              "size_class")
# GPU use per usage cell (rollup.gpu_use_cells): GPU-seconds of the jobs with GPU data,
# their busy (upper bound) and idle-allocated GPU-seconds, GPU memory peak (MiB per
# GPU) x GPU-seconds, and the jobs with an idle stretch over an hour (count in the
# hour they ended, GPU-seconds split by time).
GPU_USE_COLUMNS = ("use_gpu_s", "busy_gpu_s", "idle_gpu_s", "mem_mib_gpu_s", "long_idle_jobs",
                   "long_idle_gpu_s")
# A usage cell's figures: GPU-seconds; the joules of the jobs whose energy Slurm
# recorded and those jobs' GPU-seconds; GPU use.
USAGE_VALUES = ("gpu_s", "energy_j", "energy_gpu_s", *GPU_USE_COLUMNS)
START_DIMS = ("cluster", "day_s", "account", "user", "size_class", "wait_bin")
START_VALUES = ("jobs", "wait_s")
# meta: the time zone whose months usage_month/starts_month hold, for every day of the
# day tables (absent: a store from before them, or never collected since; readers
# then sum the days).
MONTHS_OF = "month_rollups_zone"

# The common states; anything else (e.g. a state of a newer Slurm) is shown in data
# quality, read through a partial index so the query stays fast at any size.
COMMON_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "RUNNING", "PENDING",
                 "OUT_OF_MEMORY", "NODE_FAIL", "REQUEUED", "PREEMPTED")
# A chain of <>, not NOT IN (...): SQLite evaluates the partial index's condition for
# every row stored, and NOT IN over a list cost 5 microseconds a row (half of a job
# row's insert), the chain a tenth of that.
UNUSUAL_STATE_SQL = "(" + " AND ".join(f"state <> '{s}'" for s in COMMON_STATES) + ")"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    cluster TEXT NOT NULL, job_id_raw INTEGER NOT NULL, submit_s INTEGER NOT NULL,
    job_id TEXT NOT NULL, array_job_id INTEGER, array_task_id INTEGER,
    het_job_id INTEGER, het_job_offset INTEGER, user TEXT NOT NULL, account TEXT NOT NULL,
    partition TEXT NOT NULL, qos TEXT NOT NULL, wckey TEXT NOT NULL,
    wckey_is_default INTEGER NOT NULL, state TEXT NOT NULL, eligible_s INTEGER,
    start_s INTEGER, end_s INTEGER, gpus INTEGER NOT NULL, gpu_types TEXT NOT NULL,
    nodes INTEGER NOT NULL, cpus INTEGER NOT NULL, nodelist TEXT NOT NULL, name TEXT NOT NULL,
    energy_j INTEGER, busy_gpu_s INTEGER, idle_gpu_s INTEGER, idle_stretch_s INTEGER,
    gpu_mem_mib INTEGER, collection_id INTEGER NOT NULL,
    PRIMARY KEY (cluster, job_id_raw, submit_s)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (cluster, job_id_raw) WHERE end_s IS NULL;
DROP INDEX IF EXISTS jobs_unusual;
CREATE INDEX IF NOT EXISTS jobs_unusual_state ON jobs (state) WHERE {UNUSUAL_STATE_SQL};
CREATE TABLE IF NOT EXISTS usage_day (
    {", ".join(d + " NOT NULL" for d in USAGE_DIMS)}, gpu_s INTEGER NOT NULL,
    energy_j INTEGER NOT NULL DEFAULT 0, energy_gpu_s INTEGER NOT NULL DEFAULT 0,
    {", ".join(c + " INTEGER NOT NULL DEFAULT 0" for c in GPU_USE_COLUMNS)},
    PRIMARY KEY ({", ".join(USAGE_DIMS)})) WITHOUT ROWID;
-- Whether a user or an account used GPUs before a day (the report's new users and
-- projects): a few index lookups, not a scan of years of days. With gpu_s, the
-- second also covers the year to date per account (a third of the time of the
-- table's rows at 10 million jobs); it replaces usage_day_account (cluster, account,
-- day_s) of stores made before it.
CREATE INDEX IF NOT EXISTS usage_day_user ON usage_day (cluster, user, day_s);
DROP INDEX IF EXISTS usage_day_account;
CREATE INDEX IF NOT EXISTS usage_day_account_gpu ON usage_day (cluster, account, day_s, gpu_s);
CREATE TABLE IF NOT EXISTS starts_day (
    {", ".join(d + " NOT NULL" for d in START_DIMS)}, jobs INTEGER NOT NULL,
    wait_s INTEGER NOT NULL,
    PRIMARY KEY ({", ".join(START_DIMS)})) WITHOUT ROWID;
-- The same cells summed per calendar month of the facility's zone (day_s: the local
-- midnight that starts the month), rebuilt from the day tables for each month a
-- collection changed (Store.refresh_months): a month's, a quarter's or a year's
-- report reads a few hundred rows a month instead of thirty times as many.
CREATE TABLE IF NOT EXISTS usage_month (
    {", ".join(d + " NOT NULL" for d in USAGE_DIMS)},
    {", ".join(c + " INTEGER NOT NULL" for c in USAGE_VALUES)},
    PRIMARY KEY ({", ".join(USAGE_DIMS)})) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS starts_month (
    {", ".join(d + " NOT NULL" for d in START_DIMS)}, jobs INTEGER NOT NULL,
    wait_s INTEGER NOT NULL,
    PRIMARY KEY ({", ".join(START_DIMS)})) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    cluster TEXT NOT NULL, account TEXT NOT NULL, parent TEXT NOT NULL,
    organisation TEXT NOT NULL, description TEXT NOT NULL, grp_gpu_minutes INTEGER,
    users TEXT NOT NULL, PRIMARY KEY (cluster, account));
CREATE TABLE IF NOT EXISTS events (
    cluster TEXT NOT NULL, kind TEXT NOT NULL, node TEXT NOT NULL, start_s INTEGER NOT NULL,
    end_s INTEGER, state TEXT NOT NULL, reason TEXT NOT NULL, gpus INTEGER NOT NULL,
    nodes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    cluster TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL, start_s INTEGER NOT NULL,
    end_s INTEGER NOT NULL, flags TEXT NOT NULL, nodelist TEXT NOT NULL,
    tres_gpus INTEGER, PRIMARY KEY (cluster, id, start_s));
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY, cluster TEXT NOT NULL, started_s REAL NOT NULL,
    finished_s REAL NOT NULL, status TEXT NOT NULL, window_start_s INTEGER,
    window_end_s INTEGER, windows INTEGER NOT NULL DEFAULT 0,
    jobs_new INTEGER NOT NULL DEFAULT 0, jobs_updated INTEGER NOT NULL DEFAULT 0,
    jobs_unchanged INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
    pending_arrays INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS rejected_lines (
    collection_id INTEGER NOT NULL, source TEXT NOT NULL, line_no INTEGER NOT NULL,
    reason TEXT NOT NULL, line TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS node_inventory (
    cluster TEXT NOT NULL, node TEXT NOT NULL, gpu_type TEXT NOT NULL, gpus INTEGER NOT NULL,
    first_seen_s INTEGER NOT NULL, last_seen_s INTEGER NOT NULL,
    PRIMARY KEY (cluster, node, first_seen_s));
CREATE TABLE IF NOT EXISTS sreport_checks (
    cluster TEXT NOT NULL, period TEXT NOT NULL, checked_s REAL NOT NULL,
    accounts INTEGER NOT NULL, differing INTEGER NOT NULL, max_diff_minutes REAL NOT NULL,
    ours_minutes REAL NOT NULL, sreport_minutes REAL NOT NULL,
    PRIMARY KEY (cluster, period));
"""


class StoreError(RuntimeError):
    """The store is missing, unreadable, or of another schema."""


class StoreBusy(StoreError):
    """Another collection holds the store's lock."""


_TYPES = JOB_COLUMNS.index("gpu_types")
_TYPES_TEXT: dict[tuple, str] = {}


def job_row(job: JobRecord) -> tuple:
    """The record as a row of its own columns (JOB_COLUMNS: the same order), GPU types
    as text; its first three values are its key. The default-WCKey flag stays a bool
    (bound as 1 or 0: the adapter below)."""
    types = _TYPES_TEXT.get(job.gpu_types)
    if types is None:
        types = _TYPES_TEXT[job.gpu_types] = ",".join(f"{n}:{c}" for n, c in job.gpu_types)
    return (*job[:_TYPES], types, *job[_TYPES + 1:])


def row_job(row: Iterable) -> JobRecord:
    values = dict(zip(JOB_COLUMNS, row, strict=False))
    types = tuple((n, int(c)) for n, _, c in
                  (t.rpartition(":") for t in values["gpu_types"].split(",") if t))
    values.update(gpu_types=types, wckey_is_default=bool(values["wckey_is_default"]))
    return JobRecord(**values)


class Collection(msgspec.Struct, frozen=True):
    id: int
    cluster: str
    started_s: float
    finished_s: float
    status: str
    window_start_s: int | None
    window_end_s: int | None
    windows: int
    jobs_new: int
    jobs_updated: int
    jobs_unchanged: int
    rejected: int
    pending_arrays: int
    message: str


def db_path(store_dir: Path) -> Path:
    return Path(store_dir) / DB_FILE


def _owner_only(store_dir: Path) -> None:
    """Take group and other access away from the store directory and its files."""
    for path in (store_dir, *store_dir.iterdir()):
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            path.chmod(stat.S_IMODE(mode) & 0o700)


def _lock_holder(fd: int) -> str:
    """The pid of the process holding the flock on `fd`'s file: the kernel's word
    (/proc/locks), since the file's own content may still be the previous holder's
    pid for a moment after the new holder took the lock; the content as a fallback."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 26553 fd:01:1234 0 EOF" ("->" marks waiters)
            if "->" not in fields and "FLOCK" in fields and dev in fields:
                return fields[fields.index(dev) - 1]
    except OSError:
        pass
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "?"


class Store:
    """A connection to the store; `open_writer` for the collector, `open_reader` else."""

    def __init__(self, conn: sqlite3.Connection, lock_fd: int | None = None):
        self.conn = conn
        self._lock_fd = lock_fd
        self._touched: set[tuple[str, int]] = set()  # (cluster, day) since refresh_months

    @classmethod
    def open_writer(cls, store_dir: Path) -> Store:
        store_dir = Path(store_dir)
        try:
            # Every user's jobs live here: owner only, also for a store an older version
            # made 0755/0644 (mkdir and O_CREAT's modes apply to new files only).
            store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _owner_only(store_dir)
            fd = os.open(store_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the store in {store_dir}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            raise StoreBusy(f"another collection (pid {holder}) is writing {store_dir}; "
                            "this one exits without changing anything") from exc
        # The pid first, then cut what an older, longer pid left: the file never reads
        # empty while the lock is held.
        mine = f"{os.getpid()}\n".encode()
        os.pwrite(fd, mine, 0)
        os.ftruncate(fd, len(mine))
        try:
            conn = _connect(db_path(store_dir), readonly=False)
            _ensure_schema(conn)
        except sqlite3.DatabaseError as exc:
            os.close(fd)
            raise StoreError(f"{db_path(store_dir)}: not a usable store: {exc}") from exc
        return cls(conn, fd)

    @classmethod
    def open_reader(cls, store_dir: Path) -> Store:
        path = db_path(store_dir)
        if not path.exists():
            raise StoreError(f"no store at {path}: run 'gpu-usage collect' first")
        try:
            conn = _connect(path, readonly=True)
            # One read transaction for the reader's life: every query sees the store as
            # the last collection committed before this first read left it, never half
            # of a collection that commits while a report or a page is being read.
            conn.execute("BEGIN")
            version = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable store: {exc}") from exc
        if version is not None and version[0] in MIGRATIONS:
            raise StoreError(f"{path}: store schema {version[0]} is older than this "
                             f"version's {SCHEMA_VERSION}: run 'gpu-usage collect' once to "
                             "upgrade it")
        if version is None or version[0] != SCHEMA_VERSION:
            raise StoreError(f"{path}: store schema {version and version[0]}, expected "
                             f"{SCHEMA_VERSION}")
        return cls(conn)

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: readers see either the state before or after."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- meta ------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- jobs ------------------------------------------------------------------------
    def stored_jobs(self, cluster: str, ids: Iterable[int]) -> dict[tuple, tuple]:
        """Rows (without collection_id) of every record of these job ids, by key."""
        found: dict[tuple, tuple] = {}
        ids = sorted(set(ids))
        cols = ", ".join(JOB_COLUMNS)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT {cols} FROM jobs WHERE cluster=? AND job_id_raw IN ({marks})",
                    (cluster, *chunk)):
                found[(row[0], row[1], row[2])] = row
        return found

    def put_jobs(self, rows: list[tuple], collection_id: int) -> None:
        """Job rows (job_row) stored, new or replacing, as of this collection."""
        marks = ",".join("?" * len(JOB_COLUMNS))
        self.conn.executemany(f"INSERT OR REPLACE INTO jobs ({', '.join(JOB_COLUMNS)}, "
                              f"collection_id) VALUES ({marks}, {int(collection_id)})", rows)

    def open_jobs(self, cluster: str) -> list[JobRecord]:
        """Jobs without an end: pending or running at the last collection."""
        cols = ", ".join(JOB_COLUMNS)
        return [row_job(r) for r in self.conn.execute(
            f"SELECT {cols} FROM jobs INDEXED BY jobs_open WHERE cluster=? AND end_s IS NULL",
            (cluster,))]

    def add_usage(self, deltas: Mapping[tuple, list[int]]) -> None:
        """USAGE_VALUES per usage cell (cluster, day, dimensions), added in one upsert."""
        cols = ", ".join(USAGE_VALUES)
        sets = ", ".join(f"{c} = {c} + excluded.{c}" for c in USAGE_VALUES)
        marks = ",".join("?" * (len(USAGE_DIMS) + len(USAGE_VALUES)))
        self.conn.executemany(
            f"INSERT INTO usage_day ({', '.join(USAGE_DIMS)}, {cols}) VALUES ({marks}) "
            f"ON CONFLICT DO UPDATE SET {sets}",
            ((*k, *v) for k, v in deltas.items() if any(v)))
        self._touched.update({k[:2] for k in deltas})

    def add_starts(self, deltas: Mapping[tuple, tuple[int, int]]) -> None:
        marks = ",".join("?" * (len(START_DIMS) + 2))
        self.conn.executemany(
            f"INSERT INTO starts_day VALUES ({marks}) ON CONFLICT DO UPDATE "
            "SET jobs = jobs + excluded.jobs, wait_s = wait_s + excluded.wait_s",
            ((*k, n, w) for k, (n, w) in deltas.items() if n or w))
        self._touched.update({k[:2] for k in deltas})

    def refresh_months(self, timezone: str) -> int:
        """The month rollups of every month whose days changed since the last call, summed
        again from the day rollups (inside the caller's transaction); all months when
        they were built for another zone or never. Returns how many (cluster, month)
        were rebuilt."""
        zone = ZoneInfo(timezone)
        touched = self._touched
        if self.meta(MONTHS_OF) != timezone:
            self.conn.execute("DELETE FROM usage_month")
            self.conn.execute("DELETE FROM starts_month")
            touched = set(self.conn.execute("SELECT DISTINCT cluster, day_s FROM usage_day "
                                            "UNION SELECT DISTINCT cluster, day_s FROM "
                                            "starts_day"))
        spans = {(cluster, *month_span(day, zone)) for cluster, day in touched}
        for cluster, start, end in sorted(spans):
            for table, dims, values in (("usage", USAGE_DIMS, USAGE_VALUES),
                                        ("starts", START_DIMS, START_VALUES)):
                rest = ", ".join(dims[2:])
                # The whole span, not only its first day: a time zone's new rules
                # (tzdata) may move the month's first midnight.
                self.conn.execute(f"DELETE FROM {table}_month WHERE cluster=? AND day_s >= ? "
                                  "AND day_s < ?", (cluster, start, end))
                self.conn.execute(
                    f"INSERT INTO {table}_month SELECT cluster, ?, {rest}, "
                    + ", ".join(f"SUM({v})" for v in values) + f" FROM {table}_day "
                    f"WHERE cluster=? AND day_s >= ? AND day_s < ? GROUP BY {rest}",
                    (start, cluster, start, end))
        self.set_meta(MONTHS_OF, timezone)
        self._touched = set()
        return len(spans)

    def forget_jobs(self, cluster: str) -> None:
        """The cluster's jobs, rollups and rejected lines (inside the caller's
        transaction); with no other cluster's jobs left, the upgrade marks too (every
        job is read again, with its energy and GPU use)."""
        for table in ("jobs", "usage_day", "starts_day", "usage_month", "starts_month"):
            self.conn.execute(f"DELETE FROM {table} WHERE cluster=?", (cluster,))
        self.conn.execute("DELETE FROM rejected_lines WHERE collection_id IN "
                          "(SELECT id FROM collections WHERE cluster=?)", (cluster,))
        if self.conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is None:
            self.clear_upgrade_marks()

    def clear_upgrade_marks(self) -> None:
        """Every stored job was read by this version (all of them read again)."""
        self.conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (ENERGY_SINCE, GPU_USE_SINCE))

    def clear_rollups(self) -> None:
        for table in ("usage_day", "starts_day", "usage_month", "starts_month"):
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("DELETE FROM meta WHERE key=?", (MONTHS_OF,))

    def all_jobs(self, batch: int = 20000) -> Iterator[list[JobRecord]]:
        """Every stored job, in batches (to rebuild the rollups)."""
        cols = ", ".join(JOB_COLUMNS)
        cur = self.conn.execute(f"SELECT {cols} FROM jobs")
        while rows := cur.fetchmany(batch):
            yield [row_job(r) for r in rows]

    # --- account tree and capacity history ---------------------------------------------
    def replace(self, table: str, cluster: str, rows: list[tuple]) -> None:
        if table not in ("accounts", "events", "reservations"):
            raise ValueError(table)
        self.conn.execute(f"DELETE FROM {table} WHERE cluster=?", (cluster,))
        if rows:
            marks = ",".join("?" * len(rows[0]))
            self.conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def record_inventory(self, cluster: str, nodes: Iterable[tuple[str, str, int]],
                         seen_s: int) -> None:
        """Each node's (name, GPU type, GPUs) as seen now: the newest row of a node that
        still has them is extended to now, a change starts a new row (history kept)."""
        newest = {node: (first, gpu_type, gpus) for node, first, gpu_type, gpus in
                  self.conn.execute(
                      "SELECT node, MAX(first_seen_s), gpu_type, gpus FROM node_inventory "
                      "WHERE cluster=? GROUP BY node", (cluster,))}
        for node, gpu_type, gpus in nodes:
            old = newest.get(node)
            if old is not None and old[1:] == (gpu_type, gpus):
                self.conn.execute("UPDATE node_inventory SET last_seen_s=? WHERE cluster=? "
                                  "AND node=? AND first_seen_s=?", (seen_s, cluster, node,
                                                                    old[0]))
            elif old is None or old[0] < seen_s:
                self.conn.execute("INSERT INTO node_inventory VALUES (?, ?, ?, ?, ?, ?)",
                                  (cluster, node, gpu_type, gpus, seen_s, seen_s))

    # --- collections -------------------------------------------------------------------
    def next_collection_id(self) -> int:
        row = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM collections").fetchone()
        return int(row[0])

    def record_collection(self, c: Collection) -> None:
        self.conn.execute("INSERT OR REPLACE INTO collections VALUES "
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", msgspec.structs.astuple(c))

    def record_rejected(self, collection_id: int, source: str,
                        lines: Iterable[tuple[int, str, str]]) -> int:
        """Keep lines not seen before; return how many were new."""
        before = self.conn.total_changes
        self.conn.executemany("INSERT OR IGNORE INTO rejected_lines VALUES (?,?,?,?,?)",
                              ((collection_id, source, n, r, t) for n, r, t in lines))
        return self.conn.total_changes - before

    def last_collection(self, cluster: str, status: str | None = "ok") -> Collection | None:
        sql = "SELECT * FROM collections WHERE cluster=?"
        args: tuple = (cluster,)
        if status:
            sql, args = sql + " AND status=?", (cluster, status)
        row = self.conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return Collection(*row) if row else None


def month_span(t: int, zone: ZoneInfo) -> tuple[int, int]:
    """The local midnights that start the month holding `t` and the next month (the
    same midnights as the day rollups': LocalDays)."""
    local = datetime.fromtimestamp(t, zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return (int(datetime(local.year, local.month, 1, tzinfo=zone).timestamp()),
            int(datetime(year, month, 1, tzinfo=zone).timestamp()))


# sqlite3 binds int, float and str at once but sends None and bool through its
# adaptation protocol (a tuple built, a registry lookup, two attribute lookups) before
# binding them as NULL and as 1 or 0; a job row holds about nine. Adapters that give
# the same back from C (None; int of the bool) bind the same values for a fifth to a
# third less time per job row.
sqlite3.register_adapter(type(None), {}.get)
sqlite3.register_adapter(bool, int)


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if readonly else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30,
                           check_same_thread=False)
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last collection, never corrupt.
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
    return conn


# Schema 1 -> 2: each job's energy, and the energy rolled up beside the GPU-seconds
# (with the GPU-seconds of the jobs that had energy recorded). Jobs stored before hold
# no energy: meta ENERGY_SINCE keeps the upgrade's instant, so that reports and verify
# say energy was not collected before it (not "not recorded"), until
# `collect --from-scratch` reads everything again and drops it.
# Schema 2 -> 3: each job's GPU use from its steps, rolled up likewise; meta
# GPU_USE_SINCE keeps that upgrade's instant in the same way.
# Schema 3 -> 4: the month rollups (created by SCHEMA, summed by the first collection
# after the upgrade; until then readers sum the days). Nothing is lost, but a version
# before them must not write the day rollups without the months: it refuses schema 4.
ENERGY_SINCE = "energy_collected_since"
GPU_USE_SINCE = "gpu_use_collected_since"
MIGRATIONS = {
    "1": ("ALTER TABLE jobs ADD COLUMN energy_j INTEGER",
          "ALTER TABLE usage_day ADD COLUMN energy_j INTEGER NOT NULL DEFAULT 0",
          "ALTER TABLE usage_day ADD COLUMN energy_gpu_s INTEGER NOT NULL DEFAULT 0"),
    "2": (*(f"ALTER TABLE jobs ADD COLUMN {c} INTEGER"
            for c in ("busy_gpu_s", "idle_gpu_s", "idle_stretch_s", "gpu_mem_mib")),
          *(f"ALTER TABLE usage_day ADD COLUMN {c} INTEGER NOT NULL DEFAULT 0"
            for c in GPU_USE_COLUMNS)),
    "3": (),
    "4": (),  # jobs_unusual (NOT IN) becomes jobs_unusual_state (<> chain): SCHEMA
}
SINCE = {"1": ENERGY_SINCE, "2": GPU_USE_SINCE}  # what an upgrade from that schema lacks


def _ensure_schema(conn: sqlite3.Connection) -> None:
    row = None
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is not None and row[0] in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = str(int(clock.now()))
            for version in range(int(row[0]), int(SCHEMA_VERSION)):
                for statement in MIGRATIONS[str(version)]:
                    conn.execute(statement)
                # Jobs stored until now lack what this step adds: reports before this
                # instant say so.
                if str(version) in SINCE:
                    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 (SINCE[str(version)], now))
            conn.execute("UPDATE meta SET value=? WHERE key='schema'", (SCHEMA_VERSION,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        row = (SCHEMA_VERSION,)
    conn.executescript(SCHEMA)
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema {row[0]}, expected {SCHEMA_VERSION}")
