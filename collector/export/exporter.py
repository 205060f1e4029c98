"""`gpu-usage exporter`: serves /metrics from views prepared in advance.

One loop refreshes the views: the store view when a collection has finished (or
every `store_refresh_s`, so that running jobs and the month move on), the live
view from squeue and sinfo at most every `live_refresh_s`. A scrape only turns
the current views into text: it never runs Slurm or reads the store, so its time
does not depend on the number of jobs, and a broken source shows as
`gpu_usage_exporter_source_up{source=...} 0` beside the last good figures, never
as an error page. squeue's jobs are counted per account as they are read and folded
per category (snapshot.py): a queue of a million pending array tasks costs each
refresh, never a scrape (docs/benchmark-scrape.json).

There is no login: the exporter listens on localhost by default and warns at
start when it does not; a Prometheus on another host reaches it through a reverse
proxy with TLS and basic auth.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from collector.clock import now as clock_now
from collector.config import Settings, is_loopback
from collector.export.metrics import ExporterStatus, families
from collector.export.views import (
    LiveFigures,
    LiveJobs,
    LiveNodes,
    LiveView,
    StoreView,
    latest_collection_id,
    live_accounts,
    live_figures,
    read_live_jobs,
    read_live_nodes,
    read_store_view,
)
from collector.slurm.commands import SlurmError
from collector.store.database import Store, StoreError

log = logging.getLogger(__name__)


class Exporter(Collector):
    """The prepared views and the custom collector over them.

    Refreshes run in one thread (`refresh`), scrapes in the HTTP server's threads
    (`collect`); a refresh replaces whole immutable views, so no lock is needed. A
    scrape reads `view` and `figures` only, never the live view's counts."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None,
                 clock: Callable[[], float] = clock_now):
        self.settings = settings
        self.env = env
        self.clock = clock
        self.status = ExporterStatus()
        self.view: StoreView | None = None
        self.live: LiveView | None = None
        self.figures: LiveFigures | None = None     # the live families, by category
        self._seen_collection = -1
        self._next_store_check = 0.0
        self._next_live = 0.0

    # --- prometheus_client.registry.Collector ----------------------------------------
    def describe(self) -> list[Metric]:
        return []  # registering must not read anything

    def collect(self) -> Iterator[Metric]:
        try:
            yield from families(self.settings, self.view, self.figures, self.status)
        except Exception:  # a scrape must never fail; the figures are gone, health stays
            log.exception("building the metrics failed")
            yield from families(self.settings, None, None, self.status)

    # --- refreshing -------------------------------------------------------------------
    def _timed(self, source: str, read: Callable[[], object], poll: bool = False
               ) -> object | None:
        """Run one read of a source and keep its status; None if it failed. A poll
        (a cheap look whether there is anything new) keeps the last read's duration."""
        status = self.status.sources[source]
        t0 = time.perf_counter()
        try:
            value = read()
        except (SlurmError, StoreError, OSError, ValueError) as exc:
            status.up, status.last_error = False, str(exc)
            status.errors += 1
            log.warning("refreshing %s failed: %s", source, exc)
            return None
        status.up, status.last_error = True, ""
        status.last_success_s = self.clock()
        if not poll:
            status.last_duration_s = time.perf_counter() - t0
        return value

    def refresh_store(self, force: bool = False) -> bool:
        """Rebuild the store view if a collection finished since the last one (or if
        forced, or too old); True if it was rebuilt."""
        settings = self.settings
        now = self.clock()
        stale = self.view is None or now - self.view.taken_s >= settings.exporter.store_refresh_s

        def latest() -> int:
            with Store.open_reader(settings.store.path) as store:
                return latest_collection_id(store, settings.slurm.clusters)

        newest = self._timed("store", latest, poll=True)
        if newest is None:
            return False
        if not (force or stale or newest != self._seen_collection):
            return False
        view = self._timed("store", lambda: read_store_view(settings, now))
        if view is None:
            return False
        self.view = view
        self._seen_collection = newest
        self._refold()  # the account tree may have changed: accounts map anew
        return True

    def refresh_live(self) -> bool:
        """Read squeue and sinfo, counted as they are read (the read's duration
        includes the counting); a source that fails keeps its last good data."""
        jobs = self._timed("squeue", lambda: read_live_jobs(self.settings, self.env))
        nodes = self._timed("sinfo", lambda: read_live_nodes(self.settings, self.env))
        if jobs is None and nodes is None:
            return False
        prev = self.live or LiveView(0, LiveJobs(), LiveNodes(), 0)
        self.live = LiveView(self.clock(), jobs[0] if jobs else prev.jobs,
                             nodes[0] if nodes else prev.nodes,
                             (jobs[1] if jobs else 0) + (nodes[1] if nodes else 0))
        self._refold()
        return True

    def _refold(self) -> None:
        """Map the live counts to categories: per account, never per job."""
        if self.live is not None:
            amap = live_accounts(self.settings, self.view, self.live)
            self.figures = live_figures(self.settings, self.live, amap)

    def refresh(self) -> None:
        """One round of the loop: whatever is due."""
        now = self.clock()
        if now >= self._next_store_check:
            self.refresh_store()
            self._next_store_check = now + self.settings.exporter.store_poll_s
        if now >= self._next_live:
            self.refresh_live()
            self._next_live = now + self.settings.exporter.live_refresh_s

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.refresh()
            due = min(self._next_store_check, self._next_live) - self.clock()
            stop.wait(max(0.2, due))


def exposure_warning(settings: Settings, address: str) -> str | None:
    """What a non-loopback address gives away (there is no login); None on localhost."""
    if is_loopback(address):
        return None
    what = "every category's usage, quota and GPUs now"
    if settings.exporter.project_labels:
        what += ", and every project's allocation (granted, used; project_labels = true),"
    return (f"warning: the exporter listens on {address or 'every interface'}, not "
            f"localhost: {what} are served without login to anyone who can reach the "
            "port. Put a reverse proxy with TLS and basic auth in front (docs/exporter.md) "
            "and listen on 127.0.0.1, or firewall the port.")


def serve(settings: Settings, address: str, port: int, stop: threading.Event,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Prepare the views once, then serve /metrics and refresh until `stop` is set."""
    warning = exposure_warning(settings, address)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    exporter = Exporter(settings)
    exporter.refresh()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    server, thread = start_http_server(port, address, registry)
    try:
        if on_ready:
            host = address if address not in ("", "0.0.0.0", "::") else "localhost"
            on_ready(f"http://{host}:{server.server_port}/metrics")
        exporter.run(stop)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
