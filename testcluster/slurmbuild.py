"""Slurm releases that no package registry here carries, built from their source.

Slurm 25.11 (for pyslurm, which builds only against the Slurm of its own major
release) comes as the unchanged source tarball in the third-party folder beside the
repository (`../shared/third_party`, or `$GPU_USAGE_THIRD_PARTY`), with its SHA-256
in `SHA256SUMS`. It is verified against that checksum, then configured, compiled and
installed once into a prefix under `$GPU_USAGE_SLURM_BUILDS` (default
`/var/cache/gpu-usage/slurm-builds`), named by the release, the first 16 hex
digits of the checksum and a hash of the configure options: a second run finds it
and skips the build; a changed tarball or option gets a new prefix. The prefix is
complete when its `.complete` marker is there; a build that fails or is stopped leaves
no marker and is started over. pyslurm is built against it once and kept as a wheel
(`wheels/pyslurm-<version>-<prefix name>/`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ClusterError

# release -> the source tarball's name in the third-party folder
SOURCES = {"25.11": "slurm-25.11.7.tar.xz"}
# --enable-multiple-slurmd: the test cluster runs four slurmd on one host (Debian's
# packages are built with it; without it slurmctld finds no address for the 2nd node on).
CONFIGURE = ("--disable-debug", "--without-hwloc", "--without-pmix", "--without-ucx",
             "--enable-multiple-slurmd")
# Debian 12 packages whose headers the build needs (munge, MariaDB client, JSON, HTTP
# parsing, JWT, YAML, D-Bus), besides build-essential and pkg-config.
BUILD_PACKAGES = ("build-essential", "pkg-config", "libmunge-dev", "libmariadb-dev",
                  "libjson-c-dev", "libhttp-parser-dev", "libjwt-dev", "libyaml-dev",
                  "libdbus-1-dev")
MARKER = ".complete"


def third_party_dir() -> Path:
    """$GPU_USAGE_THIRD_PARTY, else the shared folder beside the repository."""
    env = os.environ.get("GPU_USAGE_THIRD_PARTY")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]
    for candidate in (here.parent / "shared" / "third_party", Path("/work/shared/third_party")):
        if candidate.is_dir():
            return candidate
    return here.parent / "shared" / "third_party"


def builds_dir() -> Path:
    env = os.environ.get("GPU_USAGE_SLURM_BUILDS")
    return Path(env) if env else Path("/var/cache/gpu-usage/slurm-builds")


def expected_sha256(folder: Path, name: str) -> str:
    """The checksum `SHA256SUMS` in `folder` gives for `name`."""
    sums = folder / "SHA256SUMS"
    try:
        for line in sums.read_text().splitlines():
            digest, _, file = line.strip().partition("  ")
            if file.lstrip("*") == name and len(digest) == 64:
                return digest.lower()
    except OSError as exc:
        raise ClusterError(f"cannot read {sums}: {exc.strerror}") from exc
    raise ClusterError(f"{sums} has no checksum for {name}")


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (remembered per path, size and mtime: a layout asks often)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def source(release: str) -> tuple[Path, str]:
    """The release's tarball and its checksum, verified; ClusterError when missing or
    different from `SHA256SUMS`."""
    if release not in SOURCES:
        raise ClusterError(f"no source build for Slurm {release}; one of {', '.join(SOURCES)}")
    folder = third_party_dir()
    tarball = folder / SOURCES[release]
    if not tarball.is_file():
        raise ClusterError(f"the Slurm {release} source is missing: {tarball} (set "
                           "GPU_USAGE_THIRD_PARTY to the folder holding it and SHA256SUMS)")
    want = expected_sha256(folder, tarball.name)
    got = sha256_of(tarball)
    if got != want:
        raise ClusterError(f"{tarball}: SHA-256 {got}, but SHA256SUMS says {want}: refusing "
                           "to build it")
    return tarball, want


def prefix_of(release: str, sha256: str) -> Path:
    """Keyed by the source's checksum and the configure options."""
    options = hashlib.sha256(" ".join(CONFIGURE).encode()).hexdigest()[:8]
    return builds_dir() / f"slurm-{release}-{sha256[:16]}-{options}"


def built_prefix(release: str) -> Path | None:
    """The installed prefix of `release` if a complete build is cached, else None."""
    if release not in SOURCES:
        return None
    try:
        _, digest = source(release)
    except ClusterError:
        return None
    prefix = prefix_of(release, digest)
    return prefix if (prefix / MARKER).is_file() else None


def _run(argv: list[str], cwd: Path, log: Path, what: str, say: Callable[[str], None],
         t0: float) -> None:
    """Run one build step, its output into `log`; say how far it is every 30 s."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        next_say = time.monotonic() + 30
        while proc.poll() is None:
            time.sleep(1)
            if time.monotonic() >= next_say:
                objects = sum(1 for _ in cwd.rglob("*.o")) if what == "make" else 0
                extra = f", {objects:,} objects compiled" if objects else ""
                say(f"  {what}: {time.monotonic() - t0:.0f} s{extra}")
                next_say += 30
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ClusterError(f"{what} of Slurm failed (exit {proc.returncode}); the last lines "
                           f"of {log}:\n" + "\n".join(tail))


def ensure_built(release: str, say: Callable[[str], None] = print) -> Path:
    """The prefix holding Slurm `release` built from its verified source: the cached one,
    else built now (about 5 minutes on 2 cores), with progress."""
    tarball, digest = source(release)
    prefix = prefix_of(release, digest)
    if (prefix / MARKER).is_file():
        return prefix
    if shutil.which("make") is None or shutil.which("gcc") is None:
        raise ClusterError("building Slurm needs a compiler: apt-get install "
                           + " ".join(BUILD_PACKAGES))
    shutil.rmtree(prefix, ignore_errors=True)
    work = prefix.with_name(prefix.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = prefix.with_name(prefix.name + ".log")
    log.write_text(f"Slurm {release} from {tarball} (sha256 {digest})\n")
    t0 = time.monotonic()
    say(f"building Slurm {release} from {tarball.name} into {prefix} (once; log {log})")
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    (src,) = [p for p in work.iterdir() if p.is_dir()]
    steps = [(["./configure", f"--prefix={prefix}", f"--sysconfdir={prefix}/etc", *CONFIGURE],
              "configure"),
             (["make", f"-j{os.cpu_count() or 2}"], "make"),
             (["make", "install"], "make install")]
    try:
        for argv, what in steps:
            step_t0 = time.monotonic()
            _run(argv, src, log, what, say, t0)
            say(f"  {what}: done in {time.monotonic() - step_t0:.0f} s")
    except BaseException:
        shutil.rmtree(prefix, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (prefix / MARKER).write_text(f"{digest}\n")
    say(f"Slurm {release} built in {time.monotonic() - t0:.0f} s: {prefix}")
    return prefix


# release -> the pyslurm release built against it (pyslurm X.Y needs Slurm X.Y)
PYSLURM = {"25.11": "25.11.2"}


def pyslurm_wheel(release: str, say: Callable[[str], None] = print) -> Path:
    """A pyslurm wheel built against the source-built Slurm `release`, cached under a path
    keyed by both versions (and the Slurm build's own key: checksum and options)."""
    prefix = ensure_built(release, say)
    version = PYSLURM[release]
    cache = builds_dir() / "wheels" / f"pyslurm-{version}-{prefix.name}"
    wheels = sorted(cache.glob("pyslurm-*.whl"))
    if wheels:
        return wheels[0]
    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = cache.with_name(cache.name + ".log")
    log.write_text(f"pyslurm {version} against {prefix}\n")
    say(f"building pyslurm {version} against Slurm {release} ({prefix}; once; log {log})")
    t0 = time.monotonic()
    env = dict(os.environ, SLURM_INCLUDE_DIR=str(prefix / "include"),
               SLURM_LIB_DIR=str(prefix / "lib"))
    with log.open("a") as out:
        # --no-cache-dir: pip would reuse a wheel it built against another Slurm.
        proc = subprocess.Popen([sys.executable, "-m", "pip", "wheel", "--no-deps",
                                 "--no-cache-dir", f"pyslurm=={version}", "-w", str(tmp)],
                                stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        next_say = time.monotonic() + 30
        while proc.poll() is None:
            time.sleep(1)
            if time.monotonic() >= next_say:
                say(f"  pyslurm: {time.monotonic() - t0:.0f} s")
                next_say += 30
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        shutil.rmtree(tmp, ignore_errors=True)
        raise ClusterError(f"building pyslurm {version} failed (exit {proc.returncode}); the "
                           f"last lines of {log}:\n" + "\n".join(tail))
    tmp.rename(cache)
    say(f"pyslurm {version} built in {time.monotonic() - t0:.0f} s")
    return sorted(cache.glob("pyslurm-*.whl"))[0]


def install_pyslurm(release: str, say: Callable[[str], None] = print) -> str:
    """pyslurm for `release` installed into this Python environment (from the cached
    wheel; nothing to do when that version is there); returns its version."""
    from importlib import metadata

    version = PYSLURM[release]
    wheel = pyslurm_wheel(release, say)
    marker = Path(sys.prefix) / "pyslurm-wheel.txt"  # which build is installed here
    try:
        if metadata.version("pyslurm") == version and marker.read_text().strip() == str(wheel):
            return version
    except (metadata.PackageNotFoundError, OSError):
        pass
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--force-reinstall", str(wheel)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise ClusterError(f"pip install {wheel} failed: {proc.stderr.strip()[-2000:]}")
    marker.write_text(f"{wheel}\n")
    return version
