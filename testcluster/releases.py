"""Slurm releases for the test cluster: 22.05 from this machine's Debian 12, 24.11
(Debian 13, trixie) and 26.05 (Debian unstable, sid) from a root that debootstrap
builds once and that is kept for later runs, and 25.11, which no Debian release
carries, compiled once from its verified source into a prefix on this host
(slurmbuild.py; its daemons and clients run from the prefix, no chroot).

A root's Slurm runs under `chroot`, with everything else from the host: munged and
MariaDB run on the host (the munge socket and the database port are shared), the
run directory is bind-mounted into the root at the same path (so every path in
slurm.conf means the same thing inside and out), and /proc, /sys and /dev are
bind-mounted for slurmd. Client commands (sacct, sbatch, sreport, ...) become
small wrappers in <run>/bin that enter the root; `Layout.env()` puts them first on
PATH, so the collector and the tests call `sacct` as on any cluster.

This module is the one place that knows how the releases differ in setup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from . import slurmbuild
from .processes import ClusterError, failed

HOST = "22.05"
SUITES = {"22.05": None, "24.11": "trixie", "25.11": None, "26.05": "sid"}
RELEASES = tuple(SUITES)
BUILT = frozenset(slurmbuild.SOURCES)   # compiled from source into a prefix
PACKAGES = ("slurmctld", "slurmd", "slurmdbd", "slurm-client", "slurmrestd",
            "slurm-wlm-jwt-plugin", "munge")
MIRROR = "http://deb.debian.org/debian"
CLIENTS = ("sacct", "sacctmgr", "sreport", "sinfo", "squeue", "sbatch", "scontrol", "scancel",
           "srun", "sshare")
DAEMONS = {"slurmdbd": "/usr/sbin/slurmdbd", "slurmctld": "/usr/sbin/slurmctld",
           "slurmd": "/usr/sbin/slurmd", "slurmrestd": "/usr/sbin/slurmrestd"}
BINDS = ("/proc", "/sys", "/dev")
# Releases whose `sacctmgr load` puts the test cluster's tree in with one call (about
# 1 s). 24.11 and 26.05 create the accounts of such a file without their
# associations, so there the tree is added entity by entity (about 4 s; 40 s on 22.05).
LOAD_FILE = frozenset({"22.05"})


def roots_dir() -> Path:
    """Where built roots are kept: $GPU_USAGE_SLURM_ROOTS, else /var/cache/gpu-usage/."""
    env = os.environ.get("GPU_USAGE_SLURM_ROOTS")
    return Path(env) if env else Path("/var/cache/gpu-usage/slurm-roots")


def check(release: str) -> str:
    if release not in SUITES:
        raise ClusterError(f"Slurm {release!r} is not one of {', '.join(RELEASES)}")
    return release


def root_of(release: str) -> Path | None:
    """The chroot of a release, None for the host's own Slurm."""
    suite = SUITES[check(release)]
    return None if suite is None else roots_dir() / suite


def prefix_of(release: str) -> Path | None:
    """The installed prefix of a release built from source (None: not built yet, or a
    packaged release)."""
    return slurmbuild.built_prefix(release) if check(release) in BUILT else None


def ensure_root(release: str, say: Callable[[str], None] = lambda _: None) -> Path | None:
    """Build the release's root with debootstrap unless it is there (about 40 s); for a
    release built from source, compile it unless it is cached (about 5 min)."""
    if check(release) in BUILT:
        slurmbuild.ensure_built(release, say)
        return None
    root = root_of(release)
    if root is None:
        return None
    if (root / "usr/sbin/slurmctld").exists():
        _complete(root, say)
        return root
    if shutil.which("debootstrap") is None:
        raise ClusterError("debootstrap is missing: apt-get install debootstrap "
                           "(or run scripts/setup-debian.sh testcluster)")
    tmp = root.with_name(root.name + ".tmp")
    _remove_tree(tmp)
    root.parent.mkdir(parents=True, exist_ok=True)
    say(f"building a Debian {SUITES[release]} root with Slurm {release} in {root} "
        "(debootstrap, once)")
    t0 = time.monotonic()
    proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                           SUITES[release], str(tmp), MIRROR],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).strip().splitlines()[-10:]
        _remove_tree(tmp)
        raise ClusterError(f"debootstrap {SUITES[release]} failed ({proc.returncode}):\n  "
                           + "\n  ".join(log))
    tmp.rename(root)
    say(f"  built in {time.monotonic() - t0:.0f} s")
    return root


def _complete(root: Path, say: Callable[[str], None]) -> None:
    """Install what a root built by an older version of this module lacks."""
    missing = [p for p in PACKAGES if subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True, check=False).stdout != "install ok installed"]
    if not missing:
        return
    say(f"installing {', '.join(missing)} into {root}")
    proc = subprocess.run(["chroot", str(root), "apt-get", "install", "-y", "-q", *missing],
                          capture_output=True, text=True, check=False,
                          env={"DEBIAN_FRONTEND": "noninteractive",
                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if proc.returncode != 0:
        raise failed(f"apt-get install {' '.join(missing)} in {root}", proc)


def _mounted() -> set[str]:
    return {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()}


def _remove_tree(path: Path) -> None:
    """Remove a root being built, never through a mount that is still in it."""
    if not path.exists():
        return
    inside = [m for m in _mounted() if m == str(path) or m.startswith(f"{path}/")]
    for mount in sorted(inside, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _bind(source: Path, target: Path) -> None:
    if str(target) in _mounted():
        return
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "--bind", str(source), str(target)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise failed(f"mount --bind {source} {target}", proc,
                     " (the test cluster's chroot needs root and bind mounts)")


def enter(root: Path, run_dir: Path, bin_dir: Path) -> None:
    """Make the root usable for this run directory: mounts, users, hosts, wrappers."""
    for path in BINDS:
        _bind(Path(path), root / path.lstrip("/"))
    _bind(run_dir, root / str(run_dir).lstrip("/"))
    sync_users(root)
    for name in ("hosts", "hostname", "resolv.conf"):
        src = Path("/etc") / name
        if src.exists():
            shutil.copyfile(src, root / "etc" / name)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for cmd in CLIENTS:
        wrapper = bin_dir / cmd
        wrapper.write_text(
            "#!/bin/sh\n# Written by `python -m testcluster up`: this command runs inside the "
            "Slurm "
            f"root {root}.\nexec chroot {root} /bin/sh -c 'cd \"$0\" 2>/dev/null || cd /; "
            f"exec \"$@\"' \"$PWD\" /usr/bin/{cmd} \"$@\"\n")
        wrapper.chmod(0o755)


def sync_users(root: Path) -> None:
    """The root sees the host's users and groups (job owners, slurmrestd's user)."""
    for name in ("passwd", "group"):
        shutil.copyfile(Path("/etc") / name, root / "etc" / name)


def leave(root: Path, run_dir: Path) -> None:
    """Undo `enter`'s mounts of this run directory (the root stays for the next run)."""
    target = root / str(run_dir).lstrip("/")
    if str(target) in _mounted():
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
    others = [m for m in _mounted() if m.startswith(f"{root}/") and
              not any(m == str(root / b.lstrip("/")) for b in BINDS)]
    if not others:  # no other run directory uses the root: release /proc, /sys, /dev too
        for path in BINDS:
            mount = root / path.lstrip("/")
            if str(mount) in _mounted():
                subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def daemon_argv(root: Path | None, daemon: str, args: list[str],
                user: str | None = None, prefix: Path | None = None) -> list[str]:
    """The command line that starts a Slurm daemon of this release (as `user`)."""
    if root is None:
        program = str(prefix / "sbin" / daemon) if prefix else DAEMONS[daemon]
        argv = [program, *args]
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv] \
            if user else argv
    spec = [f"--userspec={user}:{user}"] if user else []
    return ["chroot", *spec, str(root), DAEMONS[daemon], *args]


def as_user(root: Path | None, user: str, argv: list[str],
            prefix: Path | None = None) -> list[str]:
    """A Slurm client command run as `user` (job submission): runuser on the host;
    inside a root, chroot switches the user itself (a user may not chroot)."""
    if root is None:
        program = str(prefix / "bin" / argv[0]) if prefix else argv[0]
        return ["runuser", "-u", user, "--", program, *argv[1:]]
    return ["chroot", f"--userspec={user}:{user}", str(root), f"/usr/bin/{argv[0]}", *argv[1:]]


def has_program(root: Path | None, program: str, prefix: Path | None = None) -> bool:
    if prefix is not None:
        return any((prefix / d / program).exists() for d in ("bin", "sbin"))
    if root is None:
        return shutil.which(program) is not None
    return any((root / d / program).exists() for d in ("usr/bin", "usr/sbin"))
