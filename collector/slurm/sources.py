"""Where job records come from: `[slurm] source = "sacct" | "slurmrestd" | "pyslurm"`.

Each source turns one accounting window (and a list of job ids) into the same
`ParseResult` of canonical `JobRecord`s, and reads the account tree; the
collector does not know which one it talks to. Cluster events and reservations
(capacity, maintenance) come from sacctmgr whatever the source: no slurmrestd
release up to 26.05 and no pyslurm release serves slurmdbd's event history.

The live view (`live_jobs`, `live_nodes`: jobs holding or waiting for GPUs now, each
node's GPUs and state) comes from pyslurm with that source (slurmctld through
libslurm), else from squeue and sinfo; slurmrestd's live endpoints are not used, so
the exporter's live families do not depend on slurmrestd's data-parser version.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from collector.config import Settings, Slurm
from collector.secretfile import SecretFileError, read_secret_file
from collector.slurm import commands as door
from collector.slurm import slurmrestd_parser
from collector.slurm.live_parser import LiveJob, NodeGpus, parse_sinfo, parse_squeue
from collector.slurm.sacct_parser import ParseResult, Rejected, SacctReader, merge, parse_sacct
from collector.slurm.sacctmgr_parser import Account, parse_accounts
from collector.slurm.slurmrestd_source import RestClient
from collector.slurm.steps import add_sacct_steps, crossing

if TYPE_CHECKING:  # imported lazily: the product runs without pyslurm
    from collector.slurm.pyslurm_source import PyslurmSource

SOURCES = ("sacct", "slurmrestd", "pyslurm")


Window = tuple[int, int]


class Cuts(Protocol):  # collect.Windows
    def take(self) -> Window | None: ...
    def observe(self, records: int, length_s: int) -> None: ...


class JobSource(Protocol):
    name: str
    window_target: int   # records per window the collector aims at
    # How fast windows may grow (times the one before): 4 where a window costs the
    # collector no memory (sacct streamed), else 2 (a window held whole).
    window_growth: int

    def window(self, start_s: int, end_s: int) -> ParseResult: ...
    def by_ids(self, job_ids: list[int]) -> ParseResult: ...
    def accounts(self) -> tuple[list[Account], list[Rejected]]: ...


def read_windows(source: JobSource, cuts: Cuts, pool: ThreadPoolExecutor
                 ) -> Iterator[tuple[Window, ParseResult, bool]]:
    """(window, records, whether the window is done) for every window `cuts` gives.

    sacct's jobs are read as sacct writes them (`SacctSource.stream`): records come in
    pieces while sacct is still running. The other doors (and sacct with steps, which
    needs a window's jobs whole) answer a window at a time, with the next one already
    asked for while the caller stores this one."""
    if isinstance(source, SacctSource) and not source.steps:
        yield from source.stream(cuts)
        return

    def fetch() -> tuple[Window, Future[ParseResult]] | None:
        window = cuts.take()
        return None if window is None else (window, pool.submit(source.window, *window))

    queue = [w for w in (fetch(), fetch()) if w is not None]
    while queue:
        window, future = queue.pop(0)
        result = future.result()
        cuts.observe(len(result.records), window[1] - window[0])
        if (nxt := fetch()) is not None:
            queue.append(nxt)
        yield window, result, True


@dataclass
class SacctSource:
    cluster: str
    timeout_s: float
    env: dict[str, str] | None = None
    name: str = "sacct"
    # Streamed, a window costs the collector no memory of its own: a window is bounded
    # by slurmdbd's and sacct's memory (sacct held 383 MB for windows of 200,000 on
    # 22.05). Each window query costs slurmdbd a scan of every job eligible before
    # the window's end (about 4 s at 10 million jobs, whatever the window's size):
    # 400,000 halves the windows of a year at 10M against 200,000. With steps, a
    # window's jobs are held whole until their steps are read.
    window_target: int = 400_000
    window_growth: int = 4
    steps: bool = False  # also read each job's steps (GPU use)

    def __post_init__(self) -> None:
        if self.steps:
            self.window_target, self.window_growth = 50_000, 2

    def window(self, start_s: int, end_s: int) -> ParseResult:
        delimiter = door.new_delimiter()  # a new one each run: see sacct_parser
        result = parse_sacct(door.run_sacct(start_s, end_s, self.cluster, delimiter,
                                            self.timeout_s, self.env), self.cluster, delimiter)
        if self.steps:  # after the jobs: a job seen ended has its steps ended too
            add_sacct_steps(result, self.cluster, self.timeout_s, self.env, (start_s, end_s))
        return result

    def stream(self, cuts: Cuts) -> Iterator[tuple[Window, ParseResult, bool]]:
        """Every window's records in pieces as sacct writes them (see door.stream_sacct);
        a window's last piece comes with True, once its sacct has exited 0."""
        reader: SacctReader | None = None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        current: Window | None = None
        for window, delimiter, chunk in door.stream_sacct(cuts.take, cuts.observe,
                                                          self.cluster, self.timeout_s,
                                                          self.env):
            if window != current:
                current, reader = window, SacctReader(self.cluster, delimiter)
                decoder.reset()
            if chunk is not None:
                yield window, reader.feed(decoder.decode(chunk)), False
            else:
                yield window, merge(reader.feed(decoder.decode(b"", final=True)),
                                    reader.finish()), True

    def by_ids(self, job_ids: list[int]) -> ParseResult:
        delimiter = door.new_delimiter()
        result = parse_sacct(door.run_sacct_jobs(job_ids, self.cluster, delimiter,
                                                 self.timeout_s, self.env), self.cluster,
                             delimiter)
        if self.steps:
            add_sacct_steps(result, self.cluster, self.timeout_s, self.env, ids=job_ids)
        return result

    def accounts(self) -> tuple[list[Account], list[Rejected]]:
        return parse_accounts(*door.run_sacctmgr_accounts(self.cluster, self.timeout_s,
                                                          self.env))


@dataclass
class RestSource:
    cluster: str
    client: RestClient
    name: str = "slurmrestd"
    # slurmrestd builds each response whole in memory (several KB of JSON per job).
    window_target: int = 20_000
    window_growth: int = 2

    steps: bool = False  # read each job's GPU use from its steps

    def window(self, start_s: int, end_s: int) -> ParseResult:
        result = slurmrestd_parser.parse_jobs(
            self.client.jobs(start_s, end_s, self.cluster, steps=self.steps), self.cluster,
            self.steps)
        if self.steps:  # slurmdbd gives a window's steps that overlap it only
            whole = self.by_ids(crossing(result, start_s, end_s))
            result.steps = {**(result.steps or {}), **(whole.steps or {})}
            result.rejected.extend(whole.rejected)
        return result

    def by_ids(self, job_ids: list[int]) -> ParseResult:
        result = ParseResult(steps={} if self.steps else None)
        for job_id in job_ids:
            one = slurmrestd_parser.parse_jobs(self.client.job(job_id), self.cluster,
                                               self.steps)
            result.records.extend(r for r in one.records if r.cluster == self.cluster)
            result.rejected.extend(one.rejected)
            result.pending_arrays.extend(one.pending_arrays)
            if result.steps is not None and one.steps:
                result.steps.update(one.steps)
        return result

    def accounts(self) -> tuple[list[Account], list[Rejected]]:
        return slurmrestd_parser.parse_accounts(self.client.associations(self.cluster),
                                                self.client.accounts(), self.cluster), []


def read_token(settings: Settings, env: dict[str, str] | None = None) -> str | None:
    """The slurmrestd JWT from `token_file`, else from the `token_env` variable."""
    rest = settings.slurmrestd
    if rest.token_file is not None:
        try:
            return read_secret_file(rest.token_file, "the slurmrestd token file") or None
        except SecretFileError as exc:
            raise door.SlurmError(str(exc)) from exc
    return (env if env is not None else os.environ).get(rest.token_env) or None


def open_source(settings: Settings, cluster: str, env: dict[str, str] | None = None
                ) -> JobSource:
    """The configured source for one of the clusters, ready to read; raises SlurmError
    when it cannot be."""
    slurm = settings.slurm
    if slurm.source == "slurmrestd":
        rest = settings.slurmrestd
        user = rest.user or (env if env is not None else os.environ).get("USER")
        token = None if rest.url.startswith("unix:") else read_token(settings, env)
        client = RestClient(rest.url, user if token else None, token, slurm.timeout_s)
        # Steps (much more JSON) only where slurmdbd tracks GPU use: not on 22.05.
        return RestSource(cluster, client, steps=slurm.gpu_steps == "auto"
                          and slurmrestd_parser.tracks_gpu_use(client.tres()))
    if slurm.source == "pyslurm":
        from collector.slurm.pyslurm_source import PyslurmSource
        # pyslurm's JobStep has no GPU figures (its statistics read cpu, memory and disk
        # only): the steps come through sacct, as events and reservations do.
        return PyslurmSource(cluster, slurm.timeout_s, env,
                             steps=slurm.gpu_steps == "auto" and records_gpu_use(slurm, env))
    return SacctSource(cluster, slurm.timeout_s, env,
                       steps=slurm.gpu_steps == "auto" and records_gpu_use(slurm, env))


def records_gpu_use(slurm: Slurm, env: dict[str, str] | None) -> bool:
    """Whether slurmdbd tracks gres/gpuutil (Slurm 23.02+ adds it with gres/gpu)."""
    text = door.run_sacctmgr_tres(slurm.timeout_s, env)
    return any(line.strip().lower() == "gres|gpuutil" for line in text.splitlines())


def _pyslurm(settings: Settings, cluster: str, env: dict[str, str] | None
             ) -> PyslurmSource | None:
    """The pyslurm door when it is the configured source (the live view's too)."""
    if settings.slurm.source != "pyslurm":
        return None
    from collector.slurm.pyslurm_source import PyslurmSource
    return PyslurmSource(cluster, settings.exporter.slurm_timeout_s, env)


R = TypeVar("R", LiveJob, NodeGpus)


def _named(cluster: str, name: str, several: bool) -> str:
    """A job id or node name, as `cluster:name` when the facility has several clusters
    (each cluster numbers its jobs and may name its nodes like another)."""
    return f"{cluster}:{name}" if several else name


def _every_cluster(settings: Settings, read: Callable[[str], tuple[list[R], list[Rejected]]],
                   rename: Callable[[R, Callable[[str], str]], R]
                   ) -> tuple[list[R], list[Rejected]]:
    """Each cluster's live view from `read(cluster)`, every record passed through
    `rename(record, named)` (named: an id as `cluster:id` when there are several);
    a SlurmError names the cluster when there are several."""
    out: list[R] = []
    bad: list[Rejected] = []
    several = settings.slurm.several
    for cluster in settings.slurm.clusters:
        try:
            got, rejected = read(cluster)
        except door.SlurmError as exc:
            raise door.SlurmError(f"cluster {cluster}: {exc}" if several else str(exc)) from exc
        out.extend(rename(record, lambda id_, c=cluster: _named(c, id_, several))
                   for record in got)
        bad.extend(rejected)
    return out, bad


def live_jobs(settings: Settings, env: dict[str, str] | None = None
              ) -> tuple[list[LiveJob], list[Rejected]]:
    """Jobs holding or waiting for GPUs now on every cluster, and what could not be
    read; raises SlurmError (naming the cluster when there are several)."""
    def read(cluster: str) -> tuple[list[LiveJob], list[Rejected]]:
        source = _pyslurm(settings, cluster, env)
        return source.jobs_now() if source is not None else parse_squeue(
            door.run_squeue(cluster, settings.exporter.slurm_timeout_s, env))
    return _every_cluster(settings, read, lambda j, named: j._replace(job_id=named(j.job_id)))


def live_nodes(settings: Settings, env: dict[str, str] | None = None
               ) -> tuple[list[NodeGpus], list[Rejected]]:
    """Every node of every cluster with its GPUs and state, and what could not be
    read; raises SlurmError."""
    def read(cluster: str) -> tuple[list[NodeGpus], list[Rejected]]:
        source = _pyslurm(settings, cluster, env)
        return source.nodes_now() if source is not None else parse_sinfo(
            door.run_sinfo(cluster, settings.exporter.slurm_timeout_s, env))
    return _every_cluster(settings, read, lambda n, named: n._replace(node=named(n.node)))
