"""Incremental collection: Slurm accounting into the store, in one transaction.

A run reads sacct in bounded windows from where the last successful run ended
(minus `lookback_hours`, for records that reach slurmdbd late) to now; a first
run starts at `[slurm] history_start`, else 13 months back. sacct's output is
parsed and stored while sacct is still writing it, and slurmdbd answers the next
window while this one is read (two sacct at a time), so the source is the floor of
the run time. Jobs that the store holds as pending or running and that no window showed
again are re-read by id. The account tree, the events and the reservations are
read at the same time and replaced whole.

Every record is compared with the stored one: unchanged ones cost nothing,
changed ones move their rolled-up usage (old out, new in), so re-running never
counts a job twice. Everything happens in one SQLite transaction: a failure or a
kill leaves the store as it was, and the failure is recorded in `collections`.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from collector import clock
from collector.config import Settings
from collector.engine.gpuuse import with_gpu_use
from collector.engine.periods import default_history_start, local_midnight
from collector.engine.rollup import (
    LocalDays,
    energy_cells,
    gpu_use_cells,
    start_cell,
    usage_cells,
)
from collector.slurm import commands as door
from collector.slurm.live_parser import parse_sinfo
from collector.slurm.records import JobRecord
from collector.slurm.sacct_parser import FieldError, ParseResult
from collector.slurm.sacctmgr_parser import parse_events, parse_reservations
from collector.slurm.sources import open_source, read_windows
from collector.store.database import (
    Collection,
    Store,
    StoreBusy,
    StoreError,
    job_row,
    row_job,
)

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class _Tally:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    pending_arrays: int = 0
    windows: int = 0
    # Per usage cell (cluster, local day, dimensions): database.USAGE_VALUES.
    usage: dict = field(default_factory=lambda: defaultdict(lambda: [0] * 9))
    starts: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    seen_open: set = field(default_factory=set)


class Windows:
    """Bounded windows over [start, end), sized from the job density seen so far to
    hold about `target` records each (each source sets its own): between one hour and
    `max_s`, at most `growth` times the previous size. A quiet year takes a few calls; a busy
    day is cut into several, which bounds slurmdbd's work and memory per query (and,
    for the doors that answer a window whole, the collector's memory). Fewer, larger
    windows cost slurmdbd less in all: each window query scans every job eligible
    before its end."""

    TARGET = 50_000

    def __init__(self, start_s: int, end_s: int, max_s: int, first_s: int = 86400,
                 target: int = TARGET, growth: int = 2):
        self.next_s, self.end_s, self.max_s, self.target = start_s, end_s, max_s, target
        self.growth = growth
        self.size_s = max(3600, min(first_s, max_s))

    def take(self) -> tuple[int, int] | None:
        if self.next_s >= self.end_s:
            return None
        window = (self.next_s, min(self.end_s, self.next_s + self.size_s))
        self.next_s = window[1]
        return window

    def observe(self, records: int, length_s: int) -> None:
        """Aim the next windows at `target` records, given what a finished one held."""
        ideal = self.target * length_s / records if records else float("inf")
        size = min(ideal, self.growth * self.size_s)
        self.size_s = int(max(3600, min(self.max_s, size)))

    def fraction_done(self, start_s: int) -> float:
        return (self.next_s - start_s) / max(1, self.end_s - start_s)


HELD = ("after a failed collection: this span is read again by the next one (records "
        "slurmctld kept during the outage may still be reaching slurmdbd)")


def first_start(settings: Settings, now: float) -> int:
    tz = settings.facility.timezone
    if settings.slurm.history_start is not None:
        return local_midnight(settings.slurm.history_start, tz)
    return default_history_start(tz, now)


def _contribute(tally: _Tally, job: JobRecord, days: LocalDays, sign: int) -> None:
    usage = tally.usage
    cells = usage_cells(job, days)  # once: energy and GPU use split the same way
    for key, gpu_s in cells:
        usage[key][0] += sign * gpu_s
    if job.energy_j is not None:
        for key, (joules, gpu_s) in energy_cells(job, days, cells):
            acc = usage[key]
            acc[1] += sign * joules
            acc[2] += sign * gpu_s
    if job.busy_gpu_s is not None:
        for key, values in gpu_use_cells(job, days, cells):
            acc = usage[key]
            for i, value in enumerate(values, 3):
                acc[i] += sign * value
    cell = start_cell(job, days)
    if cell is not None:
        acc = tally.starts[cell[0]]
        acc[0] += sign
        acc[1] += sign * cell[1]


def apply_records(store: Store, cluster: str, records: list[JobRecord], collection_id: int,
                  days: LocalDays, tally: _Tally, steps: dict | None = None) -> None:
    """Store the records that are new or changed and move their rolled-up usage; with
    `steps` (by job key), each finished job's GPU use comes from its steps."""
    stored = store.stored_jobs(cluster, (r.job_id_raw for r in records))
    rows = []
    seen_open = tally.seen_open
    for job in records:
        if steps is not None:
            job = with_gpu_use(job, steps.get(job.key))
        row = job_row(job)
        key = row[:3]  # job.key
        if job.end_s is None:
            seen_open.add(key)
        old = stored.get(key)
        if old == row:
            tally.unchanged += 1
            continue
        if old is None:
            tally.new += 1
        else:
            tally.updated += 1
            _contribute(tally, row_job(old), days, -1)
        _contribute(tally, job, days, +1)
        stored[key] = row
        rows.append(row)
    store.put_jobs(rows, collection_id)


def _flush(store: Store, tally: _Tally) -> None:
    """The day cells gathered so far, added to the stored rollups."""
    store.add_usage(tally.usage)
    store.add_starts(tally.starts)
    tally.usage.clear()
    tally.starts.clear()


def rebuild_rollups(store: Store, days: LocalDays, progress: Progress | None) -> None:
    """The facility's time zone changed: roll every stored job up again."""
    store.clear_rollups()
    tally = _Tally()
    done = 0
    for batch in store.all_jobs():
        for job in batch:
            _contribute(tally, job, days, +1)
        _flush(store, tally)
        done += len(batch)
        if progress:
            progress("re-rolling stored jobs", done, 0)


class CollectionsFailed(RuntimeError):
    """Some clusters of the facility could not be collected (the others were)."""

    def __init__(self, done: list[Collection], failed: list[tuple[str, Exception]]):
        self.done, self.failed = done, failed
        super().__init__("; ".join(f"cluster {c}: {exc}" for c, exc in failed))


def collect_facility(settings: Settings, now: float | None = None,
                     env: dict[str, str] | None = None, progress: Progress | None = None,
                     store_dir: Path | None = None, from_scratch: bool = False,
                     clusters: tuple[str, ...] | None = None) -> list[Collection]:
    """One incremental collection of each cluster (default: all configured), each in its
    own transaction, one after the other: a cluster whose Slurm fails leaves its part
    of the store as it was and does not stop the others. Raises CollectionsFailed
    after trying them all (StoreBusy at once: another collection runs)."""
    done: list[Collection] = []
    failed: list[tuple[str, Exception]] = []
    now_s = int(clock.now_or(now))
    for cluster in clusters or settings.slurm.clusters:
        try:
            done.append(collect(settings, now_s, env, progress, store_dir, from_scratch,
                                cluster))
        except StoreBusy as exc:
            if not done and not failed:
                raise
            # Another writer took the store between two clusters: say what was done.
            failed += [(c, exc) for c in (clusters or settings.slurm.clusters)
                       if c not in {d.cluster for d in done} | {f for f, _ in failed}]
            break
        except (door.SlurmError, FieldError, StoreError) as exc:
            failed.append((cluster, exc))
    if failed:
        raise CollectionsFailed(done, failed)
    if from_scratch and clusters is None and len(done) > 1:
        # Every cluster was read again whole: no stored job predates an upgrade now.
        with Store.open_writer(store_dir or settings.store.path) as store, \
                store.transaction():
            store.clear_upgrade_marks()
    return done


def collect(settings: Settings, now: float | None = None, env: dict[str, str] | None = None,
            progress: Progress | None = None, store_dir: Path | None = None,
            from_scratch: bool = False, cluster: str | None = None) -> Collection:
    """One incremental collection of `cluster` (may be left out when the facility has
    one); returns its summary. Raises SlurmError, FieldError, StoreError (StoreBusy if
    another collection runs); the store is then unchanged.

    `from_scratch` forgets every stored job of the cluster and reads its whole history
    again, in the same single transaction (readers keep the old figures until it
    commits)."""
    now_s = int(clock.now_or(now))
    slurm = settings.slurm
    if cluster is None:
        if slurm.several:
            raise ValueError(f"name one of the clusters {', '.join(slurm.clusters)}")
        cluster = slurm.clusters[0]
    elif cluster not in slurm.clusters:
        raise ValueError(f"cluster {cluster!r} is not configured")
    started, t0 = clock.now(), time.monotonic()
    with Store.open_writer(store_dir or settings.store.path) as store:
        cid = store.next_collection_id()
        last = store.last_collection(cluster)
        if last is not None and last.window_end_s is not None and not from_scratch:
            start_s = int(last.window_end_s - slurm.lookback_hours * 3600)
        else:
            start_s = first_start(settings, now_s)
        history_from = first_start(settings, now_s)
        # After a failed run (slurmdbd or its database was away), slurmctld delivers the
        # jobs that ended meanwhile late, and slurmdbd fills in their eligible time later
        # still (seconds after `sacct -j` shows them; a window query skips them until
        # then): the first good run after a failure reads the span but does not move the
        # window on, so the next run reads it again.
        previous = store.last_collection(cluster, status=None)
        hold = previous is not None and previous.status == "failed" and not from_scratch
        tally = _Tally()
        try:
            with _without_cycle_collection():
                _collect(store, settings, cluster, cid, start_s, now_s, history_from, env,
                         progress, tally, from_scratch, hold)
        except BaseException as exc:
            # The transaction is rolled back; record the failure in its own one.
            with store.transaction():
                store.record_collection(Collection(
                    cid, cluster, started, started + time.monotonic() - t0, "failed", start_s,
                    now_s, tally.windows, 0, 0, 0, tally.rejected, 0,
                    f"{type(exc).__name__}: {exc}"[:2000]))
            raise
        return store.last_collection(cluster)  # type: ignore[return-value]


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a collection: it makes millions of
    records (tuples) and no reference cycles, and the collector's passes over them
    took a third of the parsing time (100,000 jobs: 1.0 s of 2.8 s). Resumed after,
    whatever happens."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _collect(store: Store, settings: Settings, cluster: str, cid: int, start_s: int,
             now_s: int, history_from: int, env: dict[str, str] | None,
             progress: Progress | None, tally: _Tally, from_scratch: bool = False,
             hold: bool = False) -> None:
    slurm = settings.slurm
    timeout = slurm.timeout_s
    days = LocalDays(settings.facility.timezone)
    source = open_source(settings, cluster, env)
    cuts = Windows(start_s, now_s, int(slurm.window_hours * 3600), target=source.window_target,
                   growth=source.window_growth)
    started, t0 = clock.now(), time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        accounts = pool.submit(source.accounts)
        events = pool.submit(door.run_sacctmgr_events, cluster, history_from, timeout, env)
        resv = pool.submit(door.run_sacctmgr_reservations, cluster, history_from, timeout, env)
        nodes = pool.submit(door.run_sinfo, cluster, timeout, env)

        with store.transaction():
            if from_scratch:
                store.forget_jobs(cluster)
            open_before = {j.key: j.job_id_raw for j in store.open_jobs(cluster)}
            if store.meta("timezone") != settings.facility.timezone:
                rebuild_rollups(store, days, progress)
                store.set_meta("timezone", settings.facility.timezone)
            # sacct writes while this thread stores what it wrote (sources.read_windows).
            # (A parser process was tried: on 2 cores, pickling the records back cost
            # more than it saved.)
            for (w_start, _), result, done in read_windows(source, cuts, pool):
                _ingest(store, cluster, result, cid, days, tally,
                        f"{source.name} window from {door.sacct_time(w_start)}")
                if done:
                    tally.windows += 1
                    if progress:
                        progress(f"reading {source.name} (% of the time span)",
                                 round(100 * cuts.fraction_done(start_s)), 100)
            missing = sorted({raw for key, raw in open_before.items()
                              if key not in tally.seen_open})
            for i in range(0, len(missing), 1000):
                _ingest(store, cluster, source.by_ids(missing[i:i + 1000]), cid, days, tally,
                        f"{source.name} by job id")
            _flush(store, tally)
            tree, unreadable = accounts.result()
            if unreadable:
                tally.rejected += store.record_rejected(
                    cid, "sacctmgr show account",
                    ((r.line_no, r.reason, r.line) for r in unreadable))
            store.replace("accounts", cluster, [
                (cluster, a.account, a.parent, a.organisation, a.description,
                 a.grp_gpu_minutes, ",".join(a.users)) for a in tree])
            store.replace("events", cluster, [
                (cluster, e.kind, e.node, e.start_s, e.end_s, e.state, e.reason, e.gpus, e.nodes)
                for e in parse_events(events.result())])
            store.replace("reservations", cluster, [
                (cluster, r.id, r.name, r.start_s, r.end_s, ",".join(r.flags), r.nodelist,
                 r.tres_gpus) for r in parse_reservations(resv.result())])
            store.refresh_months(settings.facility.timezone)
            notes = [HELD] if hold else []
            inventory_note = _record_inventory(store, cluster, nodes, now_s)
            if inventory_note:
                notes.append(inventory_note)
            store.record_collection(Collection(
                cid, cluster, started, started + time.monotonic() - t0, "ok", start_s,
                start_s + int(slurm.lookback_hours * 3600) if hold else now_s, tally.windows,
                tally.new, tally.updated, tally.unchanged, tally.rejected, tally.pending_arrays,
                "; ".join(notes)))


def _record_inventory(store: Store, cluster: str, nodes: Future[str], now_s: int) -> str:
    """Each node's GPUs from sinfo into the inventory (capacity uses them for maintenance
    time). sinfo asks slurmctld, not slurmdbd: when it fails the collection goes on with
    the inventory it had, and says so."""
    try:
        parsed, _ = parse_sinfo(nodes.result())
    except door.SlurmError as exc:
        return f"node inventory not updated (sinfo failed: {exc})"[:1000]
    store.record_inventory(cluster, ((n.node, n.gpu_type, n.gpus) for n in parsed), now_s)
    return ""


def _ingest(store: Store, cluster: str, result: ParseResult, cid: int, days: LocalDays,
            tally: _Tally, source: str) -> None:
    if result.rejected:
        tally.rejected += store.record_rejected(
            cid, source, ((r.line_no, r.reason, r.line) for r in result.rejected))
    tally.pending_arrays += len(result.pending_arrays)
    apply_records(store, cluster, result.records, cid, days, tally, result.steps)
    if len(tally.usage) > 200_000:
        _flush(store, tally)


__all__ = ["CollectionsFailed", "FieldError", "Windows", "collect", "collect_facility"]
