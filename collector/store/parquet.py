"""A site's export for a network of sites: Parquet files, written and read by DuckDB.

The schema (SCHEMA, versioned: SCHEMA_NAME and SCHEMA_VERSION in the export's
manifest.json) is the contract between sites; docs/network.md shows it as a table.
Tables are Hive-partitioned by `cluster` and `month` (directory names, not columns
inside the files), so any engine that reads Parquet (DuckDB, Spark, Trino) reads
them as they are.

Rows reach DuckDB as CSV that Python's csv module wrote, every column typed by SCHEMA
(no type guessing), and leave it as Parquet; the network report's queries read the
files back with the partition columns' types given, so a directory name never decides
a type.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import msgspec

from collector.config import HIDDEN_CATEGORIES, shows_as_is

SCHEMA_NAME = "gpu-usage-export"
SCHEMA_VERSION = 1
PARTITIONS = ("cluster", "month")
# A missing value as the staging CSV holds it: an unquoted `nan`. Every text is quoted
# there (csv.QUOTE_NONNUMERIC) and read with allow_quoted_nulls=false, so no name, not
# even one that reads "nan", "NULL" or "\\N", becomes a missing value; and only numeric
# columns are ever missing (NULLABLE), where no count or share is NaN.
NULL = float("nan")

# table -> ((column, DuckDB type, meaning), ...); `cluster` and `month` are the
# partition columns (in the directory names, not inside the files).
SCHEMA: dict[str, tuple[tuple[str, str, str], ...]] = {
    "usage_day": (
        ("site", "VARCHAR", "the site (the exporting facility's name or --site)"),
        ("cluster", "VARCHAR", "Slurm cluster name (partition column)"),
        ("month", "VARCHAR", "YYYY-MM of `day` (partition column)"),
        ("day", "DATE", "local day in the site's time zone"),
        ("category", "VARCHAR", "user category by the site's policy; '(unmapped)' if none"),
        ("pool", "VARCHAR", "the category's pool; '(unmapped)' if none"),
        ("account", "VARCHAR", "Slurm account (project)"),
        ("partition", "VARCHAR", "Slurm partition"),
        ("gpu_type", "VARCHAR", "GPU type from the job's TRES; '' if untyped"),
        ("gpu_seconds", "BIGINT", "allocated GPU-seconds in the day (running jobs to now)"),
        ("energy_joules", "BIGINT", "joules of the jobs whose energy Slurm recorded"),
        ("energy_gpu_seconds", "BIGINT", "GPU-seconds of those jobs (the rest: no energy data)"),
    ),
    "capacity_day": (
        ("site", "VARCHAR", "the site"),
        ("cluster", "VARCHAR", "Slurm cluster name (partition column)"),
        ("month", "VARCHAR", "YYYY-MM of `day` (partition column)"),
        ("day", "DATE", "local day in the site's time zone"),
        ("gpus", "INTEGER", "GPUs registered with the cluster at the day's end (or now)"),
        ("nominal_gpu_seconds", "BIGINT", "GPUs x time registered with the cluster"),
        ("down_gpu_seconds", "BIGINT", "GPU time of down, drained or failed nodes"),
        ("planned_down_gpu_seconds", "BIGINT", "GPU time in maintenance reservations"),
        ("available_gpu_seconds", "BIGINT", "nominal - down - planned down"),
    ),
    "categories": (
        ("site", "VARCHAR", "the site"),
        ("cluster", "VARCHAR", "Slurm cluster name (partition column)"),
        ("category", "VARCHAR", "user category"),
        ("pool", "VARCHAR", "its pool"),
        ("pool_share", "DOUBLE", "the pool's share of available capacity"),
        ("quota_share", "DOUBLE", "the category's quota as a share of available capacity"),
        ("quota_gpu_hours_per_month", "DOUBLE",
         "an absolute monthly quota instead (NULL: the share applies)"),
    ),
    "jobs": (
        ("site", "VARCHAR", "the site"),
        ("cluster", "VARCHAR", "Slurm cluster name (partition column)"),
        ("month", "VARCHAR", "YYYY-MM of the job's end, local (partition column)"),
        ("job_id", "VARCHAR", "Slurm job ID (array and het jobs as sacct shows them)"),
        ("account", "VARCHAR", "Slurm account (project)"),
        ("category", "VARCHAR", "user category; '(unmapped)' if none"),
        ("pool", "VARCHAR", "its pool; '(unmapped)' if none"),
        ("partition", "VARCHAR", "Slurm partition"),
        ("gpu_type", "VARCHAR", "GPU type; '' if untyped"),
        ("state", "VARCHAR", "Slurm job state"),
        ("submit_time", "TIMESTAMPTZ", "submission (UTC)"),
        ("start_time", "TIMESTAMPTZ", "start (UTC)"),
        ("end_time", "TIMESTAMPTZ", "end (UTC)"),
        ("gpus", "INTEGER", "GPUs allocated"),
        ("gpu_seconds", "BIGINT", "GPUs x elapsed seconds"),
        ("energy_joules", "BIGINT", "joules Slurm recorded; NULL if none"),
    ),
}


NETWORK = "(network)"   # the network report's total: no site has this name


def plain_name(text: object) -> bool:
    """A site's or cluster's name that shows as what it is (config.shows_as_is, up to
    200 characters), and not the network's own row."""
    return isinstance(text, str) and text != NETWORK and shows_as_is(text, 200)


class ParquetError(Exception):
    """DuckDB could not write or read the files (its message names what and where)."""


@contextmanager
def connect() -> Iterator:
    """A DuckDB connection in memory; DuckDB's errors become ParquetError."""
    import duckdb  # only here: the collector and the site report do not need it

    con = duckdb.connect()
    try:
        yield con
    except duckdb.Error as exc:
        raise ParquetError(str(exc).splitlines()[0][:1000]) from exc
    finally:
        con.close()


MANIFEST_LIMIT = 1 << 20   # bytes; an export's manifest is a few kB


def manifest_bytes(path: Path) -> bytes:
    """manifest.json's bytes: a regular file (no link, no pipe, no device) of at most
    MANIFEST_LIMIT bytes."""
    file = path / "manifest.json"
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ParquetError(f"{path}: not an export of gpu-usage (no manifest.json); make "
                           "one with 'gpu-usage export --format parquet'") from None
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise ParquetError(f"{file}: cannot be read: {why}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ParquetError(f"{file}: not a regular file")
        data = f.read(MANIFEST_LIMIT + 1)
    if len(data) > MANIFEST_LIMIT:
        raise ParquetError(f"{file}: larger than {MANIFEST_LIMIT:,} bytes: not a manifest")
    return data


def sql_text(text: str) -> str:
    """A string literal for DuckDB's COPY, which takes no parameter for its path."""
    return "'" + text.replace("'", "''") + "'"


def _write_table(con, work: Path, name: str, rows: list[tuple]) -> None:
    columns = SCHEMA[name]
    staging = work / f".{name}.csv"
    with open(staging, "w", newline="") as f:
        csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC).writerows(rows)
    typed = "{" + ", ".join(f"'{c}': '{t}'" for c, t, _ in columns) + "}"
    con.execute(
        f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv(?, header=false, delim=',', "
        f"quote='\"', escape='\"', nullstr='nan', allow_quoted_nulls=false, "
        f"columns={typed}, auto_detect=false)", [str(staging)])
    partition = [p for p in PARTITIONS if p in {c for c, _, _ in columns}]
    target = work / name
    con.execute(
        f"COPY t TO {sql_text(str(target))} (FORMAT parquet, COMPRESSION zstd, "
        f"PARTITION_BY ({', '.join(partition)}), FILENAME_PATTERN 'part-{{i}}')")
    staging.unlink()
    if not rows:  # no partition written: an empty table still has its directory
        target.mkdir(exist_ok=True)


def write_tables(work: Path, tables: dict[str, list[tuple]]) -> None:
    """Each table's rows as Parquet under work/<table>/cluster=../month=../."""
    with connect() as con:
        for name, rows in tables.items():
            _write_table(con, work, name, rows)


# Columns that may be NULL in a file; every other column must hold a value.
NULLABLE = {("categories", "quota_gpu_hours_per_month"), ("jobs", "energy_joules")}

# What every row of a table must hold beyond its types: (what it breaks, the SQL of a
# row that breaks it). Another site's file is input like any other: a negative second,
# a share past 1 or a NaN would otherwise become a silently wrong network total.
_SHARE = "NOT (isfinite({c}) AND {c} >= 0 AND {c} <= 1)"
# A name holding a character of config.HIDDEN_CATEGORIES (control, format, bidi,
# zero-width, line-separating): no policy or Slurm names one so, and a terminal or a
# page would act on it.
_HIDDEN = "[" + "".join(rf"\p{{{k}}}" for k in HIDDEN_CATEGORIES) + "]"


def _odd(*columns: str) -> str:
    return " OR ".join(f"regexp_matches({c}, '{_HIDDEN}')" for c in columns)


RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "usage_day": (
        ("a name with a control or format character",
         _odd("category", "pool", "account", "partition", "gpu_type")),
        ("a negative gpu_seconds, energy_joules or energy_gpu_seconds",
         "gpu_seconds < 0 OR energy_joules < 0 OR energy_gpu_seconds < 0"),
        ("energy_gpu_seconds above gpu_seconds", "energy_gpu_seconds > gpu_seconds"),
        ("joules without GPU-seconds with energy (no exporter writes them)",
         "energy_joules > 0 AND energy_gpu_seconds = 0"),
        ("a day outside its month partition", "strftime(day, '%Y-%m') <> month"),
    ),
    "capacity_day": (
        # (available may be: down and maintenance time on a day the cluster's GPUs
        # were not all registered, as the site's own report shows it)
        ("a negative figure", "gpus < 0 OR nominal_gpu_seconds < 0 OR down_gpu_seconds < 0 "
         "OR planned_down_gpu_seconds < 0"),
        ("available_gpu_seconds other than nominal - down - planned down",
         "available_gpu_seconds <> nominal_gpu_seconds - down_gpu_seconds "
         "- planned_down_gpu_seconds"),
        ("a day outside its month partition", "strftime(day, '%Y-%m') <> month"),
    ),
    "categories": (
        ("a name with a control or format character", _odd("category", "pool")),
        ("a pool_share or quota_share outside 0..1",
         _SHARE.format(c="pool_share") + " OR " + _SHARE.format(c="quota_share")),
        ("a negative or infinite quota_gpu_hours_per_month",
         "NOT (isfinite(quota_gpu_hours_per_month) AND quota_gpu_hours_per_month >= 0)"),
    ),
}
_WHOLE = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
          "UINTEGER", "UBIGINT", "UHUGEINT"}
# What a table must hold as a whole: (what breaks it, SQL counting the breaks over
# `rows`). A key on two rows would count its seconds or quota twice (a part file synced
# twice, or a copy with other labels); a share that differs between a pool's rows or
# shares that add up past 1 would make a quota depend on the order of rows.
_TWICE = "SELECT COUNT(*) FROM (SELECT 1 FROM rows GROUP BY {} HAVING COUNT(*) > 1)"
SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "usage_day": (
        ("keys (cluster, day, account, partition, gpu_type) on more than one row",
         _TWICE.format("cluster, day, account, partition, gpu_type")),
        ("accounts of a cluster in more than one category or pool",
         "SELECT COUNT(*) FROM (SELECT 1 FROM rows GROUP BY cluster, account "
         "HAVING COUNT(DISTINCT (category, pool)) > 1)"),
    ),
    "capacity_day": (
        ("keys (cluster, day) on more than one row", _TWICE.format("cluster, day")),
    ),
    "categories": (
        ("keys (cluster, category) on more than one row", _TWICE.format("cluster, category")),
        ("pools of a cluster with more than one pool_share",
         "SELECT COUNT(*) FROM (SELECT 1 FROM rows GROUP BY cluster, pool "
         "HAVING COUNT(DISTINCT pool_share) > 1)"),
        ("clusters whose pool shares add up to more than 1",
         "SELECT COUNT(*) FROM (SELECT cluster FROM (SELECT DISTINCT cluster, pool, "
         "pool_share FROM rows) GROUP BY cluster HAVING SUM(pool_share) > 1 + 1e-9)"),
        ("clusters whose categories' quota shares add up to more than 1",
         "SELECT COUNT(*) FROM (SELECT 1 FROM rows GROUP BY cluster "
         "HAVING SUM(quota_share) > 1 + 1e-9)"),
    ),
}
# The tables the network report reads (the jobs are for other engines: checked as
# files and counted, not read).
REPORTED = ("usage_day", "capacity_day", "categories")
# DuckDB reads a path holding any of these as a pattern (it could match another
# directory); a month partition is YYYY-MM.
_PATTERN = set("*?[]{}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # shown as ?


class ExportDir(msgspec.Struct, frozen=True):
    """One site's export as its manifest describes it."""
    path: Path
    site: str
    clusters: frozenset[str]
    rows: Mapping[str, int]     # table -> rows the export wrote


def _shown(path: Path) -> str:
    """A path for a message: a file name in another site's export is free text."""
    return CONTROL.sub("?", str(path))


def export_files(export: ExportDir) -> dict[str, list[str]]:
    """Each table's Parquet files, after checking the export's tree: the manifest and
    every table's directory and nothing else; under a table only its partitions
    (`cluster=` one of the manifest's clusters, `month=YYYY-MM`), then regular
    `.parquet` files. A symbolic link, a pipe or a stray file is refused, not skipped:
    a partition that cannot be read would otherwise count as no use."""
    d = export.path
    if _PATTERN & set(str(d)):
        raise ParquetError(f"{_shown(d)}: a path with any of * ? [ ] {{ }} would be read "
                           "as a pattern (DuckDB's); give the export under another name")
    try:
        return _tree(export)
    except OSError as exc:  # unreadable, or changed while it is read
        raise ParquetError(f"{_shown(Path(exc.filename or d))}: cannot be read: "
                           f"{exc.strerror}") from exc


def _tree(export: ExportDir) -> dict[str, list[str]]:
    d = export.path
    stray = sorted({p.name for p in d.iterdir()} - {"manifest.json", *SCHEMA})
    if stray:
        raise ParquetError(f"{_shown(d / stray[0])}: not part of an export")
    files: dict[str, list[str]] = {}
    for name, columns in SCHEMA.items():
        levels = [p for p in PARTITIONS if p in {c for c, _, _ in columns}]
        root = d / name
        if root.is_symlink() or not root.is_dir():
            raise ParquetError(f"{_shown(root)}: missing or not a directory (an export has "
                               "every table's directory, empty or not)")
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            depth = len(here.relative_to(root).parts)
            for entry in sorted(dirnames + filenames):
                path = here / entry
                mode = path.lstat().st_mode
                if depth < len(levels):
                    level, _, value = entry.partition("=")
                    ok = stat.S_ISDIR(mode) and level == levels[depth] and (
                        value in export.clusters if level == "cluster"
                        else _MONTH.fullmatch(value) is not None)
                    want = (f"a directory {levels[depth]}=<one of its manifest's clusters>"
                            if levels[depth] == "cluster" else "a directory month=YYYY-MM")
                else:
                    ok, want = stat.S_ISREG(mode) and entry.endswith(".parquet"), \
                        "a .parquet file"
                    found.append(str(path))
                if not ok:
                    raise ParquetError(f"{_shown(path)}: not part of the export (here it "
                                       f"has {want}: no link, no other file)")
        files[name] = found
    return files


def _count(con, export: ExportDir, name: str, files: list[str]) -> None:
    """The table holds as many rows as the export wrote: a file missing, cut or added
    (a partial sync, a sync without --delete) is found before anything is summed."""
    import duckdb

    try:
        held = con.execute("SELECT COALESCE(SUM(num_rows), 0) FROM parquet_file_metadata("
                           + _listing(files) + ")").fetchone()[0] if files else 0
    except duckdb.Error as exc:  # a damaged file: DuckDB names it
        raise ParquetError(f"{_shown(export.path / name)}: "
                           f"{str(exc).splitlines()[0][:500]}") from exc
    if held != export.rows[name]:
        raise ParquetError(f"{_shown(export.path / name)}: {held:,} rows in its files, "
                           f"{export.rows[name]:,} in its manifest (files missing, added "
                           "or changed since the export)")


def _listing(files: list[str]) -> str:
    return "[" + ", ".join(sql_text(f) for f in files) + "]"


def _reader(name: str, files: list[str]) -> str:
    columns = SCHEMA[name]
    hive = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c, _, _ in columns
                           if c in PARTITIONS) + "}"
    return (f"read_parquet({_listing(files)}, hive_partitioning=true, hive_types={hive}, "
            "union_by_name=true)")


def _check_columns(where: str, name: str, held: dict[str, str]) -> None:
    """The files' columns are the schema's, by their exact names, and whole numbers
    where the schema counts."""
    columns = {c: t for c, t, _ in SCHEMA[name]}
    lower = [h.lower() for h in held]
    for h in held:
        # DuckDB binds names regardless of case: "Gpu_Seconds" would be read as
        # gpu_seconds without the checks below, which look names up exactly.
        if (h not in columns and h.lower() in {c.lower() for c in columns}) \
                or lower.count(h.lower()) > 1:
            raise ParquetError(f"{where}: column {CONTROL.sub('?', h)!r} is not the "
                               "schema's name (names are exact, lower case)")
    for c, t in columns.items():
        if c not in held:
            raise ParquetError(f"{where}: no column {c}")
        # A fraction where the schema counts whole seconds would be rounded unseen.
        if t in ("BIGINT", "INTEGER") and held[c] not in _WHOLE:
            raise ParquetError(f"{where}: column {c} holds {held[c]}, not whole numbers "
                               f"({t})")


def _source(con, name: str, exports: list[ExportDir], files: dict[Path, dict]) -> None:
    """View `name` over every export's files of that table (an empty view if none),
    after checking each export's files and rows: its columns (exact names, whole
    numbers where SCHEMA counts), its own site only, no NULL where SCHEMA has none,
    every RULE and every SET check."""
    import duckdb

    columns = SCHEMA[name]
    typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t, _ in columns)
    readers = []
    for export in exports:
        mine = files[export.path][name]
        if not mine:
            continue
        where = _shown(export.path / name)
        reader = _reader(name, mine)
        required = [c for c, _, _ in columns if (name, c) not in NULLABLE]
        # A rule's row counts only when the rule can say so (a NULL allowed is no break).
        checks = [(f"rows with {what}", f"COUNT(*) FILTER (WHERE COALESCE({rule}, false))")
                  for what, rule in RULES[name]] + [(what, f"({sql})")
                                                    for what, sql in SETS[name]]
        try:
            _check_columns(where, name, dict(con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader})"
            ).fetchall()))
            foreign, empty, *breaks = con.execute(
                f"WITH rows AS (SELECT {typed} FROM {reader}) "
                f"SELECT COUNT(*) FILTER (WHERE site IS DISTINCT FROM ?), COUNT(*) FILTER "
                f"(WHERE {' OR '.join(f'{c} IS NULL' for c in required)})"
                + "".join(f", {sql}" for _, sql in checks) + " FROM rows",
                [export.site]).fetchone()
        except duckdb.Error as exc:  # e.g. a value that is no number: DuckDB says which
            raise ParquetError(f"{where}: {str(exc).splitlines()[0][:500]}") from exc
        if foreign:
            raise ParquetError(f"{where}: {foreign:,} rows name another site than its "
                               f"manifest's {export.site!r}")
        if empty:
            raise ParquetError(f"{where}: {empty:,} rows without a value where the schema "
                               "requires one")
        for (what, _), count in zip(checks, breaks, strict=True):
            if count:
                raise ParquetError(f"{where}: {count:,} {what}")
        readers.append(reader)
    if not readers:
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT "
                    + ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t, _ in columns)
                    + " WHERE false")
        return
    con.execute(f"CREATE TEMP VIEW {name} AS "
                + " UNION ALL ".join(f"SELECT {typed} FROM {r}" for r in readers))


def network_rows(exports: list[ExportDir], first: date, end: date) -> dict[str, list[tuple]]:
    """What the network report on local days [first, end) reads from the exports:
    capacity per (site, cluster); use, joules and GPU-seconds with energy per (site,
    cluster, category, pool); each category's pool and quota; use per GPU type. Each
    export's tree and row counts are checked first (export_files, _count), then each
    table the report reads (_source)."""
    files = {e.path: export_files(e) for e in exports}
    with connect() as con:
        for e in exports:
            for name in SCHEMA:
                _count(con, e, name, files[e.path][name])
        for name in REPORTED:
            _source(con, name, exports, files)
        args = [first, end]
        return {
            "capacity": con.execute(
                "SELECT site, cluster, arg_max(gpus, day), SUM(nominal_gpu_seconds), "
                "SUM(down_gpu_seconds), SUM(planned_down_gpu_seconds), "
                "SUM(available_gpu_seconds) FROM capacity_day WHERE day >= ? AND day < ? "
                "GROUP BY site, cluster", args).fetchall(),
            "usage": con.execute(
                "SELECT site, cluster, category, pool, SUM(gpu_seconds), SUM(energy_joules), "
                "SUM(energy_gpu_seconds) FROM usage_day WHERE day >= ? AND day < ? "
                "GROUP BY site, cluster, category, pool", args).fetchall(),
            "categories": con.execute(
                "SELECT site, cluster, category, pool, pool_share, quota_share, "
                "quota_gpu_hours_per_month FROM categories").fetchall(),
            "gpu_types": con.execute(
                "SELECT gpu_type, SUM(gpu_seconds), SUM(energy_joules), "
                "SUM(energy_gpu_seconds) FROM usage_day WHERE day >= ? AND day < ? "
                "GROUP BY gpu_type ORDER BY gpu_type", args).fetchall(),
        }
