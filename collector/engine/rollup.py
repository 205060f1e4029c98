"""How one finished job becomes rolled-up usage (pure; no I/O).

The store keeps, beside every job, daily aggregates like slurmdbd's own usage
tables: GPU-seconds per local day and dimensions (and, for jobs whose energy Slurm
recorded, their joules split by time and those jobs' GPU-seconds), and started jobs
with their queue wait. Reports read those instead of a million job rows. Only jobs with a
known end are rolled up; running jobs are added live at report time.

A job is cut at the facility's local midnights (`LocalDays.split`) into one cell per
local day it ran in: a ten-hour job makes one or two cells, not ten, which is most of
what the collector's hot path costs. Energy and GPU use are split over those cells
with running sums (each cell gets `total * seconds so far // elapsed` minus what the
cells before it got), so a day's figure is the same whether the job was first cut
into hours or into days.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from collector.slurm.records import JobRecord

HOUR = 3600
# Queue-wait bins (upper edges, seconds): the median is interpolated within a bin.
WAIT_EDGES = (60, 300, 900, 1800, 3600, 2 * HOUR, 4 * HOUR, 8 * HOUR, 12 * HOUR, 24 * HOUR,
              48 * HOUR, 96 * HOUR, 7 * 24 * HOUR)
SIZE_CLASSES = ("1 GPU", "1 node", "2-16 nodes", ">16 nodes")
NO_GPU = "no GPU"  # started jobs without gres/gpu: counted for data quality only


def bucket_origin(timezone: str) -> int:
    """Seconds past the UTC hour at which the zone's hours start (0 for most zones)."""
    offset = datetime(2001, 1, 1, tzinfo=ZoneInfo(timezone)).utcoffset() or timedelta(0)
    return int(offset.total_seconds()) % HOUR


class LocalDays:
    """Local midnights of the facility's zone, memoised: `days(t)` is the midnight that
    starts the local day holding `t`; `split` cuts a span at them."""

    def __init__(self, timezone: str):
        self.zone = ZoneInfo(timezone)
        self.origin = bucket_origin(timezone)
        self._cache: dict[int, int] = {}
        self._next: dict[int, int] = {}

    def __call__(self, t: int) -> int:
        day = self._cache.get(t)
        if day is None:
            local = datetime.fromtimestamp(t, self.zone)
            midnight = datetime(local.year, local.month, local.day, tzinfo=self.zone)
            day = int(midnight.timestamp())
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[t] = day
        return day

    def following(self, day: int) -> int:
        """The midnight after the local midnight `day`: the next local date's, found by
        date (a local day is usually 23 to 25 hours long, but Antarctica/Casey had
        one of 27 hours in 2010, and Pacific/Apia skipped 2011-12-30)."""
        local = datetime.fromtimestamp(day, self.zone)
        step = 1
        while True:
            nxt = self(int((datetime(local.year, local.month, local.day, tzinfo=self.zone)
                            + timedelta(days=step)).timestamp()))
            if nxt > day:
                return nxt
            step += 1  # that date began at `day` too (a skipped date's gap)

    def cells(self, start_s: int, end_s: int) -> list[tuple[int, int]]:
        """`split` as a list; a span inside one local day (most jobs) costs two cache
        hits."""
        day = self(start_s - (start_s - self.origin) % HOUR)
        nxt = self._next.get(day)
        if nxt is not None and end_s <= nxt:
            return [(day, end_s - start_s)] if end_s > start_s else []
        return list(self.split(start_s, end_s))

    def split(self, start_s: int, end_s: int) -> Iterator[tuple[int, int]]:
        """(local midnight, seconds inside) for each local day that [start, end) touches.

        Midnights fall on the zone's hour buckets (see `bucket_origin`), so the day of
        a second is the day of its hour bucket (a cache hit for most jobs); each day's
        next midnight is memoised."""
        day = self(start_s - (start_s - self.origin) % HOUR)
        while day < end_s:
            nxt = self._next.get(day)
            if nxt is None:
                nxt = self._next[day] = self.following(day)
            inside = min(end_s, nxt) - max(start_s, day)
            if inside > 0:
                yield day, inside
            day = nxt


def size_class(gpus: int, nodes: int) -> str:
    """The domain's job-size classes: 1 GPU, up to 1 node, 2-16 nodes, more."""
    if gpus <= 1:
        return SIZE_CLASSES[0]
    if nodes <= 1:
        return SIZE_CLASSES[1]
    return SIZE_CLASSES[2] if nodes <= 16 else SIZE_CLASSES[3]


def wait_bin(wait_s: int) -> int:
    """Index of the queue-wait bin (0 .. len(WAIT_EDGES))."""
    return bisect_left(WAIT_EDGES, max(0, wait_s))


UsageKey = tuple[str, int, str, str, str, str, str, str]
StartKey = tuple[str, int, str, str, str, int]


def usage_cells(job: JobRecord, days: LocalDays) -> list[tuple[UsageKey, int]]:
    """GPU-seconds per local day of a finished job that ran with GPUs."""
    if job.end_s is None or job.start_s is None or not job.started or job.gpus <= 0:
        return []
    cluster, gpus = job.cluster, job.gpus
    dims = (job.account, job.user, job.partition, job.gpu_type or "", job.wckey,
            size_class(gpus, job.nodes))
    return [((cluster, day, *dims), gpus * seconds)
            for day, seconds in days.cells(job.start_s, job.end_s)]


def energy_cells(job: JobRecord, days: LocalDays, cells: list[tuple[UsageKey, int]] | None = None
                 ) -> list[tuple[UsageKey, tuple[int, int]]]:
    """(joules, GPU-seconds) per local day of a finished GPU job whose energy Slurm
    recorded: its energy split in proportion to its time in each bucket, in whole
    joules that add up to the job's exactly. A job without energy has no cells (no
    data, never zero joules). `cells`: the job's usage_cells, when the caller has them."""
    if job.energy_j is None:
        return []
    cells = usage_cells(job, days) if cells is None else cells
    if not cells:
        return []
    if len(cells) == 1:  # one day (most jobs): all of it
        key, gpu_s = cells[0]
        return [(key, (job.energy_j, gpu_s))]
    elapsed = job.end_s - job.start_s  # type: ignore[operator]  # cells: both are set
    done_s = done_j = 0
    split = []
    for key, gpu_s in cells:
        done_s += gpu_s // job.gpus
        joules = job.energy_j * done_s // elapsed - done_j
        done_j += joules
        split.append((key, (joules, gpu_s)))
    return split


LONG_IDLE_S = 3600  # an idle stretch longer than this makes a "long idle" job


def gpu_use_cells(job: JobRecord, days: LocalDays, cells: list[tuple[UsageKey, int]] | None = None
                  ) -> Iterator[tuple[UsageKey, tuple[int, ...]]]:
    """Per local day of a finished GPU job with GPU data (engine/gpuuse.py), in
    database.GPU_USE_COLUMNS order: its GPU-seconds, busy and idle GPU-seconds split in
    proportion to its time in each (whole seconds that add up to the job's exactly),
    memory peak x GPU-seconds, and, if its idle stretch passed an hour, the job (on the
    day it ended) and its GPU-seconds. No data: no cells, never zeros."""
    if job.busy_gpu_s is None or job.idle_gpu_s is None:
        return
    cells = list(usage_cells(job, days)) if cells is None else cells
    if not cells:
        return
    elapsed = job.end_s - job.start_s  # type: ignore[operator]  # cells: both are set
    long_idle = (job.idle_stretch_s or 0) > LONG_IDLE_S
    mem = job.gpu_mem_mib or 0
    done_s = done_busy = done_idle = 0
    for i, (key, gpu_s) in enumerate(cells):
        done_s += gpu_s // job.gpus
        busy = job.busy_gpu_s * done_s // elapsed - done_busy
        idle = job.idle_gpu_s * done_s // elapsed - done_idle
        done_busy += busy
        done_idle += idle
        last = i == len(cells) - 1
        yield key, (gpu_s, busy, idle, mem * gpu_s, int(long_idle and last),
                    gpu_s if long_idle else 0)


def start_cell(job: JobRecord, days: LocalDays) -> tuple[StartKey, int] | None:
    """The local day a job started, its dimensions and its queue wait (seconds)."""
    if job.start_s is None or not job.started:
        return None
    ready = job.eligible_s if job.eligible_s is not None else job.submit_s
    wait = max(0, job.start_s - ready)
    day = days(job.start_s - (job.start_s - days.origin) % HOUR)
    size = size_class(job.gpus, job.nodes) if job.gpus > 0 else NO_GPU
    return (job.cluster, day, job.account, job.user, size, wait_bin(wait)), wait
