"""Bringing a test cluster up and down: munge, MariaDB, slurmdbd, slurmctld, 4 x slurmd.

`up` is idempotent: a daemon that already runs is left alone, and configuration is
rewritten with the same content. `down` stops every process the cluster started and
checks that none is left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import database, ports, processes, releases
from .layout import REST_USER, Layout, SecondLayout
from .processes import ClusterError, Daemon, run_slurm
from .slurmconf import render_gres_conf, render_slurm_conf, render_slurmdbd_conf

HOST_PROGRAMS = ("munged", "mungekey", "mariadbd", "mariadb-install-db", "setpriv")
SLURM_PROGRAMS = ("slurmdbd", "slurmctld", "slurmd", "slurmrestd", "sacctmgr", "sbatch",
                  "sacct", "sreport", "sinfo", "scontrol")
REQUIRED_PROGRAMS = HOST_PROGRAMS + SLURM_PROGRAMS


@dataclass(frozen=True)
class DaemonStatus:
    name: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None


def check_programs(lay: Layout | None = None) -> None:
    """Fail early, naming the Debian packages, when a Slurm or MariaDB program is missing."""
    root = lay.root if lay is not None else None
    prefix = lay.prefix if lay is not None else None
    missing = [p for p in HOST_PROGRAMS if shutil.which(p) is None]
    missing += [p for p in SLURM_PROGRAMS if not releases.has_program(root, p, prefix)]
    if missing:
        where = f" (in the Slurm root {root})" if root is not None else ""
        raise ClusterError(
            "missing programs" + where + ": " + ", ".join(missing) + ". Install them with: "
            "apt-get install slurmctld slurmd slurmdbd slurm-client slurmrestd munge "
            "mariadb-server (or run scripts/setup-debian.sh testcluster)"
        )


def _prepare_dirs(lay: Layout) -> None:
    for d in (lay.etc_dir, lay.log_dir, lay.pid_dir, lay.state_dir, lay.spool_dir,
              lay.dev_dir, lay.munge_dir, lay.run_dir / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    # Job users read slurm.conf, reach the munge socket and write job output here.
    for d in (lay.run_dir, lay.etc_dir, lay.munge_dir):
        d.chmod(0o755)
    lay.jobs_dir.mkdir(exist_ok=True)
    lay.jobs_dir.chmod(0o1777)
    (lay.run_dir / "tmp").chmod(0o1777)


def _make_gpu_devices(lay: Layout) -> None:
    """Four character devices per node (like /dev/null: major 1, minor 3) stand in for GPUs."""
    for node in lay.nodes:
        node_dir = lay.dev_dir / node
        node_dir.mkdir(exist_ok=True)
        for i in range(lay.gpus_of(node)):
            dev = node_dir / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def write_config(lay: Layout) -> None:
    """Write slurm.conf, gres.conf and slurmdbd.conf (and the DB password, once)."""
    _prepare_dirs(lay)
    pw_file = lay.etc_dir / "db.password"
    if not pw_file.exists():
        _write(pw_file, secrets.token_hex(16) + "\n", 0o600)
    _write(lay.slurm_conf, render_slurm_conf(lay), 0o644)
    _write(lay.etc_dir / "gres.conf", render_gres_conf(lay), 0o644)
    _write(lay.etc_dir / "slurmdbd.conf", render_slurmdbd_conf(lay), 0o600)
    if lay.slurm != releases.HOST:
        # From 24.05 on slurmd loads a cgroup plugin even with proctrack/linuxproc and
        # task/none; this machine mounts no cgroup file system ("disabled" is 24.05+).
        _write(lay.etc_dir / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    if not lay.jwt_key.exists():
        _write(lay.jwt_key, secrets.token_hex(32), 0o600)
    _make_gpu_devices(lay)


def _daemon_env(lay: Layout) -> dict[str, str]:
    env = lay.env()
    env["TZ"] = "UTC"
    return env


def _start(lay: Layout, daemon: Daemon) -> int:
    return processes.start(daemon, lay.run_dir, lay.pid_dir, lay.log_dir)


def _output(lay: Layout, name: str) -> Path:
    """The daemon's own stdout and stderr (processes.start sends both there)."""
    return lay.log_dir / f"{name}.out"


def _alive_check(lay: Layout, name: str):
    def alive() -> bool:
        try:
            pid = int((lay.pid_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        mine = processes.started_alive(pid)
        return mine if mine is not None else processes.pid_of(lay.pid_dir, name,
                                                              lay.run_dir) is not None
    return alive


def _start_munge(lay: Layout) -> None:
    key = lay.munge_dir / "munge.key"
    if not key.exists():
        proc = subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=False,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise processes.failed("mungekey --create", proc)
        key.chmod(0o600)
    _start(lay, Daemon("munged", [
        "munged", "--foreground", "--force",
        f"--socket={lay.munge_socket}", f"--key-file={key}",
        f"--pid-file={lay.pid_dir}/munged.munge.pid",
        f"--log-file={lay.log_dir}/munged.log",
        f"--seed-file={lay.munge_dir}/munged.seed",
    ], _daemon_env(lay)))

    def ready() -> bool:
        enc = subprocess.run(["munge", "-n", f"--socket={lay.munge_socket}"],
                             capture_output=True, check=False)
        return enc.returncode == 0
    processes.wait_until("munged", ready, 20, _alive_check(lay, "munged"),
                         lay.log_dir / "munged.log", _output(lay, "munged"))
    lay.munge_socket.chmod(0o777)


BUFFER_ENV = "GPU_USAGE_CLUSTER_INNODB_BUFFER"


def _innodb_buffer() -> str:
    """MariaDB's buffer pool: 512M, or $GPU_USAGE_CLUSTER_INNODB_BUFFER (e.g. 4G for a
    benchmark year of 10 million jobs, as a large site would give its slurmdbd)."""
    import re
    value = os.environ.get(BUFFER_ENV, "512M")
    if not re.fullmatch(r"[1-9][0-9]{0,5}[MG]", value):
        raise ClusterError(f"{BUFFER_ENV}={value!r}: give a size like 512M or 4G")
    return value


def _start_mariadb(lay: Layout) -> None:
    if not (lay.mariadb_dir / "mysql").exists():
        proc = subprocess.run([
            "mariadb-install-db", "--no-defaults", f"--datadir={lay.mariadb_dir}",
            "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
        ], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise processes.failed("mariadb-install-db", proc)
    log = lay.log_dir / "mariadb.log"
    argv = [
        "mariadbd", "--no-defaults", f"--datadir={lay.mariadb_dir}",
        f"--socket={lay.mariadb_socket}", f"--port={lay.mariadb_port}",
        "--bind-address=127.0.0.1", "--user=root", f"--log-error={log}",
        f"--pid-file={lay.pid_dir}/mariadb.mariadb.pid",
        # slurmdbd's recommended settings; a large log file speeds up big backfills.
        f"--innodb-buffer-pool-size={_innodb_buffer()}", "--innodb-log-file-size=256M",
        "--innodb-lock-wait-timeout=900", "--max-allowed-packet=64M",
    ]
    pid = _start(lay, Daemon("mariadb", argv, _daemon_env(lay), (lay.mariadb_port,)))
    try:
        processes.wait_until("MariaDB", lambda: database.can_connect(lay), 60,
                             _alive_check(lay, "mariadb"), log, _output(lay, "mariadb"))
    except ClusterError as exc:
        # Seen twice under load: mariadbd gone at start, no word in its log. Once more,
        # saying how the first one ended.
        how = processes.exit_status(pid) or "no exit status"
        if processes.started_alive(pid):
            raise
        with open(_output(lay, "mariadb"), "a") as out:
            out.write(f"gpu-usage: mariadbd ended at start ({how}); starting it once more\n")
        time.sleep(1)
        _start(lay, Daemon("mariadb", argv, _daemon_env(lay), (lay.mariadb_port,)))
        try:
            processes.wait_until("MariaDB (started twice)", lambda: database.can_connect(lay),
                                 60, _alive_check(lay, "mariadb"), log,
                                 _output(lay, "mariadb"))
        except ClusterError as again:
            raise ClusterError(f"{again}\n(the first start: {exc}; {how})") from exc
    database.ensure_slurm_user(lay)


def _slurmdbd_ready(lay: Layout) -> bool:
    return run_slurm(lay, ["sacctmgr", "-n", "-P", "show", "cluster"], check=False,
                     timeout_s=10).returncode == 0


def _argv(lay: Layout, daemon: str, args: list[str], user: str | None = None) -> list[str]:
    return releases.daemon_argv(lay.root, daemon, args, user, lay.prefix)


def _start_slurmdbd(lay: Layout) -> None:
    _start(lay, Daemon("slurmdbd", _argv(lay, "slurmdbd", ["-D"]), _daemon_env(lay),
                       (lay.slurmdbd_port,)))
    processes.wait_until("slurmdbd", lambda: _slurmdbd_ready(lay), 60,
                         _alive_check(lay, "slurmdbd"), lay.log_dir / "slurmdbd.log",
                         _output(lay, "slurmdbd"))
    out = run_slurm(lay, ["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]).stdout
    if lay.cluster not in out.split():
        run_slurm(lay, ["sacctmgr", "-i", "add", "cluster", lay.cluster])


def stop_daemon(lay: Layout, name: str) -> None:
    """Stop one daemon (a fault for the tests: slurmdbd or MariaDB gone)."""
    pid = processes.pid_of(lay.pid_dir, name, lay.run_dir)
    if pid is not None and processes.terminate([pid]):
        raise ClusterError(f"{name} (pid {pid}) did not stop")
    (lay.pid_dir / f"{name}.pid").unlink(missing_ok=True)


def start_daemon(lay: Layout, name: str) -> None:
    """Start a daemon stopped by stop_daemon, and wait until it answers."""
    starters = {"slurmdbd": _start_slurmdbd, "mariadb": _start_mariadb}
    if name not in starters:
        raise ClusterError(f"cannot start {name} alone; known: {', '.join(starters)}")
    starters[name](lay)


def signal_daemon(lay: Layout, name: str, sig: int) -> None:
    """Send a signal to one daemon (SIGSTOP/SIGCONT: a daemon that stops answering)."""
    import os
    pid = processes.pid_of(lay.pid_dir, name, lay.run_dir)
    if pid is None:
        raise ClusterError(f"{name} is not running")
    os.kill(pid, sig)


def restart_slurmdbd(lay: Layout) -> None:
    """Stop and start slurmdbd (it rolls up usage when it starts): the first cluster's,
    which accounts for the second too."""
    lay = lay.first
    pid = processes.pid_of(lay.pid_dir, "slurmdbd", lay.run_dir)
    if pid is not None:
        survivors = processes.terminate([pid])
        if survivors:
            raise ClusterError(f"slurmdbd (pid {pid}) did not stop")
    _start_slurmdbd(lay)


def _start_slurmctld(lay: Layout) -> None:
    _start(lay, Daemon("slurmctld", _argv(lay, "slurmctld", ["-D"]), _daemon_env(lay),
                       (lay.slurmctld_port,)))

    def ready() -> bool:
        out = run_slurm(lay, ["scontrol", "ping"], check=False, timeout_s=10).stdout
        return "UP" in out
    processes.wait_until("slurmctld", ready, 60, _alive_check(lay, "slurmctld"),
                         lay.log_dir / "slurmctld.log", _output(lay, "slurmctld"))


def _nodes_ready(lay: Layout) -> bool:
    out = run_slurm(lay, ["sinfo", "-h", "-N", "-o", "%N %t"], check=False,
                    timeout_s=10).stdout
    states = dict(line.split() for line in out.splitlines() if line.strip())
    return all(states.get(n, "").rstrip("*") in {"idle", "mix", "alloc"} for n in lay.nodes)


def _start_slurmds(lay: Layout) -> None:
    def start(nodes: list[str]) -> None:
        for node in nodes:
            _start(lay, Daemon(f"slurmd-{node}", _argv(lay, "slurmd", ["-D", "-N", node]),
                               _daemon_env(lay), (lay.slurmd_port(lay.nodes.index(node)),)))

    def dead() -> list[str]:
        return [n for n in lay.nodes if not _alive_check(lay, f"slurmd-{n}")()]

    start(list(lay.nodes))
    try:
        processes.wait_until("slurmd nodes", lambda: _nodes_ready(lay), 60,
                             lambda: not dead(), lay.log_dir / "slurmctld.log",
                             _output(lay, f"slurmd-{(dead() or lay.nodes)[0]}"))
    except ClusterError:
        # Seen on a loaded machine: a slurmd exits at start. Once more, naming them.
        again = dead()
        if not again:
            raise
        start(again)
        processes.wait_until(f"slurmd {', '.join(again)} (started twice)",
                             lambda: _nodes_ready(lay), 60, lambda: not dead(),
                             lay.log_dir / f"slurmd-{again[0]}.log",
                             _output(lay, f"slurmd-{again[0]}"))


def _ensure_user(name: str) -> None:
    if subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode == 0:
        return
    proc = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                           "/usr/sbin/nologin", "--user-group", name],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise processes.failed(f"useradd {name}", proc)


def _rest_ready(lay: Layout) -> bool:
    return lay.rest_socket.exists()


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _start_slurmrestd(lay: Layout) -> None:
    """slurmrestd twice: on a UNIX socket with local auth, and on 127.0.0.1 with JWTs."""
    rest_dir = lay.rest_socket.parent
    rest_dir.mkdir(exist_ok=True)
    shutil.chown(rest_dir, REST_USER, REST_USER)
    rest_dir.chmod(0o755)
    def start_local() -> None:
        _start(lay, Daemon("slurmrestd", _argv(
            lay, "slurmrestd", ["-a", "rest_auth/local", f"unix:{lay.rest_socket}"],
            user=REST_USER), _daemon_env(lay)))

    def wait_local() -> None:
        processes.wait_until("slurmrestd", lambda: _rest_ready(lay), 30,
                             _alive_check(lay, "slurmrestd"), None, _output(lay, "slurmrestd"))

    def start_jwt(*verbose: str) -> None:
        _start(lay, Daemon("slurmrestd-jwt", _argv(
            lay, "slurmrestd", [*verbose, "-a", "rest_auth/jwt", f"127.0.0.1:{lay.rest_port}"],
            user=REST_USER), dict(_daemon_env(lay), SLURM_JWT="daemon"), (lay.rest_port,)))

    def wait_jwt() -> None:
        processes.wait_until("slurmrestd-jwt", lambda: _listens(lay.rest_port), 30,
                             _alive_check(lay, "slurmrestd-jwt"), None,
                             _output(lay, "slurmrestd-jwt"))

    start_local()
    start_jwt()
    # Seen on a loaded machine: either one exits at start without a word. Once more,
    # the JWT one verbose so that a second failure explains itself.
    try:
        wait_local()
    except ClusterError:
        time.sleep(1)
        start_local()
        wait_local()
    try:
        wait_jwt()
    except ClusterError:
        time.sleep(1)
        start_jwt("-vv")
        wait_jwt()
    out = run_slurm(lay, ["scontrol", "token", f"username={REST_USER}",
                          f"lifespan={366 * 86400}"]).stdout.strip()
    _write(lay.rest_token_file, out.partition("=")[2] + "\n", 0o600)


def _record_release(lay: Layout) -> None:
    recorded = lay.release_file.read_text().strip() if lay.release_file.exists() else None
    if recorded and recorded != lay.slurm:
        raise ClusterError(f"{lay.run_dir} holds a Slurm {recorded} cluster; use another "
                           f"--run-dir for Slurm {lay.slurm}")
    lay.run_dir.mkdir(parents=True, exist_ok=True)
    lay.release_file.write_text(lay.slurm + "\n")
    if lay.node_gpus:
        lay.node_gpus_file.write_text(",".join(map(str, lay.node_gpus)) + "\n")


def up(lay: Layout, say: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    """Start every daemon of the cluster that does not run yet, in dependency order.

    Returns the seconds each step took.
    """
    from .accounts import ensure_unix_users

    ports.check_outside_ephemeral(lay.ports, f"the test cluster (base port {lay.base_port})")
    timings = {}
    t0 = time.monotonic()
    root = releases.ensure_root(lay.slurm, say)
    timings["root"] = time.monotonic() - t0
    _record_release(lay)
    check_programs(lay)
    write_config(lay)
    _ensure_user(REST_USER)
    ensure_unix_users()
    running_before = {d.name for d in status(lay) if d.running}
    if root is not None:
        releases.enter(root, lay.run_dir, lay.bin_dir)
    try:
        for name, step in (("munge", _start_munge), ("mariadb", _start_mariadb),
                           ("slurmdbd", _start_slurmdbd), ("slurmctld", _start_slurmctld),
                           ("slurmd", _start_slurmds), ("slurmrestd", _start_slurmrestd)):
            t0 = time.monotonic()
            step(lay)
            timings[name] = time.monotonic() - t0
    except BaseException:
        # A failed start stops what it started (and keeps what ran before it), so the
        # next `up` does not meet its own leftovers on a taken port.
        _stop_started_since(lay, running_before)
        raise
    return timings


def write_second_config(second: SecondLayout) -> None:
    """The second cluster's slurm.conf and gres.conf (its slurmdbd.conf and database
    password are the first cluster's) and its GPU device files."""
    _prepare_dirs(second)
    _write(second.slurm_conf, render_slurm_conf(second), 0o644)
    _write(second.etc_dir / "gres.conf", render_gres_conf(second), 0o644)
    if second.slurm != releases.HOST:
        _write(second.etc_dir / "cgroup.conf", "CgroupPlugin=disabled\n", 0o644)
    _make_gpu_devices(second)


def up_second(lay: Layout, say: Callable[[str], None] = lambda _: None) -> dict[str, float]:
    """Start the second cluster of `lay`'s run directory beside the (running) first
    one: registered with its slurmdbd, then its slurmctld and four slurmd nodes. A
    facility of two clusters on one slurmdbd. Returns the seconds each step took."""
    second = lay.second
    ports.check_outside_ephemeral(second.ports, f"the second test cluster (base port "
                                  f"{lay.base_port})")
    if not _slurmdbd_ready(lay):
        raise ClusterError(f"the first cluster's slurmdbd does not answer: start it first "
                           f"(python -m testcluster up --run-dir {lay.run_dir})")
    write_second_config(second)
    timings = {}
    running_before = {d.name for d in status_second(lay) if d.running}
    try:
        t0 = time.monotonic()
        out = run_slurm(lay, ["sacctmgr", "-n", "-P", "show", "cluster",
                              "format=cluster"]).stdout
        if second.cluster not in out.split():
            run_slurm(lay, ["sacctmgr", "-i", "add", "cluster", second.cluster])
        timings["register"] = time.monotonic() - t0
        for name, step in (("slurmctld", _start_slurmctld), ("slurmd", _start_slurmds)):
            t0 = time.monotonic()
            step(second)
            timings[name] = time.monotonic() - t0
    except BaseException:
        started = [d for d in status_second(lay) if d.running and d.name not in running_before]
        processes.terminate({d.pid for d in started if d.pid is not None}, timeout_s=10)
        for d in started:
            (second.pid_dir / f"{d.name}.pid").unlink(missing_ok=True)
        raise
    say(f"second cluster {second.cluster} is up beside {lay.cluster}")
    return timings


def status_second(lay: Layout) -> list[DaemonStatus]:
    second = lay.second
    if not second.home.exists():
        return []
    return [DaemonStatus(n, processes.pid_of(second.pid_dir, n, lay.run_dir))
            for n in ("slurmctld", *(f"slurmd-{n}" for n in second.nodes))]


def _stop_started_since(lay: Layout, running_before: set[str]) -> None:
    started = [d for d in status(lay) if d.running and d.name not in running_before]
    pids = {d.pid for d in started if d.pid is not None}
    if not running_before:  # nothing of ours ran before: take every marked process too
        pids |= processes.marked_processes(lay.run_dir)
    processes.terminate(pids, timeout_s=10)
    for d in started:
        (lay.pid_dir / f"{d.name}.pid").unlink(missing_ok=True)
    if not running_before and lay.root is not None:
        releases.leave(lay.root, lay.run_dir)


DAEMON_ORDER = ("munged", "mariadb", "slurmdbd", "slurmctld")


def daemon_names(lay: Layout) -> list[str]:
    return [*DAEMON_ORDER, *(f"slurmd-{n}" for n in lay.nodes), "slurmrestd",
            "slurmrestd-jwt"]


def status(lay: Layout) -> list[DaemonStatus]:
    return [DaemonStatus(n, processes.pid_of(lay.pid_dir, n, lay.run_dir))
            for n in daemon_names(lay)]


def down(lay: Layout) -> int:
    """Stop everything the cluster started: jobs and slurmd first, MariaDB and munge last.

    Returns the number of processes stopped; raises if any survive.
    """
    stopped = 0
    # The second cluster's daemons (if it runs) first; they are marked as ours too.
    for d in reversed(status_second(lay)):
        if d.pid is not None:
            if processes.terminate([d.pid]):
                raise ClusterError(f"{lay.second.cluster}'s {d.name} (pid {d.pid}) did not "
                                   "stop")
            stopped += 1
        (lay.second.pid_dir / f"{d.name}.pid").unlink(missing_ok=True)
    # Job steps and their tasks first, then the daemons in reverse start order.
    order = list(reversed(daemon_names(lay)))
    pids = {n: processes.pid_of(lay.pid_dir, n, lay.run_dir) for n in order}
    daemon_pids = {p for p in pids.values() if p is not None}
    strays = processes.marked_processes(lay.run_dir) - daemon_pids
    stopped += len(strays)
    survivors = processes.terminate(strays, timeout_s=5)
    for name in order:
        pid = pids[name]
        if pid is not None:
            survivors |= processes.terminate([pid])
            stopped += 1
        (lay.pid_dir / f"{name}.pid").unlink(missing_ok=True)
    # Anything that appeared meanwhile (a slurmstepd forked during shutdown).
    late = processes.marked_processes(lay.run_dir)
    stopped += len(late)
    survivors |= processes.terminate(late, timeout_s=5)
    if survivors:
        raise ClusterError(f"processes still running after down: {sorted(survivors)}")
    if lay.root is not None:
        releases.leave(lay.root, lay.run_dir)
    return stopped
