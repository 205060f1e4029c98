"""Ports a test cluster can keep: outside the ephemeral range, and free when taken.

Linux gives every outgoing connection a local port from the ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default). A daemon that
listens on a port in that range can find it held for a moment by any client
connection on the machine ("Address already in use"), so test and demo clusters,
and the tests' own servers, listen below it. Before a daemon starts, its ports are
checked; a taken port is an error that names the process holding it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from .errors import ClusterError

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL = (32768, 60999)
# free_port() looks here: below the default ephemeral range, above the demo cluster
# (16800-16904) and the integration tests' clusters (26800-27904).
POOL = (28500, 32500)
_taken: set[int] = set()   # handed out by this process: two calls never get one port


def ephemeral_range(path: Path = RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (first, last), or Linux's default."""
    try:
        first, last = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return first, last


def check_outside_ephemeral(ports: Iterable[int], what: str,
                            path: Path = RANGE_FILE) -> None:
    """Refuse ports inside the ephemeral range, naming the range and the fix."""
    first, last = ephemeral_range(path)
    inside = sorted(p for p in ports if first <= p <= last)
    if inside:
        raise ClusterError(
            f"{what} would listen on port(s) {', '.join(map(str, inside[:5]))} inside the "
            f"ephemeral port range {first}-{last} ({path}), where any outgoing connection may "
            f"hold them; choose a base port below {first - 200} (--base-port)")


def holder(port: int) -> str | None:
    """'pid N (name)' of a process with a TCP socket on `port`, or None if none is seen."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    inodes.discard("socket:[0]")  # TIME_WAIT: no process owns it
    if not inodes:
        return None
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                return f"pid {pid} ({name})"
        except OSError:
            continue
    return "a socket of no visible process (TIME_WAIT or another namespace)"


def is_free(port: int, address: str = "") -> bool:
    """Whether a listener could bind `port` on every address now (SO_REUSEADDR, as
    daemons set it: a closed connection's TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def ensure_free(ports: Iterable[int], what: str) -> None:
    """Fail before starting `what` if one of its ports is taken, naming who holds it."""
    for port in ports:
        if not is_free(port):
            who = holder(port) or "another process"
            raise ClusterError(f"port {port} for {what} is taken by {who}; stop it or choose "
                               "another --base-port")


def free_port(pool: tuple[int, int] = POOL) -> int:
    """A port free now, below the ephemeral range (for a test's own server).

    The search starts at a place drawn from the pid, so parallel runs rarely meet."""
    first, last = pool
    low = ephemeral_range()[0]
    last = min(last, low - 1)
    span = last - first + 1
    if span <= 0:
        raise ClusterError(f"no ports below the ephemeral range (starts at {low})")
    offset = (os.getpid() * 7919) % span
    for i in range(span):
        port = first + (offset + i) % span
        if port not in _taken and is_free(port):
            _taken.add(port)
            return port
    raise ClusterError(f"no free port in {first}-{last}")
