"""`gpu-usage export --format parquet`: a site's figures as Parquet files for a network
of sites, with a versioned schema (store/parquet.py SCHEMA; docs/network.md).

    <out>/manifest.json                      schema name and version, site, clusters,
                                             time zone, first day, data until
    <out>/usage_day/cluster=C/month=M/*.parquet     GPU-seconds and energy per local day,
                                                    category, pool, account, partition,
                                                    GPU type
    <out>/capacity_day/cluster=C/month=M/*.parquet  GPUs and their time per local day
    <out>/categories/cluster=C/*.parquet            each category's pool and quota
    <out>/jobs/cluster=C/month=M/*.parquet          finished GPU jobs (month: of their end)

The figures are the report's own: usage from the store's day rollups plus running jobs
clipped to now, capacity from engine.capacity per day, categories mapped by the policy
(engine.policy). No user names, job names, comments or WCKeys leave the site: the
network needs projects and categories, not people, and free text written by cluster
users never becomes part of a file another site reads.

DuckDB writes the files (store/parquet.py). The export is built in a private directory
beside `out` and replaces `out` (an earlier export) only when it is complete: a failed
export leaves the earlier one as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec

from collector.config import Settings
from collector.engine.capacity import capacity
from collector.engine.periods import default_history_start, local_midnight
from collector.engine.policy import map_accounts
from collector.engine.rollup import LocalDays
from collector.store import reads
from collector.store.database import Store
from collector.store.parquet import (
    NETWORK,
    NULL,
    SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ParquetError,
    manifest_bytes,
    plain_name,
    write_tables,
)

UNMAPPED = "(unmapped)"


class ExportError(Exception):
    """The export cannot be written (its message says why and where)."""


class Exported(msgspec.Struct, frozen=True):
    out: Path
    rows: dict[str, int]
    first_day: date
    data_until_s: int


def _iso_utc(seconds: int | None) -> str:
    if seconds is None:
        return NULL
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def export_parquet(store: Store, settings: Settings, out: Path, site: str, since: date | None,
                   now_s: int, say: Callable[[str], None] = lambda _: None) -> Exported:
    """Write the site's export to `out` (replacing an earlier export there)."""
    if not plain_name(site):
        raise ExportError(f"the site's name {site!r} cannot be exported: give --site as "
                          "text of 1-200 characters without control or format characters, "
                          f"other than {NETWORK!r}")
    out = out.resolve()
    _check_replaceable(out)
    tz = settings.facility.timezone
    zone, days = ZoneInfo(tz), LocalDays(tz)
    first_s = _first_day_s(store, settings, days, since, now_s)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as exc:
        raise ExportError(f"cannot write the export beside {out}: {exc}") from exc
    try:
        tables: dict[str, list[tuple]] = {t: [] for t in SCHEMA}
        for cluster in settings.slurm.clusters:
            for name, rows in _rows(store, settings, site, cluster, first_s, now_s, days,
                                    zone).items():
                tables[name].extend(rows)
        counts = {name: len(rows) for name, rows in tables.items()}
        say(", ".join(f"{name}: {n:,} rows" for name, n in counts.items()))
        try:
            write_tables(work, tables)
        except ParquetError as exc:
            raise ExportError(f"cannot write the export in {work}: {exc}") from exc
        first_day = datetime.fromtimestamp(first_s, zone).date()
        manifest = {
            "schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "site": site,
            "clusters": list(settings.slurm.clusters), "timezone": tz,
            "first_day": first_day.isoformat(),
            "data_until": datetime.fromtimestamp(now_s, zone).isoformat(timespec="seconds"),
            "data_until_s": now_s, "rows": counts,
            "tables": {t: [{"name": c, "type": ty, "meaning": m} for c, ty, m in cols]
                       for t, cols in SCHEMA.items()},
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _private(work)
        _replace(work, out)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise ExportError(f"cannot write the export to {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Exported(out, counts, first_day, now_s)


def _first_day_s(store: Store, settings: Settings, days: LocalDays, since: date | None,
                 now_s: int) -> int:
    """The export's first local day: --since, else the collection's history start (or
    the first day with use, if earlier), so that capacity covers every day a report
    on the site could cover."""
    tz = settings.facility.timezone
    if since is not None:
        return local_midnight(since, tz)
    history = settings.slurm.history_start
    starts = [local_midnight(history, tz) if history is not None
              else default_history_start(tz, now_s)]
    for cluster in settings.slurm.clusters:
        first = reads.first_usage_day(store, cluster)
        running = [j.start_s for j in store.open_jobs(cluster) if j.start_s is not None]
        starts += [s for s in (first, min(running, default=None)) if s is not None]
    return days(min(starts))


def _rows(store: Store, settings: Settings, site: str, cluster: str, first_s: int,
          now_s: int, days: LocalDays, zone: ZoneInfo) -> dict[str, list[tuple]]:
    """One cluster's rows of every table."""
    tables: dict[str, list[tuple]] = {t: [] for t in SCHEMA}
    pools = {p.name: p.share for p in settings.pools}
    tables["categories"] = [
        (site, cluster, c.name, c.pool, pools[c.pool], c.quota_share,
         NULL if c.quota_gpu_hours is None else c.quota_gpu_hours)
        for c in settings.categories]

    def local_day(day_s: int) -> date:
        return datetime.fromtimestamp(day_s, zone).date()

    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for day_s, account, partition, gpu_type, gpu_s, joules, energy_gpu_s in \
            reads.usage_days_since(store, cluster, first_s):
        cell = cells[(day_s, account, partition, gpu_type)]
        cell[0] += gpu_s
        cell[1] += joules
        cell[2] += energy_gpu_s
    for job in store.open_jobs(cluster):  # running jobs count to now, as in the report
        if job.start_s is None or not job.started or job.gpus <= 0:
            continue
        for day_s, seconds in days.split(max(job.start_s, first_s), now_s):
            cells[(day_s, job.account, job.partition, job.gpu_type or "")][0] += \
                job.gpus * seconds
    tree = reads.tree(store, (cluster,))
    jobs = reads.finished_gpu_jobs(store, cluster, first_s)
    amap = map_accounts(settings, tree.parents, {k[1] for k in cells} | {j[1] for j in jobs})
    for (day_s, account, partition, gpu_type), (gpu_s, joules, energy_s) in sorted(
            cells.items()):
        if not (gpu_s or joules or energy_s):
            continue
        day = local_day(day_s)
        tables["usage_day"].append((
            site, cluster, day.isoformat()[:7], day.isoformat(),
            amap.category_of(account) or UNMAPPED, amap.pool_of(account) or UNMAPPED,
            account, partition, gpu_type, gpu_s, joules, energy_s))

    events, reservations = reads.events(store, cluster), reads.reservations(store, cluster)
    inventory = reads.node_gpus(store, cluster)
    day = local_day(first_s)
    last = local_day(days(now_s))
    while day <= last:
        start = days(int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()))
        following = day + timedelta(days=1)
        end = int(datetime(following.year, following.month, following.day,
                           tzinfo=zone).timestamp())
        cap = capacity(start, min(end, now_s), events, reservations, inventory)
        tables["capacity_day"].append((
            site, cluster, day.isoformat()[:7], day.isoformat(), cap.gpus_now,
            cap.nominal_gpu_s, cap.down_gpu_s, cap.planned_down_gpu_s, cap.available_gpu_s))
        day = following

    for (job_id, account, partition, state, submit_s, start_s, end_s, gpus, energy_j,
         gpu_types) in jobs:
        ended = local_day(end_s)
        tables["jobs"].append((
            site, cluster, ended.isoformat()[:7], job_id, account,
            amap.category_of(account) or UNMAPPED,
            amap.pool_of(account) or UNMAPPED, partition, _gpu_type(gpu_types), state,
            _iso_utc(submit_s), _iso_utc(start_s), _iso_utc(end_s), gpus,
            gpus * (end_s - start_s), NULL if energy_j is None else energy_j))
    return tables


def _gpu_type(gpu_types: str) -> str:
    """The job's GPU type as the rollups name it: the one type, or '' (none or mixed)."""
    types = [t for t in gpu_types.split(",") if t]
    return types[0].rpartition(":")[0] if len(types) == 1 else ""


def _private(root: Path) -> None:
    """Files 0600, directories 0700: the export holds the site's accounting."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o700)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o600)
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o700)


def _check_replaceable(out: Path, named: Path | None = None) -> None:
    """`out` is new, an empty directory, or an earlier export (its manifest says so):
    never a file, and never a directory of something else that merely holds a
    manifest.json. (`named`: the name it had, for the message.)"""
    if not out.exists():
        return
    if out.is_symlink() or not out.is_dir():
        raise ExportError(f"{named or out} is not a directory; give an empty or new "
                          "directory")
    if not any(out.iterdir()):
        return
    try:
        manifest = json.loads(manifest_bytes(out))
        ours = isinstance(manifest, dict) and manifest.get("schema") == SCHEMA_NAME
    except (ParquetError, ValueError, RecursionError):
        ours = False
    if not ours or not {p.name for p in out.iterdir()} <= {"manifest.json", *SCHEMA}:
        raise ExportError(f"{named or out} holds files that are not an export of "
                          "gpu-usage; give an empty or new directory")


def _replace(new: Path, out: Path) -> None:
    """`new` becomes `out`; an earlier export there is moved aside (to a fresh name:
    a directory renamed onto an empty one replaces it) and removed."""
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    os.rename(out, old)
    try:
        # What was moved aside is checked again: `out` may have been made, or filled,
        # by someone else since the check at the start; that is put back, not removed.
        _check_replaceable(old, out)
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
