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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

SCHEMA_NAME = "gpu-usage-export"
SCHEMA_VERSION = 1
PARTITIONS = ("cluster", "month")
NULL = r"\N"

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


def sql_text(text: str) -> str:
    """A string literal for DuckDB's COPY, which takes no parameter for its path."""
    return "'" + text.replace("'", "''") + "'"


def _write_table(con, work: Path, name: str, rows: list[tuple]) -> None:
    columns = SCHEMA[name]
    staging = work / f".{name}.csv"
    with open(staging, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    typed = "{" + ", ".join(f"'{c}': '{t}'" for c, t, _ in columns) + "}"
    con.execute(
        f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv(?, header=false, delim=',', "
        f"quote='\"', escape='\"', nullstr='{NULL}', columns={typed}, auto_detect=false)",
        [str(staging)])
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
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "usage_day": (
        ("a negative gpu_seconds, energy_joules or energy_gpu_seconds",
         "gpu_seconds < 0 OR energy_joules < 0 OR energy_gpu_seconds < 0"),
        ("energy_gpu_seconds above gpu_seconds", "energy_gpu_seconds > gpu_seconds"),
        ("a day outside its month partition", "strftime(day, '%Y-%m') <> month"),
    ),
    "capacity_day": (
        ("a negative figure", "gpus < 0 OR nominal_gpu_seconds < 0 OR down_gpu_seconds < 0 "
         "OR planned_down_gpu_seconds < 0 OR available_gpu_seconds < 0"),
        ("available_gpu_seconds other than nominal - down - planned down",
         "available_gpu_seconds <> nominal_gpu_seconds - down_gpu_seconds "
         "- planned_down_gpu_seconds"),
        ("a day outside its month partition", "strftime(day, '%Y-%m') <> month"),
    ),
    "categories": (
        ("a pool_share or quota_share outside 0..1",
         _SHARE.format(c="pool_share") + " OR " + _SHARE.format(c="quota_share")),
        ("a negative or infinite quota_gpu_hours_per_month",
         "NOT (isfinite(quota_gpu_hours_per_month) AND quota_gpu_hours_per_month >= 0)"),
    ),
    "jobs": (
        ("a negative gpus, gpu_seconds or energy_joules",
         "gpus < 0 OR gpu_seconds < 0 OR energy_joules < 0"),
    ),
}
_WHOLE = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
          "UINTEGER", "UBIGINT", "UHUGEINT"}
# Each key once per export: a row twice would count its seconds or quota twice.
KEYS = {
    "usage_day": ("cluster", "day", "category", "pool", "account", "partition", "gpu_type"),
    "capacity_day": ("cluster", "day"),
    "categories": ("cluster", "category"),
}


def _files(d: Path, name: str) -> list[str]:
    return [str(f) for f in sorted((d / name).rglob("*.parquet"))]


def _reader(name: str, files: list[str]) -> str:
    columns = SCHEMA[name]
    hive = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c, _, _ in columns
                           if c in PARTITIONS) + "}"
    listing = "[" + ", ".join(sql_text(f) for f in files) + "]"
    return (f"read_parquet({listing}, hive_partitioning=true, hive_types={hive}, "
            "union_by_name=true)")


def _source(con, name: str, exports: list[tuple[Path, str]]) -> None:
    """View `name` over every export's files of that table (an empty view if none),
    after checking each export's files and rows: whole numbers where SCHEMA counts,
    its own site only, no NULL where SCHEMA has none, each KEYS once, every RULE."""
    import duckdb

    columns = SCHEMA[name]
    typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t, _ in columns)
    readers = []
    for d, site in exports:
        files = _files(d, name)
        if not files:
            continue
        reader = _reader(name, files)
        required = [c for c, _, _ in columns if (name, c) not in NULLABLE]
        try:
            held = dict(con.execute(f"SELECT column_name, column_type FROM "
                                    f"(DESCRIBE SELECT * FROM {reader})").fetchall())
        except duckdb.Error as exc:
            raise ParquetError(f"{d / name}: {str(exc).splitlines()[0][:500]}") from exc
        for c, t, _ in columns:
            # A fraction where the schema counts whole seconds would be rounded unseen.
            if t in ("BIGINT", "INTEGER") and held.get(c, t) not in _WHOLE:
                raise ParquetError(f"{d / name}: column {c} holds {held[c]}, not whole "
                                   f"numbers ({t})")
        # A rule's row counts only when the rule can say so (a NULL allowed is no break).
        broken = "".join(f", COUNT(*) FILTER (WHERE COALESCE({rule}, false))"
                         for _, rule in RULES[name])
        keys = KEYS.get(name)
        twice = (f", (SELECT COUNT(*) FROM (SELECT 1 FROM rows GROUP BY "
                 f"{', '.join(keys)} HAVING COUNT(*) > 1))") if keys else ", 0"
        try:
            foreign, empty, repeated, *breaks = con.execute(
                f"WITH rows AS (SELECT {typed} FROM {reader}) "
                f"SELECT COUNT(*) FILTER (WHERE site IS DISTINCT FROM ?), COUNT(*) FILTER "
                f"(WHERE {' OR '.join(f'{c} IS NULL' for c in required)}){twice}{broken} "
                "FROM rows", [site]).fetchone()
        except duckdb.Error as exc:  # e.g. a file without a column: DuckDB says which
            raise ParquetError(f"{d / name}: {str(exc).splitlines()[0][:500]}") from exc
        if foreign:
            raise ParquetError(f"{d / name}: {foreign:,} rows name another site than "
                               f"its manifest's {site!r}")
        if empty:
            raise ParquetError(f"{d / name}: {empty:,} rows without a value where the "
                               "schema requires one")
        if repeated:
            raise ParquetError(f"{d / name}: {repeated:,} keys ({', '.join(keys)}) on "
                               "more than one row")
        for (what, _), count in zip(RULES[name], breaks, strict=True):
            if count:
                raise ParquetError(f"{d / name}: {count:,} rows with {what}")
        readers.append(reader)
    if not readers:
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT "
                    + ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t, _ in columns)
                    + " WHERE false")
        return
    con.execute(f"CREATE TEMP VIEW {name} AS "
                + " UNION ALL ".join(f"SELECT {typed} FROM {r}" for r in readers))


def network_rows(exports: list[tuple[Path, str]], first: date, end: date
                 ) -> dict[str, list[tuple]]:
    """What the network report on local days [first, end) reads from the exports
    (each a directory and the site its manifest names):
    capacity per (site, cluster); use, joules and GPU-seconds with energy per (site,
    cluster, category, pool); each category's pool and quota; use per GPU type."""
    with connect() as con:
        for name in SCHEMA:
            _source(con, name, exports)
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
