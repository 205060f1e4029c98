"""Starting, finding and stopping the processes of one test cluster.

Every daemon is started in the foreground in its own session with the marker
variable GPU_USAGE_TESTCLUSTER=<run dir> in its environment; its pid goes to
<run>/pid/<name>.pid. Processes inherit the marker (slurmd passes it to every
slurmstepd), so `down` finds everything the cluster started, even processes whose
pid files it never wrote, and kills them with their descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterError
from .ports import ensure_free

MARKER = "GPU_USAGE_TESTCLUSTER"


def failed(what: str, proc: subprocess.CompletedProcess, hint: str = "") -> ClusterError:
    """The error for a command that failed: its exit code, and the tail of both its
    stdout and its stderr (installers such as mariadb-install-db explain on stdout)."""
    said = []
    for name in ("stdout", "stderr"):
        text = getattr(proc, name) or ""
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        lines = text.strip().splitlines()[-12:]
        if lines:
            said.append(f"{name}:\n  " + "\n  ".join(lines))
    body = "\n".join(said) or "no output"
    return ClusterError(f"{what} failed (exit {proc.returncode}){hint}\n{body}")


@dataclass(frozen=True)
class Daemon:
    """One daemon: its name (pid file, log), command line and environment."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: tuple[int, ...] = ()   # where it listens: checked free before it starts


def _read_environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _is_ours(pid: int, run_dir: Path) -> bool:
    tag = f"{MARKER}={run_dir}".encode()
    return tag in _read_environ(pid).split(b"\0")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def marked_processes(run_dir: Path) -> set[int]:
    """Pids of every process started by this cluster, and their descendants."""
    pids = _all_pids()
    ours = {p for p in pids if _is_ours(p, run_dir)}
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    stack = list(ours)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in ours:
                ours.add(child)
                stack.append(child)
    ours.discard(os.getpid())
    return ours


def pid_of(pid_dir: Path, name: str, run_dir: Path) -> int | None:
    """The live pid of daemon `name`, or None (a stale pid file counts as not running)."""
    path = pid_dir / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid, run_dir) else None


def start(daemon: Daemon, run_dir: Path, pid_dir: Path, log_dir: Path) -> int:
    """Start `daemon` unless it already runs; return its pid."""
    running = pid_of(pid_dir, daemon.name, run_dir)
    if running is not None:
        return running
    ensure_free(daemon.ports, daemon.name)
    env = dict(daemon.env)
    env[MARKER] = str(run_dir)
    out = open(log_dir / f"{daemon.name}.out", "ab")  # noqa: SIM115 - owned by the child
    try:
        proc = subprocess.Popen(
            daemon.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ClusterError(f"cannot start {daemon.name} ({daemon.argv[0]}): {exc}") from exc
    finally:
        out.close()
    (pid_dir / f"{daemon.name}.pid").write_text(f"{proc.pid}\n")
    _children[proc.pid] = proc
    return proc.pid


# The daemons this process started, so that one that dies at start can say how.
_children: dict[int, subprocess.Popen] = {}


def started_alive(pid: int | None) -> bool | None:
    """Whether a daemon this process started still runs (from its Popen object, not
    from /proc/PID/environ, which a daemon that changes its credentials at start may
    briefly refuse to show); None for a pid this process did not start."""
    proc = _children.get(pid) if pid is not None else None
    return None if proc is None else proc.poll() is None


def exit_status(pid: int | None) -> str:
    """How a daemon this process started ended ('exit 1', 'killed by SIGKILL'), or ''."""
    proc = _children.get(pid) if pid is not None else None
    if proc is None or proc.poll() is None:
        return ""
    code = proc.returncode
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def wait_until(
    what: str,
    ready: Callable[[], bool],
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
    output: Path | None = None,
) -> None:
    """Poll `ready` until it is true; fail with the tails of the daemon's log and of
    its own stdout/stderr (`output`) when time runs out or it exits."""
    deadline = time.monotonic() + timeout_s
    outcome = f"did not become ready within {timeout_s:.0f} s"
    while time.monotonic() < deadline:
        if ready():
            return
        if alive is not None and not alive():
            outcome = "exited before it was ready"
            break
        time.sleep(0.2)
    tails = []
    for label, path in (("log", log), ("stdout and stderr", output)):
        if path is not None and path.exists():
            lines = path.read_text(errors="replace").splitlines()[-15:]
            if lines:
                tails.append(f"\n{label} ({path}):\n  " + "\n  ".join(lines))
    raise ClusterError(f"{what} {outcome}" + ("".join(tails) or
                                              f" (no output; log: {log}, {output})"))


def _alive(pids: Iterable[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        # A zombie has exited; it only waits for its parent to reap it.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def terminate(pids: Iterable[int], timeout_s: float = 15.0) -> set[int]:
    """SIGTERM the pids, SIGKILL what is left after `timeout_s`; return survivors."""
    pids = set(pids)
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        for pid in _alive(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pids):
            return set()
    return _alive(pids)


def run_slurm(lay, argv: list[str], check: bool = True,
              timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a Slurm client command against this cluster (argument list, no shell, UTC);
    `lay` is the cluster's Layout."""
    env = dict(lay.env(), TZ="UTC")
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{' '.join(argv)} timed out after {timeout_s:.0f} s") from exc
    if check and proc.returncode != 0:
        raise failed(" ".join(argv), proc)
    return proc
