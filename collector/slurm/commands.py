"""The one door to Slurm's command-line tools (sacct, sacctmgr; squeue and sinfo
for the exporter's live view): the only place that runs them.

Argument lists, no shell; TZ=UTC and SLURM_TIME_FORMAT=standard so that the
parsers read every time the same way, and none of the tools' own variables
(SACCT_*, SQUEUE_*, SINFO_*, ...) that select other records or print another
format (`slurm_env`); the field lists are the parsers' own tuples. SLURM_CONF
comes from the environment, so one install can point at any cluster. Failures raise
`SlurmError` naming the command and what it said; only the CLI turns them into
exit codes.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from collector.slurm.live_parser import SINFO_FIELDS, SQUEUE_FIELDS, SQUEUE_STATES
from collector.slurm.sacct_parser import SACCT_FIELDS, STEP_FIELDS
from collector.slurm.sacctmgr_parser import (
    ACCOUNT_FORMAT,
    ASSOC_FORMAT,
    EVENT_FORMAT,
    RESERVATION_FORMAT,
)


class SlurmError(RuntimeError):
    """A Slurm command failed, timed out or could not be started."""


def sacct_time(epoch: int) -> str:
    """An epoch as sacct's --starttime/--endtime in UTC.

    sacctmgr reads 1970-01-01T00:00:00 as "no start" (and then shows only open
    events), so times before the second day of the epoch are moved to it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(max(epoch, 86400)))


def new_delimiter() -> str:
    """A field delimiter for one sacct run: 64 random bits between two unit separators.

    Job names and WCKeys are written by any user and printed raw; a name written
    before this run cannot hold a delimiter drawn for it (sacct_parser's doc says how
    records are then read). Short, because sacct prints it 17 times per job."""
    return f"\x1f{secrets.token_urlsafe(8)}\x1f"


def _common(cluster: str | None, delimiter: str) -> list[str]:
    if not delimiter or "\n" in delimiter or "\0" in delimiter:
        raise ValueError("the sacct delimiter must be non-empty text without newlines")
    return ["--allusers", "--allocations", "--duplicates", "--parsable2", "--noheader",
            f"--delimiter={delimiter}", f"--format={','.join(SACCT_FIELDS)}",
            *([f"--clusters={cluster}"] if cluster else [])]


def sacct_argv(start_s: int, end_s: int, cluster: str | None, delimiter: str) -> list[str]:
    """The sacct command for every allocation eligible or running in [start, end)."""
    return ["sacct", *_common(cluster, delimiter), f"--starttime={sacct_time(start_s)}",
            f"--endtime={sacct_time(end_s)}"]


# Variables the tools read as if they were options: SQUEUE_USERS or SINFO_PARTITION
# would narrow what the exporter sees, SACCT_FEDERATION widen a collection, a
# *_FORMAT change the columns. A cron job or an operator's shell may carry any.
_TOOL_VARIABLES = ("SACCT_", "SACCTMGR_", "SQUEUE_", "SINFO_", "SREPORT_")


def slurm_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Slurm tool runs with: the caller's (`env`, else this
    process's) without the tools' own option variables, with times printed in UTC in
    Slurm's standard form (a SLURM_TIME_FORMAT=relative in the caller's shell made
    every time unreadable and every collection fail)."""
    base = os.environ if env is None else env
    kept = {k: v for k, v in base.items() if not k.startswith(_TOOL_VARIABLES)}
    return dict(kept, TZ="UTC", SLURM_TIME_FORMAT="standard")


def _run(argv: list[str], what: str, timeout_s: float, env: dict[str, str] | None) -> str:
    full_env = slurm_env(env)
    try:
        # newline="": no universal newlines, so a \r in a job name stays a \r (the
        # parsers split at \n only).
        proc = subprocess.run(argv, env=full_env, capture_output=True, timeout=timeout_s,
                              check=False)
    except FileNotFoundError as exc:
        raise SlurmError(f"{argv[0]} not found: install slurm-client or put it on PATH") from exc
    except OSError as exc:  # not executable, out of descriptors or memory
        raise SlurmError(f"{argv[0]} could not be started ({what}): {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{argv[0]} timed out after {timeout_s:.0f} s ({what}); is slurmdbd "
                         "overloaded or unreachable?") from exc
    stdout = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise SlurmError(f"{argv[0]} exited {proc.returncode} ({what}): "
                         f"{stderr.strip()[:500] or '(no message)'}")
    return stdout


def run_sacct(start_s: int, end_s: int, cluster: str | None, delimiter: str,
              timeout_s: float = 600, env: dict[str, str] | None = None) -> str:
    """The raw sacct text for the window, fields split by `delimiter`; raises SlurmError."""
    return _run(sacct_argv(start_s, end_s, cluster, delimiter),
                f"jobs {sacct_time(start_s)}..{sacct_time(end_s)}", timeout_s, env)


CHUNK = 1 << 20  # bytes read from sacct's stdout at a time
BACKLOG = 64     # chunks read ahead of the parser at most (then sacct waits)
# The parser takes every chunk waiting for it, up to this many bytes, in one piece: sacct
# writes in pieces of a few KB, and each piece parsed alone costs a store query.
COALESCE = 4 << 20
_NOTHING = object()


class _Sacct:
    """One running sacct of stream_sacct: its window, delimiter and stderr, and a timer
    that kills it when it runs past the timeout."""

    def __init__(self, window: tuple[int, int], cluster: str | None, timeout_s: float,
                 env: dict[str, str]):
        self.window, self.timeout_s = window, timeout_s
        self.delimiter = new_delimiter()
        self.what = f"jobs {sacct_time(window[0])}..{sacct_time(window[1])}"
        try:
            self.proc = subprocess.Popen(sacct_argv(*window, cluster, self.delimiter), env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise SlurmError("sacct not found: install slurm-client or put it on PATH") from None
        except OSError as exc:  # not executable, out of descriptors or memory
            raise SlurmError(f"sacct could not be started ({self.what}): {exc}") from exc
        # stderr is drained beside stdout, so that a chatty sacct cannot block.
        self.errors: list[bytes] = []
        self.drain = threading.Thread(target=lambda: self.errors.append(self.proc.stderr.read()),
                                      daemon=True)
        self.drain.start()
        self.reading = self.done = False
        self.timer = self._clock()

    def _clock(self) -> threading.Timer:
        # The timer holds a weak reference: a bound method would make a cycle (this ->
        # timer -> this) that only the cyclic garbage collector frees, and it is paused
        # during a collection, so every finished window kept its pipes open (200
        # windows: 400 descriptors).
        timer = threading.Timer(self.timeout_s, _timer_fired, (weakref.ref(self),))
        timer.daemon = True
        timer.start()
        return timer

    def _expire(self) -> None:
        if self.done:
            return
        if self.reading:
            self.proc.kill()
        else:  # still waiting for its turn to be read: that time is not its own
            self.timer = self._clock()

    def restart_clock(self) -> None:
        """Its turn to be read has come: from now on it has timeout_s to finish."""
        self.timer.cancel()
        self.reading = True
        self.timer = self._clock()

    def finish(self) -> None:
        """Wait for its exit (its output read to the end); raise SlurmError unless it
        exited 0."""
        code = self.proc.wait()
        self.drain.join()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.done = True
        timed_out = self.timer.finished.is_set() and code != 0
        self.timer.cancel()
        if timed_out:
            raise SlurmError(f"sacct timed out after {self.timeout_s:.0f} s ({self.what}); is "
                             "slurmdbd overloaded or unreachable?")
        if code != 0:
            stderr = b"".join(self.errors).decode(errors="replace")
            raise SlurmError(f"sacct exited {code} ({self.what}): "
                             f"{stderr.strip()[:500] or '(no message)'}")

    def stop(self) -> None:
        self.done = True
        self.timer.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _timer_fired(ref: weakref.ref) -> None:
    """A sacct's timeout timer fired: tell it, if it is still there."""
    one = ref()
    if one is not None:
        one._expire()


def stream_sacct(take: Callable[[], tuple[int, int] | None],
                 observe: Callable[[int, int], None], cluster: str | None,
                 timeout_s: float = 600, env: dict[str, str] | None = None,
                 ) -> Iterator[tuple[tuple[int, int], str, bytes | None]]:
    """sacct's output for window after window, as it is written, in window order.

    sacct prints nothing until slurmdbd has answered it whole (at a million jobs, 18 s
    of a 26 s dump), so a thread keeps two going: the first two windows at once, then
    the one after next as soon as one ends, and slurmdbd works on the next while this
    one is read. Each has its own delimiter. The thread reads stdout in CHUNK pieces
    while the caller parses the ones before: sacct waits for the parser only if it is
    BACKLOG chunks behind. `take()` gives the next window (None when done);
    `observe(lines, seconds)` is told each window's line count when it ends. Yields
    (window, delimiter, chunk), then (window, delimiter, None) once the window's sacct
    has exited 0; raises SlurmError (and stops the thread and every sacct it started)
    when one fails, times out or cannot start."""
    full_env = slurm_env(env)
    pipe: queue.Queue = queue.Queue(maxsize=BACKLOG)
    stop = threading.Event()
    running: list[_Sacct] = []

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pipe.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def start() -> _Sacct | None:
        window = None if stop.is_set() else take()
        if window is None:
            return None
        one = _Sacct(window, cluster, timeout_s, full_env)
        running.append(one)
        return one

    def reader() -> None:
        try:
            # Two in flight from the start: while one is read, slurmdbd answers the next.
            current = start()
            following = start() if current is not None else None
            while current is not None:
                current.restart_clock()
                lines = 0
                while chunk := current.proc.stdout.read1(CHUNK):
                    lines += chunk.count(b"\n")
                    if not put((current.window, current.delimiter, chunk)):
                        return
                current.finish()
                running.remove(current)
                observe(lines, current.window[1] - current.window[0])
                if not put((current.window, current.delimiter, None)):
                    return
                # The one after next, sized from what this one held.
                current, following = following, start() if following is not None else None
            put(None)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    thread = threading.Thread(target=reader, name="sacct-reader", daemon=True)
    thread.start()
    try:
        pending: object = _NOTHING
        while True:
            item, pending = (pipe.get() if pending is _NOTHING else pending), _NOTHING
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            window, delimiter, chunk = item
            if chunk is not None:  # with what else of the window is waiting: fewer batches
                pieces, size = [chunk], len(chunk)
                while size < COALESCE:
                    try:
                        following = pipe.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(following, tuple) and following[0] == window and \
                            following[2] is not None:
                        pieces.append(following[2])
                        size += len(following[2])
                    else:
                        pending = following
                        break
                chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            yield window, delimiter, chunk
    finally:
        stop.set()
        for one in list(running):
            one.stop()
        thread.join()
        for one in list(running):  # started while the thread was being stopped
            one.stop()


def _steps_common(cluster: str | None) -> list[str]:
    # No --allocations: each job line is followed by its steps. --noconvert: gpumem in
    # bytes (sacct prints it as "78125000K" otherwise).
    return ["sacct", "--allusers", "--duplicates", "--parsable2", "--noheader", "--noconvert",
            f"--format={','.join(STEP_FIELDS)}", *([f"--clusters={cluster}"] if cluster else [])]


def run_sacct_steps(start_s: int, end_s: int, cluster: str | None, timeout_s: float = 600,
                    env: dict[str, str] | None = None) -> str:
    """The steps (times, GPUs, TRESUsageInTot) of the jobs of the window, after each job's
    own line; no free-text field, so sacct's "|" is safe."""
    return _run([*_steps_common(cluster), f"--starttime={sacct_time(start_s)}",
                 f"--endtime={sacct_time(end_s)}"],
                f"steps {sacct_time(start_s)}..{sacct_time(end_s)}", timeout_s, env)


def run_sacct_job_steps(job_ids: list[int], cluster: str | None, timeout_s: float = 600,
                        env: dict[str, str] | None = None) -> str:
    """The steps of these jobs, whenever they ran."""
    ids = ",".join(str(int(i)) for i in job_ids)
    return _run([*_steps_common(cluster), f"--jobs={ids}"], f"steps of {len(job_ids)} job(s)",
                timeout_s, env)


def run_sacctmgr_tres(timeout_s: float = 120, env: dict[str, str] | None = None) -> str:
    """The TRES slurmdbd tracks, one `type|name` per line (gres|gpuutil ...)."""
    return _sacctmgr(["tres"], ("Type", "Name"), "show tres", timeout_s, env)


def run_sacct_jobs(job_ids: list[int], cluster: str | None, delimiter: str,
                   timeout_s: float = 600, env: dict[str, str] | None = None) -> str:
    """The raw sacct text of every record of these jobs, whenever they ran."""
    ids = ",".join(str(int(i)) for i in job_ids)
    return _run(["sacct", *_common(cluster, delimiter), f"--jobs={ids}"],
                f"{len(job_ids)} job(s) by id", timeout_s, env)


def _sacctmgr(args: list[str], fields: tuple[str, ...], what: str, timeout_s: float,
              env: dict[str, str] | None) -> str:
    return _run(["sacctmgr", "--noheader", "--parsable2", "show", *args,
                 f"format={','.join(fields)}"], what, timeout_s, env)


def run_sacctmgr_account_info(timeout_s: float = 120, env: dict[str, str] | None = None) -> str:
    """Every account's organisation and description (`sacctmgr show account`)."""
    return _sacctmgr(["account"], ACCOUNT_FORMAT, "show account", timeout_s, env)


def run_sacctmgr_accounts(cluster: str, timeout_s: float = 120,
                          env: dict[str, str] | None = None) -> tuple[str, str]:
    """(associations, accounts) text: the tree, budgets, users, organisations."""
    assoc = _sacctmgr(["associations", f"cluster={cluster}"], ASSOC_FORMAT,
                      "show associations", timeout_s, env)
    return assoc, run_sacctmgr_account_info(timeout_s, env)


def run_sacctmgr_events(cluster: str, start_s: int, timeout_s: float = 120,
                        env: dict[str, str] | None = None) -> str:
    """Cluster TRES and node down/drain events since start."""
    return _sacctmgr(["events", f"cluster={cluster}", f"start={sacct_time(start_s)}",
                      "end=now"], EVENT_FORMAT, "show events", timeout_s, env)


def run_sacctmgr_reservations(cluster: str, start_s: int, timeout_s: float = 120,
                              env: dict[str, str] | None = None) -> str:
    """Reservations (maintenance among them) since start."""
    return _sacctmgr(["reservation", f"cluster={cluster}", f"start={sacct_time(start_s)}",
                      "end=now"], RESERVATION_FORMAT, "show reservation", timeout_s, env)


def _unpadded(fields: tuple[str, ...]) -> str:
    # `Field:|` prints each field without padding, ended by "|" (checked on Slurm 22.05;
    # the other releases are issue 6).
    return ",".join(f"{f}:|" for f in fields)


def run_squeue(cluster: str | None = None, timeout_s: float = 30,
               env: dict[str, str] | None = None) -> str:
    """Jobs holding or waiting for resources now, array tasks one per line."""
    return _run(["squeue", "--noheader", "--all", "--array",
                 f"--states={','.join(SQUEUE_STATES)}", f"--Format={_unpadded(SQUEUE_FIELDS)}",
                 *([f"--clusters={cluster}"] if cluster else [])],
                "jobs now", timeout_s, env)


def run_sinfo(cluster: str | None = None, timeout_s: float = 30,
              env: dict[str, str] | None = None) -> str:
    """Every node with its state and GPUs."""
    return _run(["sinfo", "--noheader", "--Node", f"--Format={_unpadded(SINFO_FIELDS)}",
                 *([f"--clusters={cluster}"] if cluster else [])],
                "nodes now", timeout_s, env)


def run_sinfo_version(timeout_s: float = 30, env: dict[str, str] | None = None) -> str:
    """`sinfo --version` ("slurm 25.11.2"): the Slurm of this host, for pyslurm's check."""
    return _run(["sinfo", "--version"], "sinfo --version", timeout_s, env)


def run_sreport_accounts(start_s: int, end_s: int, cluster: str | None = None,
                         timeout_s: float = 300, env: dict[str, str] | None = None,
                         tres: str = "gres/gpu", unit: str = "minutes") -> str:
    """sreport's GPU-minutes (or, with tres "energy" and unit "seconds", joules) of
    every account (parents include their children) and user in [start, end): the
    independent figure the report is checked against."""
    # No "Proper Name" column: it is the user's GECOS name, which users may set (chfn).
    return _run(["sreport", "--noheader", "--parsable2", "-t", unit, "-T", tres,
                 "cluster", "AccountUtilizationByUser", f"start={sacct_time(start_s)}",
                 f"end={sacct_time(end_s)}", *([f"cluster={cluster}"] if cluster else []),
                 "format=Cluster,Account,Login,Used"],
                f"sreport {sacct_time(start_s)}..{sacct_time(end_s)}", timeout_s, env)


ENERGY_FIELDS = ("Account", "Start", "End", "ConsumedEnergyRaw", "AllocTRES")


def run_sacct_energy(start_s: int, end_s: int, cluster: str | None = None,
                     timeout_s: float = 600, env: dict[str, str] | None = None) -> str:
    """sacct's ConsumedEnergyRaw of every allocation in [start, end) with its account,
    start and end (no free text: no delimiter can be forged): `verify`'s energy oracle,
    a field the collector does not read."""
    return _run(["sacct", "--allusers", "--allocations", "--duplicates", "--parsable2",
                 "--noheader", f"--format={','.join(ENERGY_FIELDS)}",
                 f"--starttime={sacct_time(start_s)}", f"--endtime={sacct_time(end_s)}",
                 *([f"--clusters={cluster}"] if cluster else [])],
                f"energy {sacct_time(start_s)}..{sacct_time(end_s)}", timeout_s, env)
